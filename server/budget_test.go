package server

import (
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
