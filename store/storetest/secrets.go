package storetest

import (
	"fmt"
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
			if d := diffAccount(a, mustGet(t, s, a.Aliases[0])); d != "" {
				t.Errorf("Get(%q) differs from Get(%s) (-want +got):\n%s", a.Aliases[0], sid, d)
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
		if d := diffAccount(got[a.SID], a); d != "" {
			t.Errorf("List: %s differs from Get (-want +got):\n%s", a.SID, d)
		}
		if d := diffAccount(got[a.SID], all[a.SID]); d != "" {
			t.Errorf("All: %s differs from Get (-want +got):\n%s", a.SID, d)
		}
	}
	return got
}

// testUnknownKey reads accounts sealed under a key the store does not hold,
// as after a restart with the wrong secret key.
func testUnknownKey(t *testing.T, b Backend) {
	ctx := t.Context()
	oldKey := newKey()
	s := b.Open(t, keyring(t, oldKey))
	lost := mustPut(t, s, fullAccount(1), 0)
	gone := mustPut(t, s, fullAccount(3), 0)

	s = b.Reopen(t, s, NewKeyring(t))
	fresh := mustPut(t, s, fullAccount(2), 0)
	got := readAll(t, s, SID(1), SID(2), SID(3))
	want := unreadable(lost, "auth_token", "previous_auth_token", "shared_key:k1", "shared_key:k2")
	if d := diffAccount(want, got[SID(1)]); d != "" {
		t.Errorf("account sealed under an unknown key (-want +got):\n%s", d)
	}
	if d := diffAccount(fresh, got[SID(2)]); d != "" {
		t.Errorf("readable account beside it (-want +got):\n%s", d)
	}

	ids, err := s.KeyIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{seal.KeyID(oldKey): 8, keyIDOf(t, b, s, SID(2)): 4}; !cmp.Equal(want, ids) {
		t.Errorf("KeyIDs = %v; want %v", ids, want)
	}

	// Put, conditional on the version read, repairs the account.
	repaired := mustPut(t, s, fullAccount(1), lost.Version)
	if d := diffAccount(repaired, mustGet(t, s, SID(1))); d != "" {
		t.Errorf("after Put over the unreadable account (-want +got):\n%s", d)
	}
	if d := diffAccount(fullAccount(1), withoutMetadata(repaired)); d != "" {
		t.Errorf("Put over the unreadable account stored (-want +got):\n%s", d)
	}
	// Delete removes one.
	if err := s.Delete(ctx, SID(3), gone.Version); err != nil {
		t.Errorf("Delete(unreadable account) error = %v", err)
	}
	wantNotFound(t, s, SID(3))
	wantNotFound(t, s, "shop-3")
}

// keyIDOf returns the id of the key that sealed the auth token of sid.
func keyIDOf(t *testing.T, b Backend, s Store, sid string) string {
	t.Helper()
	id, err := seal.SealedBy(b.Sealed(t, s, sid, "auth_token"))
	if err != nil {
		t.Fatalf("stored auth token of %s: %v", sid, err)
	}
	return id
}

