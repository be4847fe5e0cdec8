package postgres

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/twilioguard/twilioguard/server"
	"github.com/twilioguard/twilioguard/store"
)

// TestCacheScale loads a million accounts into a server's in-memory cache,
// the way every replica holds them, and reports the heap per account and the
// time of a verification with a million accounts next to that with a
// thousand (the lookup is a map access, so it should barely change). The
// accounts come from an in-memory store so that the database does not
// dominate the run time; TestLoadScale covers loading from PostgreSQL.
//
// It is not parallel, so that the heap it measures is its own.
//
// Under the race detector it holds 100,000 accounts (and the budget scales
// down with them); run it without -race for the million:
//
//	go test -run 'Scale' -v ./store/postgres
func TestCacheScale(t *testing.T) {
	n := 1_000_000
	if raceEnabled {
		n = 100_000
	}
	ctx := t.Context()
	before := liveHeap()
	big, err := server.New(server.Config{Store: &memStore{n: n}, AdminToken: "scale-test-admin-token"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := big.Load(ctx); err != nil {
		t.Fatal(err)
	}
	loadTime := time.Since(start)
	used := liveHeap() - before
	budget := uint64(cacheBudget) * uint64(n) / 1_000_000
	t.Logf("cache of %d accounts: %.1f MiB of heap in all, %d bytes per account (budget %.0f MiB); filled in %v",
		n, float64(used)/(1<<20), used/uint64(n), float64(budget)/(1<<20), loadTime.Round(time.Millisecond))
	if used > budget {
		t.Errorf("cache heap %d KiB for %d accounts; want <= %d KiB (300 MiB per million)", used>>10, n, budget>>10)
	}

	small, err := server.New(server.Config{Store: &memStore{n: 1000}, AdminToken: "scale-test-admin-token"})
	if err != nil {
		t.Fatal(err)
	}
	if err := small.Load(ctx); err != nil {
		t.Fatal(err)
	}
	const calls = 20000
	smallValid, smallUnknown := verifyTimes(t, small, 1000, calls)
	bigValid, bigUnknown := verifyTimes(t, big, n, calls)
	t.Logf("mean VerifyWebhook time over %d random accounts: valid signature %v with 1,000 accounts, %v with %d; "+
		"unknown account %v with 1,000, %v with %d (race detector on: %v)",
		calls, smallValid, bigValid, n, smallUnknown, bigUnknown, n, raceEnabled)
	runtime.KeepAlive(big)
}

// memStore is a read-only store of scaleAccount(0..n-1), generated on the
// fly.
type memStore struct{ n int }

func (m *memStore) Get(_ context.Context, key string) (*store.Account, error) {
	return nil, store.ErrNotFound
}

func (m *memStore) List(context.Context, string, int) ([]*store.Account, error) { return nil, nil }

func (m *memStore) Put(context.Context, *store.Account, int64) (*store.Account, error) {
	return nil, store.ErrUnavailable
}

func (m *memStore) Delete(context.Context, string, int64) error { return store.ErrUnavailable }

func (m *memStore) All(_ context.Context, fn func(*store.Account) error) error {
	for i := range m.n {
		if err := fn(scaleAccount(i)); err != nil {
			return err
		}
	}
	return nil
}

func (m *memStore) Ping(context.Context) error { return nil }
