package server

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twilioguard/twilioguard/store"
)

// countingStore is a store with one account that counts full loads.
type countingStore struct{ loads atomic.Int32 }

func (c *countingStore) Get(context.Context, string) (*store.Account, error) {
	return nil, store.ErrNotFound
}
func (c *countingStore) List(context.Context, string, int) ([]*store.Account, error) { return nil, nil }
func (c *countingStore) Put(_ context.Context, a *store.Account, _ int64) (*store.Account, error) {
	return a, nil
}
func (c *countingStore) Delete(context.Context, string, int64) error { return nil }
func (c *countingStore) Ping(context.Context) error                  { return nil }
func (c *countingStore) All(_ context.Context, fn func(*store.Account) error) error {
	c.loads.Add(1)
	return fn(&store.Account{SID: "AC0123456789abcdef0123456789abcdef", AuthToken: "t"})
}

// watchingStore also sends the "reload everything" notification once it
// listens, as store/postgres does.
type watchingStore struct{ countingStore }

func (w *watchingStore) Watch(ctx context.Context, changed func(string)) error {
	changed("")
	<-ctx.Done()
	return ctx.Err()
}

// TestRunLoadsOnce checks that Run loads the cache exactly once at start:
// directly for a plain store, through the first notification for a store
// that has them.
func TestRunLoadsOnce(t *testing.T) {
	t.Parallel()
	for name, st := range map[string]interface {
		Store
		count() int32
	}{
		"plain":    &plainCounter{},
		"watching": &watchCounter{},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv, err := New(Config{Store: st, AdminToken: "admin-token-0123456789", ResyncInterval: -1})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			go func() { _ = srv.Run(ctx) }()
			deadline := time.Now().Add(10 * time.Second)
			for loaded, _, _ := srv.cache.status(); !loaded; loaded, _, _ = srv.cache.status() {
				if time.Now().After(deadline) {
					t.Fatalf("%s: cache not loaded", name)
				}
				time.Sleep(5 * time.Millisecond)
			}
			// Past the first store health check, which must not load again.
			time.Sleep(2500 * time.Millisecond)
			cancel()
			if n := st.count(); n != 1 {
				t.Errorf("%s: %d full loads at start; want 1", name, n)
			}
		})
	}
}

type plainCounter struct{ countingStore }

func (p *plainCounter) count() int32 { return p.loads.Load() }

type watchCounter struct{ watchingStore }

func (w *watchCounter) count() int32 { return w.loads.Load() }
