package replay

import (
	"context"
	"math"
	"sync"
	"time"
)

// DefaultMaxEntries is the default bound of a [Memory] record: a million
// webhooks, about 80 MB of memory when full.
const DefaultMaxEntries = 1_000_000

// Timing of [Memory]'s expiry.
const (
	// expirePerClaim is how many expired keys a claim forgets at most, so
	// that expiry keeps up with any rate of claims at a bounded cost each.
	expirePerClaim = 8
	// sweepInterval is how often [Memory.Run] forgets expired keys, so
	// memory is released when claims stop.
	sweepInterval = time.Second
	// sweepBatch is how many keys one step of a sweep forgets at most
	// while it holds the lock.
	sweepBatch = 1024
)

// MemoryConfig configures [NewMemory].
type MemoryConfig struct {
	// Window is how long a claimed key is remembered (default
	// [DefaultWindow]).
	Window time.Duration
	// MaxEntries is the most keys held at once (default
	// [DefaultMaxEntries]).
	MaxEntries int
	// Now returns the current time (default time.Now).
	Now func() time.Time
}

// Memory is a record of verified webhooks in the memory of one process, for
// a service that runs on one node (the SQLite store). It is safe for
// concurrent use.
//
// It holds at most MaxEntries keys, and it refuses to forget: when it is
// full, a key it does not hold is refused with [ErrFull] until older keys
// expire, while every key it holds is still recognised. Evicting the oldest
// key instead would let anyone who can get enough requests verified (for
// example one captured webhook sent again with ever new idempotency tokens)
// push a webhook out of the record and then replay it as new. A refused
// claim is reported as "duplicate unknown", never as "not a duplicate".
//
// Each key costs about 80 bytes (BenchmarkMemoryFootprint). Keys are
// forgotten oldest first, a few at every claim and the rest by
// [Memory.Run].
type Memory struct {
	window int64 // nanoseconds
	max    int
	now    func() time.Time

	mu    sync.Mutex
	seen  map[Key]int64 // when each live key was claimed, Unix nanoseconds
	order ring          // claims in the order they were made
}

// claim is one claim of a key, at a time in Unix nanoseconds.
type claim struct {
	key Key
	at  int64
}

// NewMemory returns an empty record.
func NewMemory(cfg MemoryConfig) *Memory {
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Memory{window: int64(cfg.Window), max: cfg.MaxEntries, now: cfg.Now, seen: map[Key]int64{}}
}

// Claim records key as claimed now, unless it was claimed within the
// window: then it reports a duplicate and when the key was first claimed.
// Of concurrent claims of one key, exactly one is not a duplicate. When
// the record is full and does not hold key, Claim returns [ErrFull]. It
// never blocks on anything but other claims.
func (m *Memory) Claim(_ context.Context, key Key) (firstSeen time.Time, duplicate bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now().UnixNano()
	m.expire(now, expirePerClaim)
	at, held := m.seen[key]
	switch {
	case held && now-at < m.window:
		return time.Unix(0, at), true, nil
	case !held && len(m.seen) >= m.max && !m.expire(now, math.MaxInt):
		return time.Time{}, false, ErrFull
	}
	m.seen[key] = now
	m.order.push(claim{key: key, at: now})
	return time.Unix(0, now), false, nil
}

// expire forgets, oldest first, up to limit claims whose window has passed
// at now, and reports whether it forgot any key.
func (m *Memory) expire(now int64, limit int) bool {
	forgot := false
	for ; limit > 0 && m.order.len() > 0; limit-- {
		c := m.order.front()
		if now-c.at < m.window {
			break
		}
		m.order.pop()
		// A key claimed again after its window passed has a newer claim
		// further on; this older one only leaves the queue.
		if at, ok := m.seen[c.key]; ok && at == c.at {
			delete(m.seen, c.key)
			forgot = true
		}
	}
	return forgot
}

// Run forgets expired keys every second until ctx ends, so that memory is
// released even when no claims come. It returns when ctx ends.
func (m *Memory) Run(ctx context.Context) {
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.Sweep()
		}
	}
}

// Sweep forgets every key whose window has passed, a batch at a time so
// that claims are never held up for long.
func (m *Memory) Sweep() {
	for {
		m.mu.Lock()
		n := m.order.len()
		m.expire(m.now().UnixNano(), sweepBatch)
		more := n-m.order.len() == sweepBatch // stopped at the limit, not at a live claim
		m.mu.Unlock()
		if !more {
			return
		}
	}
}

// Len returns the number of keys held.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.seen)
}

// Cap returns the most keys the record holds.
func (m *Memory) Cap() int { return m.max }

// ring is a growing circular queue of claims.
type ring struct {
	buf  []claim // len is zero or a power of two
	head int
	n    int
}

func (r *ring) len() int { return r.n }

func (r *ring) front() claim { return r.buf[r.head] }

func (r *ring) pop() {
	r.buf[r.head] = claim{}
	r.head = (r.head + 1) & (len(r.buf) - 1)
	r.n--
}

func (r *ring) push(c claim) {
	if r.n == len(r.buf) {
		buf := make([]claim, max(64, 2*len(r.buf)))
		k := copy(buf, r.buf[r.head:])
		copy(buf[k:], r.buf[:r.head])
		r.buf, r.head = buf, 0
	}
	r.buf[(r.head+r.n)&(len(r.buf)-1)] = c
	r.n++
}
