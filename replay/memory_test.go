package replay_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twilioguard/twilioguard/replay"
)

// clock is a settable clock. Only the test goroutine sets it, between
// claims.
type clock struct{ t time.Time }

func (c *clock) Now() time.Time { return c.t }

func (c *clock) Advance(d time.Duration) { c.t = c.t.Add(d) }

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func key(i int) replay.Key { return replay.KeyOf("AC1", fmt.Sprint("token-", i), "", "") }

// claim claims k and fails the test on an error.
func claim(t *testing.T, m *replay.Memory, k replay.Key) (time.Time, bool) {
	t.Helper()
	first, dup, err := m.Claim(t.Context(), k)
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	return first, dup
}

func TestMemoryClaim(t *testing.T) {
	t.Parallel()
	c := &clock{t: t0}
	m := replay.NewMemory(replay.MemoryConfig{Window: time.Hour, Now: c.Now})

	if first, dup := claim(t, m, key(1)); dup || !first.Equal(t0) {
		t.Errorf("first claim = %v, duplicate %v; want now, not a duplicate", first, dup)
	}
	c.Advance(time.Minute)
	if first, dup := claim(t, m, key(1)); !dup || !first.Equal(t0) {
		t.Errorf("second claim = %v, duplicate %v; want a duplicate first seen at %v", first, dup, t0)
	}
	if _, dup := claim(t, m, key(2)); dup {
		t.Error("another key is a duplicate")
	}

	// Just before the window ends: still a duplicate. At its end: new.
	c.Advance(time.Hour - time.Minute - time.Nanosecond)
	if _, dup := claim(t, m, key(1)); !dup {
		t.Error("claim just inside the window is not a duplicate")
	}
	c.Advance(time.Nanosecond)
	if first, dup := claim(t, m, key(1)); dup || !first.Equal(c.Now()) {
		t.Errorf("claim after the window = %v, duplicate %v; want a new first claim", first, dup)
	}
	// The new claim starts a new window.
	c.Advance(time.Hour - time.Nanosecond)
	if first, dup := claim(t, m, key(1)); !dup || !first.Equal(t0.Add(time.Hour)) {
		t.Errorf("claim in the second window = %v, duplicate %v; want a duplicate of the second claim", first, dup)
	}
}

// TestMemoryFullRefusesToForget fills a record and checks that it refuses new
// keys (ErrFull) while every key it holds is still a duplicate, and takes
// new keys again once old ones expire.
func TestMemoryFullRefusesToForget(t *testing.T) {
	t.Parallel()
	c := &clock{t: t0}
	const size = 100
	m := replay.NewMemory(replay.MemoryConfig{Window: time.Hour, MaxEntries: size, Now: c.Now})
	for i := range size {
		claim(t, m, key(i))
		c.Advance(time.Second)
	}
	if m.Len() != size || m.Cap() != size {
		t.Fatalf("Len, Cap = %d, %d; want %d, %d", m.Len(), m.Cap(), size, size)
	}
	for i := range 3 * size {
		if _, _, err := m.Claim(t.Context(), key(size+i)); !errors.Is(err, replay.ErrFull) {
			t.Fatalf("new key %d in a full record: error %v; want ErrFull", i, err)
		}
	}
	for i := range size {
		if _, dup := claim(t, m, key(i)); !dup {
			t.Fatalf("key %d was forgotten by a full record", i)
		}
	}
	if m.Len() != size {
		t.Fatalf("Len = %d after refused claims; want %d", m.Len(), size)
	}

	// The first ten keys expire: ten new keys fit, the eleventh does not.
	c.Advance(time.Hour - size*time.Second + 10*time.Second - time.Nanosecond)
	for i := range 10 {
		if _, dup := claim(t, m, key(1000+i)); dup {
			t.Fatalf("new key %d is a duplicate", i)
		}
	}
	if _, _, err := m.Claim(t.Context(), key(2000)); !errors.Is(err, replay.ErrFull) {
		t.Errorf("eleventh new key: error %v; want ErrFull", err)
	}
	if _, dup := claim(t, m, key(10)); !dup {
		t.Error("the oldest unexpired key was forgotten")
	}
}

