package bound

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

func TestText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"0123456789abc", 10, "0123456789…"},
		{"ééééé", 3, "é…"}, // never splits a rune
		{"", 0, ""},
	}
	for _, tt := range tests {
		got := Text(tt.in, tt.n)
		if got != tt.want {
			t.Errorf("Text(%q, %d) = %q; want %q", tt.in, tt.n, got, tt.want)
		}
		if !utf8.ValidString(got) {
			t.Errorf("Text(%q, %d) = %q: not UTF-8", tt.in, tt.n, got)
		}
	}
}

func TestLabels(t *testing.T) {
	t.Parallel()
	l := NewLabels("default")
	tests := []struct{ in, want string }{
		{"", "default"},
		{"sms", "sms"},
		{"voice/status-callback_v2.json:1", "voice/status-callback_v2.json:1"},
		{strings.Repeat("a", LabelBytes), strings.Repeat("a", LabelBytes)},
		{strings.Repeat("a", LabelBytes+1), Other},
		{"with space", Other},
		{"new\nline", Other},
		{"é", Other},
		{strings.Repeat("x", 2<<20), Other},
	}
	for _, tt := range tests {
		if got := l.Value(tt.in); got != tt.want {
			t.Errorf("Value(%.40q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestLabelsCapDistinctValues(t *testing.T) {
	t.Parallel()
	l := NewLabels("default")
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				l.Value(fmt.Sprintf("r%d-%d", w, i))
			}
		})
	}
	wg.Wait()
	kept := 0
	for w := range 8 {
		for i := range 1000 {
			if l.Value(fmt.Sprintf("r%d-%d", w, i)) != Other {
				kept++
			}
		}
	}
	if kept != MaxLabels {
		t.Errorf("kept %d distinct values; want %d", kept, MaxLabels)
	}
	if got := l.Value("brand-new"); got != Other {
		t.Errorf("a value past the cap = %q; want %q", got, Other)
	}
}
