package server_test

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twilioguard/twilioguard/server"
	"github.com/twilioguard/twilioguard/store"
)

var _ server.Store = (*fakeStore)(nil)

// fakeStore is an in-memory server.Store with the version and alias
// semantics of the real backends (store/storetest). SetDown makes every
// method fail with an error wrapping store.ErrUnavailable.
type fakeStore struct {
	mu       sync.Mutex
	accounts map[string]*store.Account // by SID
	down     atomic.Bool
	now      func() time.Time
	// afterPut, when set, is called with every stored account after the
	// write and before Put returns; afterSnapshot is called by All after it
	// copied the accounts and before it hands them out. Tests use them to
	// interleave concurrent calls deterministically.
	afterPut      atomic.Pointer[func(*store.Account)]
	afterSnapshot atomic.Pointer[func()]
}

func newFakeStore(now func() time.Time, accounts ...*store.Account) *fakeStore {
	f := &fakeStore{accounts: make(map[string]*store.Account), now: now}
	for _, a := range accounts {
		if _, err := f.put(a, 0); err != nil {
			panic(err)
		}
	}
	return f
}

// SetDown makes the store unreachable (down) or reachable again.
func (f *fakeStore) SetDown(down bool) { f.down.Store(down) }

func (f *fakeStore) unavailable(op string) error {
	if f.down.Load() {
		return fmt.Errorf("fake %s: connection refused: %w", op, store.ErrUnavailable)
	}
	return nil
}

// lookupLocked finds an account by SID or alias.
func (f *fakeStore) lookupLocked(key string) *store.Account {
	if a, ok := f.accounts[key]; ok {
		return a
	}
	for _, a := range f.accounts {
		if slices.Contains(a.Aliases, key) {
			return a
		}
	}
	return nil
}

func (f *fakeStore) Get(_ context.Context, key string) (*store.Account, error) {
	if err := f.unavailable("get"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.lookupLocked(key)
	if a == nil {
		return nil, store.ErrNotFound
	}
	return a.Clone(), nil
}

func (f *fakeStore) List(_ context.Context, afterSID string, limit int) ([]*store.Account, error) {
	if err := f.unavailable("list"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*store.Account
	for sid, a := range f.accounts {
		if sid > afterSID {
			out = append(out, a.Clone())
		}
	}
	slices.SortFunc(out, func(a, b *store.Account) int { return cmp.Compare(a.SID, b.SID) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (f *fakeStore) Put(_ context.Context, a *store.Account, expectedVersion int64) (*store.Account, error) {
	if err := f.unavailable("put"); err != nil {
		return nil, err
	}
	stored, err := f.put(a, expectedVersion)
	if hook := f.afterPut.Load(); hook != nil && err == nil {
		(*hook)(stored.Clone())
	}
	return stored, err
}

func (f *fakeStore) put(a *store.Account, expectedVersion int64) (*store.Account, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.accounts[a.SID]
	switch {
	case expectedVersion != 0 && old == nil:
		return nil, store.ErrNotFound
	case expectedVersion != 0 && old.Version != expectedVersion:
		return nil, store.ErrVersionMismatch
	}
	for _, al := range a.Aliases {
		if other := f.lookupLocked(al); other != nil && other.SID != a.SID {
			return nil, store.ErrAliasTaken
		}
	}
	c := a.Clone()
	now := f.now()
	c.Version, c.CreateTime, c.UpdateTime = 1, now, now
	if old != nil {
		c.Version, c.CreateTime = old.Version+1, old.CreateTime
	}
	f.accounts[a.SID] = c
	return c.Clone(), nil
}

func (f *fakeStore) Delete(_ context.Context, sid string, expectedVersion int64) error {
	if err := f.unavailable("delete"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.accounts[sid]
	switch {
	case old == nil:
		return store.ErrNotFound
	case expectedVersion != 0 && old.Version != expectedVersion:
		return store.ErrVersionMismatch
	}
	delete(f.accounts, sid)
	return nil
}

func (f *fakeStore) All(_ context.Context, fn func(*store.Account) error) error {
	if err := f.unavailable("all"); err != nil {
		return err
	}
	f.mu.Lock()
	list := make([]*store.Account, 0, len(f.accounts))
	for _, a := range f.accounts {
		list = append(list, a.Clone())
	}
	f.mu.Unlock()
	if hook := f.afterSnapshot.Load(); hook != nil {
		(*hook)()
	}
	for _, a := range list {
		if err := fn(a); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeStore) Ping(context.Context) error {
	return f.unavailable("ping")
}
