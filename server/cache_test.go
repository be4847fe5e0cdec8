package server

import (
	"testing"
	"time"

	"github.com/twilioguard/twilioguard/store"
)

func account(sid, token string, aliases ...string) *store.Account {
	return &store.Account{SID: sid, AuthToken: store.Secret(token), Aliases: aliases}
}

// A change that lands while a full load is reading the store must survive
// the load's swap, whatever the load read.
func TestCacheReplaceKeepsChangesMadeDuringLoad(t *testing.T) {
	t.Parallel()
	const a, b, c = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "ACbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "ACcccccccccccccccccccccccccccccccc"
	live := newCache()
	live.set(account(a, "old-a", "alpha"))
	live.set(account(b, "old-b"))

	live.beginLoad()
	snapshot := newCache() // what the load read: the state before the changes below
	snapshot.set(account(a, "old-a", "alpha"))
	snapshot.set(account(b, "old-b"))
	live.set(account(a, "new-a", "alpha2")) // rotated during the load
	live.remove(b)                          // deleted during the load
	live.set(account(c, "new-c"))           // created during the load
	live.replace(snapshot, time.Now())

	tests := []struct {
		key       string
		wantToken string // "" means not found
	}{
		{a, "new-a"},
		{"alpha2", "new-a"},
		{"alpha", ""},
		{b, ""},
		{c, "new-c"},
	}
	for _, tt := range tests {
		cr, ok := live.lookup(tt.key)
		got := ""
		if ok {
			got = cr.authToken
		}
		if got != tt.wantToken {
			t.Errorf("lookup(%q) token = %q; want %q", tt.key, got, tt.wantToken)
		}
	}
	// After the load, changes are no longer recorded.
	if live.touched != nil {
		t.Error("touched set left behind after replace")
	}
}