// TestMemoryConcurrentCopies claims one key from many goroutines at once:
// exactly one is first, and every duplicate names its time.
func TestMemoryConcurrentCopies(t *testing.T) {
	t.Parallel()
	m := replay.NewMemory(replay.MemoryConfig{})
	for round := range 20 {
		k := key(round)
		var firsts atomic.Int32
		times := make([]time.Time, 50)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range times {
			wg.Go(func() {
				<-start
				first, dup, err := m.Claim(context.Background(), k)
				if err != nil {
					t.Error(err)
				}
				if !dup {
					firsts.Add(1)
				}
				times[i] = first
			})
		}
		close(start)
		wg.Wait()
		if n := firsts.Load(); n != 1 {
			t.Fatalf("round %d: %d of 50 concurrent copies were first; want exactly 1", round, n)
		}
		for i, ts := range times {
			if !ts.Equal(times[0]) {
				t.Fatalf("round %d: copy %d saw first-seen time %v, copy 0 %v; want one time", round, i, ts, times[0])
			}
		}
	}
}

// TestMemoryExpiryReleasesEntries checks that expired keys are forgotten
// by claims and by Sweep, and never earlier.
func TestMemoryExpiryReleasesEntries(t *testing.T) {
	t.Parallel()
	c := &clock{t: t0}
	m := replay.NewMemory(replay.MemoryConfig{Window: time.Minute, Now: c.Now})
	const n = 5000
	for i := range n {
		claim(t, m, key(i))
	}
	c.Advance(30 * time.Second)
	m.Sweep()
	if m.Len() != n {
		t.Fatalf("Len after a sweep inside the window = %d; want %d", m.Len(), n)
	}
	claim(t, m, key(n)) // claimed 30 s later than the others

	c.Advance(30 * time.Second)
	claim(t, m, key(n+1)) // forgets a few expired keys on the way
	if got := m.Len(); got >= n+2 || got < n+2-10 {
		t.Errorf("Len after one claim past the window = %d; want a few of the %d expired keys forgotten", got, n)
	}
	m.Sweep()
	if m.Len() != 2 {
		t.Errorf("Len after a sweep = %d; want 2 (the keys claimed later)", m.Len())
	}
	if _, dup := claim(t, m, key(n)); !dup {
		t.Error("a key inside its window was forgotten by the sweep")
	}

	// A key claimed again after its window passed (before any sweep) is
	// remembered from its new claim on.
	c.Advance(time.Minute)
	claim(t, m, key(n))
	c.Advance(30 * time.Second)
	m.Sweep()
	if _, dup := claim(t, m, key(n)); !dup {
		t.Error("a key claimed again was forgotten at the end of its first window")
	}
}

func TestMemoryRunStopsWithContext(t *testing.T) {
	t.Parallel()
	m := replay.NewMemory(replay.MemoryConfig{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

// BenchmarkMemoryClaim measures a first claim of a new key from concurrent
// goroutines (the common case: most webhooks are new).
func BenchmarkMemoryClaim(b *testing.B) {
	m := replay.NewMemory(replay.MemoryConfig{MaxEntries: 1 << 30})
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			var k replay.Key
			n := next.Add(1)
			for i := range 8 {
				k[i] = byte(n >> (8 * i))
			}
			if _, dup, err := m.Claim(context.Background(), k); dup || err != nil {
				b.Fatalf("Claim = %v, %v", dup, err)
			}
		}
	})
}

// BenchmarkMemoryFootprint reports the heap a full record of a million keys
// takes, per key.
func BenchmarkMemoryFootprint(b *testing.B) {
	const n = 1_000_000
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		m := replay.NewMemory(replay.MemoryConfig{MaxEntries: n})
		for i := range n {
			var k replay.Key
			for j := range 8 {
				k[j] = byte(i >> (8 * j))
			}
			if _, _, err := m.Claim(context.Background(), k); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/key")
		runtime.KeepAlive(m)
	}
}
