package server

import (
	"sync"
	"time"
)

// budget allows up to n units per second (a fixed one-second window). A
// nil or non-positive budget allows nothing.
type budget struct {
	mu     sync.Mutex
	n      int
	window time.Time
	used   int
}

func newBudget(n int) *budget { return &budget{n: n} }

// take reports whether one more event fits in the current second.
func (b *budget) take(now time.Time) bool { return b.spend(now, 1) }

// spend reports whether cost more units fit in the current second, and
// takes them if so.
func (b *budget) spend(now time.Time, cost int) bool {
	if b == nil || b.n <= 0 {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Sub(b.window) >= time.Second {
		b.window, b.used = now, 0
	}
	if b.used+cost > b.n {
		return false
	}
	b.used += cost
	return true
}
