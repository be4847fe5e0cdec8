package storetest

import (
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/twilioguard/twilioguard/store"
	"github.com/twilioguard/twilioguard/store/seal"
)

// fullAccount returns newAccount(n) with a previous token and two shared
// keys, k1 and k2: 4 sealed secrets.
func fullAccount(n int) *store.Account {
	a := newAccount(n)
	a.PreviousAuthToken = store.Secret(fmt.Sprintf("previous-token-%d-0123456789", n))
	a.PreviousExpireTime = time.Date(2040, 1, 2, 3, 4, 5, 0, time.UTC)
	a.SharedKeys = []store.SharedKey{
		{ID: "k1", Secret: store.Secret(fmt.Sprintf("shared-1-%d-abcdef", n)), Algorithms: []store.Algorithm{store.HMACSHA1, store.HMACSHA256}},
		{ID: "k2", Secret: store.Secret(fmt.Sprintf("shared-2-%d-abcdef", n)), Algorithms: []store.Algorithm{store.HMACSHA256}},
	}
	return a
}

// unreadable returns stored as a read with the named secrets unreadable
// should return it: those secrets empty (a shared key keeping only its ID),
// everything else the same.
func unreadable(stored *store.Account, names ...string) *store.Account {
	want := stored.Clone()
	want.Unreadable = names
	for _, name := range names {
		switch name {
		case "auth_token":
			want.AuthToken = ""
		case "previous_auth_token":
			want.PreviousAuthToken = ""
		case "shared_keys":
			want.SharedKeys = nil
		default:
			for i, k := range want.SharedKeys {
				if name == "shared_key:"+k.ID {
					want.SharedKeys[i] = store.SharedKey{ID: k.ID}
				}
			}
		}
	}
	return want
}

// readAll returns every account through Get (by SID and by first alias),
// List and All, failing the test on any error: unreadable secrets must fail
// none of them.
func readAll(t *testing.T, s Store, sids ...string) map[string]*store.Account {
	t.Helper()
	ctx := t.Context()
	got := map[string]*store.Account{}
	for _, sid := range sids {
		a := mustGet(t, s, sid)
		if len(a.Aliases) > 0 {
			if diff := diffAccount(a, mustGet(t, s, a.Aliases[0])); diff != "" {
				t.Errorf("Get(%q) differs from Get(%s) (-want +got):\n%s", a.Aliases[0], sid, diff)
			}
		}
		got[sid] = a
	}
	list, err := s.List(ctx, "", 100)
	if err != nil {
		t.Fatalf("List error = %v; want none, whatever the records hold", err)
	}
	all := map[string]*store.Account{}
	if err := s.All(ctx, func(a *store.Account) error { all[a.SID] = a; return nil }); err != nil {
		t.Fatalf("All error = %v; want none, whatever the records hold", err)
	}
	if len(list) != len(sids) || len(all) != len(sids) {
		t.Errorf("List gave %d accounts, All %d; want %d", len(list), len(all), len(sids))
	}
	for _, a := range list {
		if diff := diffAccount(got[a.SID], a); diff != "" {
			t.Errorf("List: %s differs from Get (-want +got):\n%s", a.SID, diff)
		}
		if diff := diffAccount(got[a.SID], all[a.SID]); diff != "" {
			t.Errorf("All: %s differs from Get (-want +got):\n%s", a.SID, diff)
		}
	}
	return got
}

// database is a store of the backend under test and where its database
// is.
type database struct {
	t  *testing.T
	b  Backend
	s  Store
	db string
}

func open(t *testing.T, b Backend, keys *seal.Keyring) *database {
	s, db := b.Open(t, keys)
	return &database{t: t, b: b, s: s, db: db}
}

// reopen replaces the store by one on the same database with keys.
func (d *database) reopen(keys *seal.Keyring) { d.s = d.b.Reopen(d.t, d.s, d.db, keys) }

func (d *database) sealed(sid, part string) string { return d.b.Sealed(d.t, d.db, sid, part) }

func (d *database) damage(sid, part, value string) bool {
	return d.b.Damage(d.t, d.db, sid, part, value)
}

// testUnknownKey reads accounts sealed under a key the store does not hold,
// as after a restart with the wrong secret key.
func testUnknownKey(t *testing.T, b Backend) {
	ctx := t.Context()
	d := open(t, b, Keyring(t, 1))
	lost := mustPut(t, d.s, fullAccount(1), 0)
	gone := mustPut(t, d.s, fullAccount(3), 0)

	d.reopen(Keyring(t, 2))
	s := d.s
	fresh := mustPut(t, s, fullAccount(2), 0)
	got := readAll(t, s, SID(1), SID(2), SID(3))
	want := unreadable(lost, "auth_token", "previous_auth_token", "shared_key:k1", "shared_key:k2")
	if diff := diffAccount(want, got[SID(1)]); diff != "" {
		t.Errorf("account sealed under an unknown key (-want +got):\n%s", diff)
	}
	if diff := diffAccount(fresh, got[SID(2)]); diff != "" {
		t.Errorf("readable account beside it (-want +got):\n%s", diff)
	}

	ids, err := s.KeyIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{seal.KeyID(Key(1)): 8, seal.KeyID(Key(2)): 4}; !cmp.Equal(want, ids) {
		t.Errorf("KeyIDs = %v; want %v", ids, want)
	}

	// Put, conditional on the version read, repairs the account.
	repaired := mustPut(t, s, fullAccount(1), lost.Version)
	if diff := diffAccount(repaired, mustGet(t, s, SID(1))); diff != "" {
		t.Errorf("after Put over the unreadable account (-want +got):\n%s", diff)
	}
	if diff := diffAccount(fullAccount(1), withoutMetadata(repaired)); diff != "" {
		t.Errorf("Put over the unreadable account stored (-want +got):\n%s", diff)
	}
	// Delete removes one.
	if err := s.Delete(ctx, SID(3), gone.Version); err != nil {
		t.Errorf("Delete(unreadable account) error = %v", err)
	}
	wantNotFound(t, s, SID(3))
	wantNotFound(t, s, "shop-3")
}

