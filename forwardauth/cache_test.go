package forwardauth

import (
	"fmt"
	"strings"
	"testing"

	"github.com/twilioguard/twilioguard/internal/verifiertest"
)

// TestRouteCacheIsBounded checks that callers choosing many distinct
// settings (hosts, labels) cannot grow the cache without bound, and that
// long settings are never cached.
func TestRouteCacheIsBounded(t *testing.T) {
	t.Parallel()
	h, err := New(verifiertest.New("AC0123456789abcdef0123456789abcdef", "t"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range maxRoutes + 100 {
		if _, err := h.route(settings{baseURL: fmt.Sprintf("https://h%d.example", i)}); err != nil {
			t.Fatal(err)
		}
	}
	long := settings{baseURL: "https://example.com", name: strings.Repeat("r", maxCachedSettings)}
	h2, _ := New(verifiertest.New("AC0123456789abcdef0123456789abcdef", "t"))
	if _, err := h2.route(long); err != nil {
		t.Fatal(err)
	}
	if n := h.routes.Len(); n != maxRoutes {
		t.Errorf("cached routes = %d; want %d", n, maxRoutes)
	}
	if n := h2.routes.Len(); n != 0 {
		t.Errorf("long settings cached: %d routes", n)
	}
	a, _ := h.route(settings{baseURL: "https://h1.example"})
	b, _ := h.route(settings{baseURL: "https://h1.example"})
	if a != b {
		t.Error("the same settings built two routes")
	}
}
