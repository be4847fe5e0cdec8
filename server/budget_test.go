package server

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestBudget(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name  string
		n     int
		calls []time.Duration // offsets from t0
		want  []bool
	}{
		{"within limit", 2, []time.Duration{0, 10 * time.Millisecond}, []bool{true, true}},
		{"over limit", 2, []time.Duration{0, 1, 2}, []bool{true, true, false}},
		{"next window", 1, []time.Duration{0, 500 * time.Millisecond, time.Second}, []bool{true, false, true}},
		{"disabled", -1, []time.Duration{0}, []bool{false}},
	}
	for _, tt := range tests {
		b := newBudget(tt.n)
		for i, off := range tt.calls {
			if got := b.take(t0.Add(off)); got != tt.want[i] {
				t.Errorf("%s: take #%d = %v; want %v", tt.name, i, got, tt.want[i])
			}
		}
	}
}

func TestRouteLabels(t *testing.T) {
	t.Parallel()
	var rs routeSet
	tests := []struct{ in, want string }{
		{"", "default"},
		{"sms", "sms"},
		{"voice/status", "voice/status"},
		{"has space", "other"},
		{strings.Repeat("a", 65), "other"},
	}
	for _, tt := range tests {
		if got := rs.label(tt.in); got != tt.want {
			t.Errorf("label(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
	for i := range 2 * maxRoutes {
		rs.label(fmt.Sprintf("r%d", i))
	}
	if got := rs.label("sms"); got != "sms" {
		t.Errorf("a route seen before the cap = %q; want it kept", got)
	}
	if got := rs.label("late-route"); got != "other" {
		t.Errorf("a new route past the cap = %q; want other", got)
	}
}