// testDamagedRecords damages one part of a record at a time; only that
// part of that account becomes unreadable.
func testDamagedRecords(t *testing.T, b Backend) {
	ctx := t.Context()
	d := open(t, b, Keyring(t, 1))
	s := d.s
	stored := map[string]*store.Account{}
	var sids []string
	for i := range 7 {
		a := mustPut(t, s, fullAccount(i), 0)
		stored[a.SID] = a
		sids = append(sids, a.SID)
	}
	other := d.sealed(SID(0), "auth_token")
	own := d.sealed(SID(5), "auth_token")
	tests := []struct {
		n           int
		part, value string
		unreadable  string
	}{
		{1, "auth_token", other, "auth_token"},
		{2, "previous_auth_token", "not a sealed value", "previous_auth_token"},
		{3, "shared_key:k1", "v1.00000000.AAAA", "shared_key:k1"},
		{4, "algorithms:k2", "HMAC_SHA256,HMAC_MD5", "shared_key:k2"},
		{5, "shared_key:k2", own, "shared_key:k2"},
		{6, "shared_keys", "", "shared_keys"},
	}
	want := maps.Clone(stored)
	malformed := 0
	for _, tt := range tests {
		if !d.damage(SID(tt.n), tt.part, tt.value) {
			t.Logf("this backend does not keep %q as one value", tt.part)
			continue
		}
		want[SID(tt.n)] = unreadable(stored[SID(tt.n)], tt.unreadable)
		if tt.part == "previous_auth_token" || tt.part == "shared_keys" {
			malformed++
		}
	}
	got := readAll(t, s, sids...)
	for _, sid := range sids {
		if diff := diffAccount(want[sid], got[sid]); diff != "" {
			t.Errorf("%s (-want +got):\n%s", sid, diff)
		}
	}

	ids, err := s.KeyIDs(ctx)
	if err != nil {
		t.Fatalf("KeyIDs error = %v; want none, whatever the records hold", err)
	}
	if ids[""] != malformed {
		t.Errorf("KeyIDs counts %d values that name no key; want %d", ids[""], malformed)
	}
	if n, err := s.Reseal(ctx); err != nil || n != 0 {
		t.Errorf("Reseal over damaged records = %d, %v; want 0, nil", n, err)
	}

	// Put repairs an account; the others stay as they were.
	for _, tt := range tests[:3] {
		want[SID(tt.n)] = mustPut(t, s, fullAccount(tt.n), 0)
	}
	got = readAll(t, s, sids...)
	for _, sid := range sids {
		if diff := diffAccount(want[sid], got[sid]); diff != "" {
			t.Errorf("after repairing some: %s (-want +got):\n%s", sid, diff)
		}
	}
}

// testReseal rotates the key: Reseal rewrites what the old key sealed, and
// leaves alone what no key of the keyring opens.
func testReseal(t *testing.T, b Backend) {
	ctx := t.Context()
	const stranger, oldKey, newKey = 1, 2, 3
	d := open(t, b, Keyring(t, stranger))
	lost := mustPut(t, d.s, newAccount(9), 0) // 2 sealed secrets
	d.reopen(Keyring(t, oldKey))
	want := map[string]*store.Account{}
	for i := range 3 {
		a := fullAccount(i)
		if i == 1 {
			a.PreviousAuthToken, a.PreviousExpireTime, a.SharedKeys = "", time.Time{}, nil
		}
		want[a.SID] = mustPut(t, d.s, a, 0)
	}
	const resealable = 4 + 1 + 4

	d.reopen(Keyring(t, newKey, oldKey))
	n, err := d.s.Reseal(ctx)
	if err != nil || n != resealable {
		t.Fatalf("Reseal = %d, %v; want %d, nil", n, err, resealable)
	}
	if n, err := d.s.Reseal(ctx); err != nil || n != 0 {
		t.Errorf("second Reseal = %d, %v; want 0, nil", n, err)
	}
	ids, err := d.s.KeyIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{seal.KeyID(Key(newKey)): resealable, seal.KeyID(Key(stranger)): 2}; !cmp.Equal(want, ids) {
		t.Errorf("KeyIDs after Reseal = %v; want %v", ids, want)
	}

	// The new key alone reads everything as it was (versions and update
	// times included), but for what it never could.
	d.reopen(Keyring(t, newKey))
	got := readAll(t, d.s, SID(0), SID(1), SID(2), SID(9))
	want[SID(9)] = unreadable(lost, "auth_token", "shared_key:key-9")
	for sid, w := range want {
		if diff := diffAccount(w, got[sid]); diff != "" {
			t.Errorf("%s after Reseal, read with the new key alone (-want +got):\n%s", sid, diff)
		}
	}
}

func testKeyIDsEmpty(t *testing.T, b Backend) {
	s := open(t, b, Keyring(t, 1)).s
	ids, err := s.KeyIDs(t.Context())
	if err != nil || len(ids) != 0 {
		t.Errorf("KeyIDs of an empty store = %v, %v; want none, nil", ids, err)
	}
	if n, err := s.Reseal(t.Context()); err != nil || n != 0 {
		t.Errorf("Reseal of an empty store = %d, %v; want 0, nil", n, err)
	}
}