// testDamagedRecords damages one part of a record at a time; only that
// part of that account becomes unreadable.
func testDamagedRecords(t *testing.T, b Backend) {
	ctx := t.Context()
	s := b.Open(t, NewKeyring(t))
	stored := map[string]*store.Account{}
	var sids []string
	for i := range 7 {
		a := mustPut(t, s, fullAccount(i), 0)
		stored[a.SID] = a
		sids = append(sids, a.SID)
	}
	other := b.Sealed(t, s, SID(0), "auth_token")
	own := b.Sealed(t, s, SID(5), "auth_token")
	tests := []struct {
		sid, part, value string
		unreadable       string
	}{
		{SID(1), "auth_token", other, "auth_token"},
		{SID(2), "previous_auth_token", "not a sealed value", "previous_auth_token"},
		{SID(3), "shared_key:k1", "v1.00000000.AAAA", "shared_key:k1"},
		{SID(4), "algorithms:k2", "HMAC_SHA256,HMAC_MD5", "shared_key:k2"},
		{SID(5), "shared_key:k2", own, "shared_key:k2"},
		{SID(6), "shared_keys", "", "shared_keys"},
	}
	want := map[string]*store.Account{SID(0): stored[SID(0)]}
	malformed := 0
	for _, tt := range tests {
		if !b.Damage(t, s, tt.sid, tt.part, tt.value) {
			t.Logf("this backend does not keep %q as one value", tt.part)
			want[tt.sid] = stored[tt.sid]
			continue
		}
		want[tt.sid] = unreadable(stored[tt.sid], tt.unreadable)
		if tt.part == "previous_auth_token" || tt.part == "shared_keys" {
			malformed++
		}
	}
	got := readAll(t, s, sids...)
	for _, sid := range sids {
		if d := diffAccount(want[sid], got[sid]); d != "" {
			t.Errorf("%s (-want +got):\n%s", sid, d)
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

	// Put repairs each account; the others stay as they were.
	for _, tt := range tests[:3] {
		put := mustPut(t, s, fullAccount(indexOf(sids, tt.sid)), 0)
		want[tt.sid] = put
	}
	got = readAll(t, s, sids...)
	for _, sid := range sids {
		if d := diffAccount(want[sid], got[sid]); d != "" {
			t.Errorf("after repairing some: %s (-want +got):\n%s", sid, d)
		}
	}
}

func indexOf(sids []string, sid string) int {
	for i, s := range sids {
		if s == sid {
			return i
		}
	}
	return -1
}

// testReseal rotates the key: Reseal rewrites what the old key sealed, and
// leaves alone what no key of the keyring opens.
func testReseal(t *testing.T, b Backend) {
	ctx := t.Context()
	strangerKey, oldKey, newKey := newKey(), newKey(), newKey()
	s := b.Open(t, keyring(t, strangerKey))
	stranger := mustPut(t, s, newAccount(9), 0) // 2 sealed secrets
	s = b.Reopen(t, s, keyring(t, oldKey))
	want := map[string]*store.Account{}
	for i := range 3 {
		a := fullAccount(i)
		if i == 1 {
			a.PreviousAuthToken, a.PreviousExpireTime, a.SharedKeys = "", time.Time{}, nil
		}
		want[a.SID] = mustPut(t, s, a, 0)
	}
	const resealable = 4 + 1 + 4

	s = b.Reopen(t, s, keyring(t, newKey, oldKey))
	n, err := s.Reseal(ctx)
	if err != nil || n != resealable {
		t.Fatalf("Reseal = %d, %v; want %d, nil", n, err, resealable)
	}
	if n, err := s.Reseal(ctx); err != nil || n != 0 {
		t.Errorf("second Reseal = %d, %v; want 0, nil", n, err)
	}
	ids, err := s.KeyIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{seal.KeyID(newKey): resealable, seal.KeyID(strangerKey): 2}; !cmp.Equal(want, ids) {
		t.Errorf("KeyIDs after Reseal = %v; want %v", ids, want)
	}

	// The new key alone reads everything as it was (versions and update
	// times included), but for what it never could.
	s = b.Reopen(t, s, keyring(t, newKey))
	got := readAll(t, s, SID(0), SID(1), SID(2), SID(9))
	want[SID(9)] = unreadable(stranger, "auth_token", "shared_key:key-9")
	for sid, w := range want {
		if d := diffAccount(w, got[sid]); d != "" {
			t.Errorf("%s after Reseal, read with the new key alone (-want +got):\n%s", sid, d)
		}
	}
}

func testKeyIDsEmpty(t *testing.T, b Backend) {
	s := b.Open(t, NewKeyring(t))
	ids, err := s.KeyIDs(t.Context())
	if err != nil || len(ids) != 0 {
		t.Errorf("KeyIDs of an empty store = %v, %v; want none, nil", ids, err)
	}
	if n, err := s.Reseal(t.Context()); err != nil || n != 0 {
		t.Errorf("Reseal of an empty store = %d, %v; want 0, nil", n, err)
	}
}
