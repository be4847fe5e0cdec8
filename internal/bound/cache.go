package bound

import "sync"

// Cache memoizes values built from caller-chosen keys without letting the
// callers grow it: once it holds its capacity it adds nothing more, and a
// value not cached is simply built again when asked for. Callers bound
// the size of the keys they cache. It is safe for concurrent use; cached
// values are shared, so they must not be modified. Create one with
// [NewCache].
type Cache[K comparable, V any] struct {
	max int
	mu  sync.RWMutex
	m   map[K]V
}

// NewCache returns an empty cache of at most max entries.
func NewCache[K comparable, V any](max int) *Cache[K, V] {
	return &Cache[K, V]{max: max, m: make(map[K]V)}
}

// Get returns the value cached for k.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	c.mu.RLock()
	v, ok := c.m[k]
	c.mu.RUnlock()
	return v, ok
}

// Add caches v for k unless k is cached already or the cache is full.
func (c *Cache[K, V]) Add(k K, v V) {
	c.mu.Lock()
	if _, ok := c.m[k]; !ok && len(c.m) < c.max {
		c.m[k] = v
	}
	c.mu.Unlock()
}

// Len returns the number of cached entries.
func (c *Cache[K, V]) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
