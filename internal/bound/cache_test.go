package bound

import (
	"sync"
	"testing"
)

func TestCache(t *testing.T) {
	t.Parallel()
	c := NewCache[string, int](2)
	if _, ok := c.Get("a"); ok {
		t.Fatal("empty cache has a")
	}
	c.Add("a", 1)
	c.Add("a", 10) // the first value stays
	c.Add("b", 2)
	c.Add("c", 3) // full
	for _, tt := range []struct {
		k    string
		want int
		ok   bool
	}{{"a", 1, true}, {"b", 2, true}, {"c", 0, false}} {
		if got, ok := c.Get(tt.k); got != tt.want || ok != tt.ok {
			t.Errorf("Get(%q) = %d, %v; want %d, %v", tt.k, got, ok, tt.want, tt.ok)
		}
	}
	if n := c.Len(); n != 2 {
		t.Errorf("Len() = %d; want 2", n)
	}
}

func TestCacheConcurrent(t *testing.T) {
	t.Parallel()
	c := NewCache[int, int](100)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				c.Add(g*1000+i, i)
				c.Get(i)
			}
		})
	}
	wg.Wait()
	if n := c.Len(); n != 100 {
		t.Errorf("Len() = %d; want 100", n)
	}
}
