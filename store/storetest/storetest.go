// Package storetest is a conformance suite for account stores, in the style
// of testing/fstest: every backend (store/sqlite, store/postgres) runs [Run]
// against fresh, empty stores and so behaves the same way.
//
// Time values are compared to the microsecond, the precision of PostgreSQL,
// and must come back in UTC. Nil and empty slices are treated as equal; the
// order of aliases and shared keys is kept.
//
// What it pins, beyond plain reads and writes: optimistic concurrency and
// alias uniqueness (against aliases and SIDs alike) under concurrent
// writers; limits and invalid input refused without side effects, with no
// secret in any error; the Suspended flag; key rotation (Reseal, KeyIDs);
// and isolation: a record whose secrets cannot be read (sealed under another
// key, bound to another account or field, malformed, an unknown algorithm, a
// damaged list of shared keys) is returned by Get, List and All with those
// secrets empty and named in store.Account.Unreadable, fails nothing else,
// and is repaired by Put.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/twilioguard/twilioguard/store"
	"github.com/twilioguard/twilioguard/store/seal"
)

// Store is the behaviour the suite checks.
type Store interface {
	// Get returns the account whose SID or alias is key, or [store.ErrNotFound].
	Get(ctx context.Context, key string) (*store.Account, error)
	// List returns up to limit accounts with SID > afterSID, ordered by SID.
	List(ctx context.Context, afterSID string, limit int) ([]*store.Account, error)
	// Put creates or replaces the account a.SID. expectedVersion 0 means
	// unconditional; otherwise it must equal the stored version.
	Put(ctx context.Context, a *store.Account, expectedVersion int64) (*store.Account, error)
	// Delete removes the account sid, under the same version rule as Put.
	Delete(ctx context.Context, sid string, expectedVersion int64) error
	// All calls fn for every account, stopping at the first error.
	All(ctx context.Context, fn func(*store.Account) error) error
	// Ping reports whether the store can be reached.
	Ping(ctx context.Context) error
	// Reseal seals again with the primary key every secret another key
	// sealed, and returns how many it rewrote.
	Reseal(ctx context.Context) (int, error)
	// KeyIDs counts the stored sealed secrets by the id of the key that
	// sealed them; values that name no key count under "".
	KeyIDs(ctx context.Context) (map[string]int, error)
}

// Backend gives the suite the stores of one backend, and a way behind their
// back to the records they keep.
type Backend struct {
	// Open returns a fresh, empty store that seals with keys, closed in
	// t.Cleanup, and where its database is (a file name, a DSN: whatever
	// the other functions need). Subtests call it in parallel.
	Open func(t *testing.T, keys *seal.Keyring) (s Store, db string)
	// Reopen closes s, a store on database db, and returns another store on
	// db that seals with keys, closed in t.Cleanup.
	Reopen func(t *testing.T, s Store, db string, keys *seal.Keyring) Store
	// Sealed returns the stored, sealed form of one secret of account sid:
	// part is "auth_token", "previous_auth_token" or "shared_key:<id>".
	Sealed func(t *testing.T, db, sid, part string) string
	// Damage overwrites one part of the stored record of account sid,
	// behind the store's back. For the parts Sealed knows, value replaces
	// the sealed secret; for "algorithms:<id>" it is a comma-separated list
	// of algorithm names for that shared key; for "shared_keys" the whole
	// list of shared keys is replaced by something that does not decode
	// (value is ignored). A backend that does not keep a part as one value
	// returns false.
	Damage func(t *testing.T, db, sid, part, value string) bool
}

// Run runs the conformance suite on stores of b.
func Run(t *testing.T, b Backend) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s Store)
	}{
		{"CreateAndGet", testCreateAndGet},
		{"GetMissing", testGetMissing},
		{"Replace", testReplace},
		{"BackendSetsMetadata", testBackendSetsMetadata},
		{"VersionMismatch", testVersionMismatch},
		{"NegativeVersion", testNegativeVersion},
		{"AliasUniqueness", testAliasUniqueness},
		{"AliasAndSIDClash", testAliasAndSIDClash},
		{"AliasMove", testAliasMove},
		{"SecretsRoundTrip", testSecretsRoundTrip},
		{"PreviousTokenRoundTrip", testPreviousTokenRoundTrip},
		{"Suspended", testSuspended},
		{"List", testList},
		{"ListLimit", testListLimit},
		{"Delete", testDelete},
		{"All", testAll},
		{"AllStopsOnError", testAllStopsOnError},
		{"ConcurrentPut", testConcurrentPut},
		{"ConcurrentCreate", testConcurrentCreate},
		{"ConcurrentAliasClaim", testConcurrentAliasClaim},
		{"ReturnsCopies", testReturnsCopies},
		{"InvalidAccount", testInvalidAccount},
		{"Ping", testPing},
		{"CanceledContext", testCanceledContext},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := b.Open(t, Keyring(t, 1))
			tt.fn(t, s)
		})
	}
	secretTests := []struct {
		name string
		fn   func(t *testing.T, b Backend)
	}{
		{"UnknownKey", testUnknownKey},
		{"DamagedRecords", testDamagedRecords},
		{"Reseal", testReseal},
		{"KeyIDsEmpty", testKeyIDsEmpty},
	}
	for _, tt := range secretTests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, b)
		})
	}
}

// Key returns a key made of b repeated: distinct bytes make distinct keys.
func Key(b byte) []byte { return bytes.Repeat([]byte{b}, seal.KeySize) }

// Keyring returns a keyring that seals with Key(primary) and also opens with
// the Keys of old.
func Keyring(t testing.TB, primary byte, old ...byte) *seal.Keyring {
	t.Helper()
	olds := make([][]byte, len(old))
	for i, b := range old {
		olds[i] = Key(b)
	}
	k, err := seal.NewKeyring(Key(primary), olds...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// SID returns a valid account SID made from n.
func SID(n int) string { return fmt.Sprintf("AC%032x", n) }

// newAccount returns a complete account with SID(n), distinct secrets and
// aliases; odd ones are suspended.
func newAccount(n int) *store.Account {
	return &store.Account{
		SID:          SID(n),
		Aliases:      []string{fmt.Sprintf("shop-%d", n), fmt.Sprintf("team-%d", n)},
		FriendlyName: fmt.Sprintf("Account %d", n),
		Suspended:    n%2 == 1,
		AuthToken:    store.Secret(fmt.Sprintf("auth-token-%d-0123456789abcdef", n)),
		SharedKeys: []store.SharedKey{{
			ID:         fmt.Sprintf("key-%d", n),
			Secret:     store.Secret(fmt.Sprintf("shared-secret-%d-fedcba9876543210", n)),
			Algorithms: []store.Algorithm{store.HMACSHA256},
		}},
	}
}

// compareOpts makes times equal within a microsecond and nil slices equal to
// empty ones.
var compareOpts = cmp.Options{
	cmpopts.EquateEmpty(),
	cmp.Comparer(func(a, b time.Time) bool {
		d := a.Sub(b)
		return d < time.Microsecond && d > -time.Microsecond
	}),
}

// diffAccount reports how got differs from want, or "".
func diffAccount(want, got *store.Account) string {
	return cmp.Diff(want, got, compareOpts)
}

// withoutMetadata returns a copy of a without the fields the backend sets.
func withoutMetadata(a *store.Account) *store.Account {
	c := a.Clone()
	c.Version, c.CreateTime, c.UpdateTime = 0, time.Time{}, time.Time{}
	return c
}

func mustPut(t *testing.T, s Store, a *store.Account, expectedVersion int64) *store.Account {
	t.Helper()
	got, err := s.Put(t.Context(), a, expectedVersion)
	if err != nil {
		t.Fatalf("Put(%s, %d) error = %v", a.SID, expectedVersion, err)
	}
	return got
}

func mustGet(t *testing.T, s Store, key string) *store.Account {
	t.Helper()
	got, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q) error = %v", key, err)
	}
	return got
}

func wantNotFound(t *testing.T, s Store, key string) {
	t.Helper()
	if got, err := s.Get(t.Context(), key); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(%q) = %v, %v; want ErrNotFound", key, got, err)
	}
}

func checkUTC(t *testing.T, what string, tm time.Time) {
	t.Helper()
	if !tm.IsZero() && tm.Location() != time.UTC {
		t.Errorf("%s location = %v; want UTC", what, tm.Location())
	}
}

func testCreateAndGet(t *testing.T, s Store) {
	in := newAccount(1)
	put := mustPut(t, s, in, 0)
	if put == in {
		t.Fatal("Put returned its argument; want a copy")
	}
	if put.Version != 1 {
		t.Errorf("Put: Version = %d; want 1", put.Version)
	}
	if put.CreateTime.IsZero() || put.UpdateTime.IsZero() {
		t.Errorf("Put: CreateTime = %v, UpdateTime = %v; want both set", put.CreateTime, put.UpdateTime)
	}
	if put.UpdateTime.Before(put.CreateTime) {
		t.Errorf("Put: UpdateTime %v before CreateTime %v", put.UpdateTime, put.CreateTime)
	}
	if d := diffAccount(in, withoutMetadata(put)); d != "" {
		t.Errorf("Put returned (-want +got):\n%s", d)
	}
	if diff := diffAccount(newAccount(1), in); diff != "" {
		t.Errorf("Put modified its argument (-want +got):\n%s", diff)
	}
	for _, key := range []string{in.SID, in.Aliases[0], in.Aliases[1]} {
		got := mustGet(t, s, key)
		if d := diffAccount(put, got); d != "" {
			t.Errorf("Get(%q) (-want +got):\n%s", key, d)
		}
		checkUTC(t, "CreateTime", got.CreateTime)
		checkUTC(t, "UpdateTime", got.UpdateTime)
	}
}

func testGetMissing(t *testing.T, s Store) {
	mustPut(t, s, newAccount(1), 0)
	for _, key := range []string{"", SID(2), "shop-2", "SHOP-1", "shop-", SID(1) + " "} {
		wantNotFound(t, s, key)
	}
}

func testReplace(t *testing.T, s Store) {
	first := mustPut(t, s, newAccount(1), 0)

	next := newAccount(1)
	next.FriendlyName = "Renamed"
	next.AuthToken = "auth-token-replaced-0123456789"
	next.Aliases = []string{"shop-1", "new-alias"}
	next.SharedKeys = []store.SharedKey{{ID: "key-new", Secret: "shared-secret-new", Algorithms: []store.Algorithm{store.HMACSHA1}}}
	second := mustPut(t, s, next, first.Version)
	if second.Version != 2 {
		t.Errorf("replace: Version = %d; want 2", second.Version)
	}
	if !sameTime(second.CreateTime, first.CreateTime) {
		t.Errorf("replace: CreateTime = %v; want %v (kept)", second.CreateTime, first.CreateTime)
	}
	if second.UpdateTime.Before(first.UpdateTime) {
		t.Errorf("replace: UpdateTime %v before the first UpdateTime %v", second.UpdateTime, first.UpdateTime)
	}
	got := mustGet(t, s, SID(1))
	if d := diffAccount(second, got); d != "" {
		t.Errorf("Get after replace (-want +got):\n%s", d)
	}
	if d := diffAccount(next, withoutMetadata(got)); d != "" {
		t.Errorf("replace did not store the new fields (-want +got):\n%s", d)
	}
	wantNotFound(t, s, "team-1")
	if got := mustGet(t, s, "new-alias"); got.SID != SID(1) {
		t.Errorf("Get(new-alias).SID = %q; want %q", got.SID, SID(1))
	}

	// An unconditional replace also bumps the version; dropping every alias
	// and shared key is a replacement too.
	next.Aliases, next.SharedKeys = nil, nil
	third := mustPut(t, s, next, 0)
	if third.Version != 3 {
		t.Errorf("unconditional replace: Version = %d; want 3", third.Version)
	}
	got = mustGet(t, s, SID(1))
	if len(got.Aliases) != 0 || len(got.SharedKeys) != 0 {
		t.Errorf("after dropping them: Aliases = %q, %d shared keys; want none", got.Aliases, len(got.SharedKeys))
	}
	wantNotFound(t, s, "shop-1")
}

func testBackendSetsMetadata(t *testing.T, s Store) {
	in := newAccount(1)
	in.Version = 42
	in.CreateTime = time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	in.UpdateTime = in.CreateTime
	in.Unreadable = []string{"auth_token"}
	put := mustPut(t, s, in, 0)
	if len(put.Unreadable) != 0 || len(mustGet(t, s, SID(1)).Unreadable) != 0 {
		t.Errorf("Put(account with Unreadable set): Unreadable = %q; want none (the caller's value is ignored)", put.Unreadable)
	}
	if put.Version != 1 {
		t.Errorf("Version = %d; want 1 (the caller's value is ignored)", put.Version)
	}
	if put.CreateTime.Year() == 2001 || put.UpdateTime.Year() == 2001 {
		t.Errorf("CreateTime, UpdateTime = %v, %v; want set by the backend", put.CreateTime, put.UpdateTime)
	}
	in.Version = 0
	in.CreateTime = time.Time{}
	replaced := mustPut(t, s, in, 0)
	if !sameTime(replaced.CreateTime, put.CreateTime) {
		t.Errorf("replace with zero CreateTime: CreateTime = %v; want %v", replaced.CreateTime, put.CreateTime)
	}
}

func sameTime(a, b time.Time) bool {
	return diffAccount(&store.Account{CreateTime: a}, &store.Account{CreateTime: b}) == ""
}

func testVersionMismatch(t *testing.T, s Store) {
	ctx := t.Context()
	if _, err := s.Put(ctx, newAccount(1), 1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Put(absent, expectedVersion=1) error = %v; want ErrNotFound", err)
	}
	wantNotFound(t, s, SID(1))
	if err := s.Delete(ctx, SID(1), 1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Delete(absent, expectedVersion=1) error = %v; want ErrNotFound", err)
	}

	v1 := mustPut(t, s, newAccount(1), 0)
	v2 := mustPut(t, s, newAccount(1), v1.Version)

	stale := newAccount(1)
	stale.FriendlyName = "stale write"
	for _, expected := range []int64{v1.Version, v2.Version + 1} {
		_, err := s.Put(ctx, stale, expected)
		if !errors.Is(err, store.ErrVersionMismatch) {
			t.Errorf("Put(expectedVersion=%d) with stored version %d: error = %v; want ErrVersionMismatch", expected, v2.Version, err)
		}
		noSecrets(t, err, stale)
		if err := s.Delete(ctx, SID(1), expected); !errors.Is(err, store.ErrVersionMismatch) {
			t.Errorf("Delete(expectedVersion=%d) with stored version %d: error = %v; want ErrVersionMismatch", expected, v2.Version, err)
		}
	}
	if d := diffAccount(v2, mustGet(t, s, SID(1))); d != "" {
		t.Errorf("stale writes changed the account (-want +got):\n%s", d)
	}
	if err := s.Delete(ctx, SID(1), v2.Version); err != nil {
		t.Errorf("Delete(current version) error = %v", err)
	}
	wantNotFound(t, s, SID(1))
}

func testNegativeVersion(t *testing.T, s Store) {
	ctx := t.Context()
	put := mustPut(t, s, newAccount(1), 0)
	changed := newAccount(1)
	changed.FriendlyName = "changed"
	if _, err := s.Put(ctx, changed, -1); err == nil {
		t.Error("Put(expectedVersion=-1) succeeded; want an error")
	}
	if err := s.Delete(ctx, SID(1), -1); err == nil {
		t.Error("Delete(expectedVersion=-1) succeeded; want an error")
	}
	if d := diffAccount(put, mustGet(t, s, SID(1))); d != "" {
		t.Errorf("refused writes changed the account (-want +got):\n%s", d)
	}
}

// noSecrets fails the test when err's message holds a secret of a.
func noSecrets(t *testing.T, err error, a *store.Account) {
	t.Helper()
	if err == nil {
		return
	}
	secrets := []store.Secret{a.AuthToken, a.PreviousAuthToken}
	for _, k := range a.SharedKeys {
		secrets = append(secrets, k.Secret)
	}
	for _, secret := range secrets {
		if secret != "" && strings.Contains(err.Error(), secret.Reveal()) {
			t.Errorf("error %q holds a secret (%s)", err, secret.Fingerprint())
		}
	}
}

func testAliasUniqueness(t *testing.T, s Store) {
	ctx := t.Context()
	a := mustPut(t, s, newAccount(1), 0)

	// Creating another account with a taken alias fails and creates nothing.
	b := newAccount(2)
	b.Aliases = []string{"fresh", "shop-1"}
	_, err := s.Put(ctx, b, 0)
	if !errors.Is(err, store.ErrAliasTaken) {
		t.Errorf("Put(new account with a taken alias) error = %v; want ErrAliasTaken", err)
	}
	noSecrets(t, err, b)
	wantNotFound(t, s, SID(2))
	wantNotFound(t, s, "fresh")

	// Replacing an account so that it takes another's alias fails and
	// changes nothing.
	bStored := mustPut(t, s, newAccount(2), 0)
	if _, err := s.Put(ctx, b, bStored.Version); !errors.Is(err, store.ErrAliasTaken) {
		t.Errorf("Put(replace taking a taken alias) error = %v; want ErrAliasTaken", err)
	}
	if d := diffAccount(bStored, mustGet(t, s, SID(2))); d != "" {
		t.Errorf("failed replace changed the account (-want +got):\n%s", d)
	}
	if d := diffAccount(a, mustGet(t, s, "shop-1")); d != "" {
		t.Errorf("alias owner changed (-want +got):\n%s", d)
	}

	// Keeping one's own aliases is fine.
	if _, err := s.Put(ctx, newAccount(1), a.Version); err != nil {
		t.Errorf("Put(account keeping its own aliases) error = %v", err)
	}
}

func testAliasAndSIDClash(t *testing.T, s Store) {
	ctx := t.Context()
	a := mustPut(t, s, newAccount(1), 0)

	// An alias may not be another account's SID.
	b := newAccount(2)
	b.Aliases = []string{SID(1)}
	if _, err := s.Put(ctx, b, 0); !errors.Is(err, store.ErrAliasTaken) {
		t.Errorf("Put(alias = another account's SID) error = %v; want ErrAliasTaken", err)
	}
	wantNotFound(t, s, SID(2))

	// A SID may not be another account's alias.
	c := newAccount(3)
	c.Aliases = []string{SID(4)}
	mustPut(t, s, c, 0)
	if _, err := s.Put(ctx, newAccount(4), 0); !errors.Is(err, store.ErrAliasTaken) {
		t.Errorf("Put(SID = another account's alias) error = %v; want ErrAliasTaken", err)
	}
	if got := mustGet(t, s, SID(4)); got.SID != SID(3) {
		t.Errorf("Get(%s).SID = %q; want %q, whose alias it is", SID(4), got.SID, SID(3))
	}
	if d := diffAccount(a, mustGet(t, s, SID(1))); d != "" {
		t.Errorf("refused writes changed another account (-want +got):\n%s", d)
	}
}

func testAliasMove(t *testing.T, s Store) {
	ctx := t.Context()
	a := mustPut(t, s, newAccount(1), 0)
	mustPut(t, s, newAccount(2), 0)

	// The old owner drops the alias; then another account may take it.
	dropped := newAccount(1)
	dropped.Aliases = []string{"team-1"}
	mustPut(t, s, dropped, a.Version)
	b := newAccount(2)
	b.Aliases = append(b.Aliases, "shop-1")
	if _, err := s.Put(ctx, b, 0); err != nil {
		t.Fatalf("Put(taking a dropped alias) error = %v", err)
	}
	if got := mustGet(t, s, "shop-1"); got.SID != SID(2) {
		t.Errorf("Get(shop-1).SID = %q; want %q", got.SID, SID(2))
	}

	// Deleting an account frees its aliases.
	if err := s.Delete(ctx, SID(1), 0); err != nil {
		t.Fatal(err)
	}
	c := newAccount(3)
	c.Aliases = []string{"team-1"}
	if _, err := s.Put(ctx, c, 0); err != nil {
		t.Fatalf("Put(taking a deleted account's alias) error = %v", err)
	}
	if got := mustGet(t, s, "team-1"); got.SID != SID(3) {
		t.Errorf("Get(team-1).SID = %q; want %q", got.SID, SID(3))
	}
}

func testSecretsRoundTrip(t *testing.T, s Store) {
	in := newAccount(1)
	in.AuthToken = "tok with spaces, ünïcødé and \x00 bytes"
	in.SharedKeys = []store.SharedKey{
		{ID: "z-last-by-name", Secret: "secret-z", Algorithms: []store.Algorithm{store.HMACSHA1, store.HMACSHA256}},
		{ID: "a-first-by-name", Secret: "secret-a", Algorithms: []store.Algorithm{store.HMACSHA256}},
		{ID: "no-algorithms", Secret: "secret-n"},
	}
	in.Aliases = []string{"zeta", "alpha", "mid"}
	put := mustPut(t, s, in, 0)
	got := mustGet(t, s, SID(1))
	if d := diffAccount(put, got); d != "" {
		t.Errorf("Get (-want +got):\n%s", d)
	}
	if d := diffAccount(in, withoutMetadata(got)); d != "" {
		t.Errorf("secrets, aliases or shared keys did not round-trip in order (-want +got):\n%s", d)
	}
}

func testPreviousTokenRoundTrip(t *testing.T, s Store) {
	expire := time.Date(2031, 7, 8, 9, 10, 11, 123456789, time.FixedZone("UTC+5", 5*3600))
	in := newAccount(1)
	in.PreviousAuthToken = "previous-token-0123456789"
	in.PreviousExpireTime = expire
	put := mustPut(t, s, in, 0)
	got := mustGet(t, s, SID(1))
	if d := diffAccount(put, got); d != "" {
		t.Errorf("Get (-want +got):\n%s", d)
	}
	if got.PreviousAuthToken != in.PreviousAuthToken {
		t.Errorf("PreviousAuthToken did not round-trip (fingerprints %s, want %s)", got.PreviousAuthToken.Fingerprint(), in.PreviousAuthToken.Fingerprint())
	}
	if !sameTime(got.PreviousExpireTime, expire) {
		t.Errorf("PreviousExpireTime = %v; want %v", got.PreviousExpireTime, expire)
	}
	checkUTC(t, "PreviousExpireTime", got.PreviousExpireTime)

	// Dropping the previous token clears both fields.
	in.PreviousAuthToken, in.PreviousExpireTime = "", time.Time{}
	mustPut(t, s, in, 0)
	got = mustGet(t, s, SID(1))
	if got.PreviousAuthToken != "" || !got.PreviousExpireTime.IsZero() {
		t.Errorf("after clearing: PreviousAuthToken set = %v, PreviousExpireTime = %v; want empty, zero", got.PreviousAuthToken != "", got.PreviousExpireTime)
	}
}

func testSuspended(t *testing.T, s Store) {
	in := newAccount(2)
	if got := mustPut(t, s, in, 0); got.Suspended {
		t.Error("Put(not suspended) returned Suspended = true")
	}
	in.Suspended = true
	put := mustPut(t, s, in, 0)
	if !put.Suspended || !mustGet(t, s, "shop-2").Suspended {
		t.Error("after Put(suspended): Suspended = false; want true")
	}
	list, err := s.List(t.Context(), "", 10)
	if err != nil || len(list) != 1 || !list[0].Suspended {
		t.Errorf("List = %d accounts, %v; want the suspended one", len(list), err)
	}
	in.Suspended = false
	mustPut(t, s, in, put.Version)
	if mustGet(t, s, SID(2)).Suspended {
		t.Error("after Put(not suspended): Suspended = true; want false")
	}
}

func testList(t *testing.T, s Store) {
	ctx := t.Context()
	const n = 7
	want := make([]*store.Account, n)
	for _, i := range rand.Perm(n) {
		want[i] = mustPut(t, s, newAccount(10*(i+1)), 0)
	}

	all, err := s.List(ctx, "", 100)
	if err != nil {
		t.Fatalf("List(\"\", 100) error = %v", err)
	}
	if d := cmp.Diff(want, all, compareOpts); d != "" {
		t.Errorf("List(\"\", 100) (-want +got):\n%s", d)
	}

	var paged []*store.Account
	after := ""
	for range n + 2 {
		page, err := s.List(ctx, after, 3)
		if err != nil {
			t.Fatalf("List(%q, 3) error = %v", after, err)
		}
		if len(page) > 3 {
			t.Fatalf("List(%q, 3) returned %d accounts", after, len(page))
		}
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
		after = page[len(page)-1].SID
	}
	if d := cmp.Diff(want, paged, compareOpts); d != "" {
		t.Errorf("List in pages of 3 (-want +got):\n%s", d)
	}

	// afterSID need not be a stored SID.
	got, err := s.List(ctx, SID(25), 2)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want[2:4], got, compareOpts); d != "" {
		t.Errorf("List(SID(25), 2) (-want +got):\n%s", d)
	}
	got, err = s.List(ctx, SID(70), 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("List(last SID) returned %d accounts; want 0", len(got))
	}
}

func testListLimit(t *testing.T, s Store) {
	mustPut(t, s, newAccount(1), 0)
	for _, limit := range []int{0, -1} {
		if got, err := s.List(t.Context(), "", limit); err == nil {
			t.Errorf("List(limit %d) = %d accounts, nil; want an error", limit, len(got))
		}
	}
	if got, err := s.List(t.Context(), "", 1); err != nil || len(got) != 1 {
		t.Errorf("List(limit 1) = %d accounts, %v; want 1", len(got), err)
	}
}

func testDelete(t *testing.T, s Store) {
	ctx := t.Context()
	mustPut(t, s, newAccount(1), 0)
	kept := mustPut(t, s, newAccount(2), 0)
	if err := s.Delete(ctx, SID(1), 0); err != nil {
		t.Fatalf("Delete error = %v", err)
	}
	wantNotFound(t, s, SID(1))
	wantNotFound(t, s, "shop-1")
	if err := s.Delete(ctx, SID(1), 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second Delete error = %v; want ErrNotFound", err)
	}
	list, err := s.List(ctx, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]*store.Account{kept}, list, compareOpts); d != "" {
		t.Errorf("List after Delete (-want +got):\n%s", d)
	}
	again := mustPut(t, s, newAccount(1), 0)
	if again.Version != 1 {
		t.Errorf("re-created account: Version = %d; want 1", again.Version)
	}
}

func testAll(t *testing.T, s Store) {
	calls := 0
	if err := s.All(t.Context(), func(*store.Account) error { calls++; return nil }); err != nil || calls != 0 {
		t.Errorf("All on an empty store: %d calls, error %v; want 0, nil", calls, err)
	}
	const n = 25
	want := make(map[string]*store.Account, n)
	for i := range n {
		a := mustPut(t, s, newAccount(i), 0)
		want[a.SID] = a
	}
	got := make(map[string]*store.Account, n)
	err := s.All(t.Context(), func(a *store.Account) error {
		if _, dup := got[a.SID]; dup {
			t.Errorf("All visited %s twice", a.SID)
		}
		got[a.SID] = a
		return nil
	})
	if err != nil {
		t.Fatalf("All error = %v", err)
	}
	if d := cmp.Diff(want, got, compareOpts); d != "" {
		t.Errorf("All (-want +got):\n%s", d)
	}
}

func testAllStopsOnError(t *testing.T, s Store) {
	for i := range 5 {
		mustPut(t, s, newAccount(i), 0)
	}
	stop := errors.New("stop here")
	calls := 0
	err := s.All(t.Context(), func(*store.Account) error {
		calls++
		if calls == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Errorf("All error = %v; want the callback's error", err)
	}
	if calls != 2 {
		t.Errorf("All called fn %d times after it failed on call 2; want 2", calls)
	}
	if err := s.All(t.Context(), func(*store.Account) error { return nil }); err != nil {
		t.Errorf("All on a store after a stopped All: error = %v", err)
	}
}

// writers is how many goroutines the concurrency tests run at once.
const writers = 8

// concurrently runs put(0) to put(writers-1) at once and returns the
// writers whose call succeeded. It fails the test on errors other than
// allowed.
func concurrently(t *testing.T, allowed error, put func(w int) error) []int {
	t.Helper()
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() { errs[w] = put(w) })
	}
	wg.Wait()
	var wins []int
	for w, err := range errs {
		switch {
		case err == nil:
			wins = append(wins, w)
		case allowed == nil || !errors.Is(err, allowed):
			t.Fatalf("writer %d: unexpected error %v", w, err)
		}
	}
	return wins
}

func testConcurrentPut(t *testing.T, s Store) {
	const rounds = 3
	mustPut(t, s, newAccount(1), 0)
	for round := range rounds {
		expected := int64(round + 1)
		wins := concurrently(t, store.ErrVersionMismatch, func(w int) error {
			a := newAccount(1)
			a.FriendlyName = fmt.Sprintf("round %d writer %d", round, w)
			_, err := s.Put(t.Context(), a, expected)
			return err
		})
		if len(wins) != 1 {
			t.Fatalf("round %d: %d writers won with expectedVersion %d; want exactly 1", round, len(wins), expected)
		}
		got := mustGet(t, s, SID(1))
		if got.Version != expected+1 {
			t.Errorf("round %d: Version = %d; want %d", round, got.Version, expected+1)
		}
		if want := fmt.Sprintf("round %d writer %d", round, wins[0]); got.FriendlyName != want {
			t.Errorf("round %d: FriendlyName = %q; want the winner's %q", round, got.FriendlyName, want)
		}
	}
}

func testConcurrentCreate(t *testing.T, s Store) {
	versions := make([]int64, writers)
	concurrently(t, nil, func(w int) error {
		a := newAccount(1)
		a.FriendlyName = fmt.Sprintf("writer %d", w)
		got, err := s.Put(t.Context(), a, 0)
		if err == nil {
			versions[w] = got.Version
		}
		return err
	})
	slices.Sort(versions)
	if want := []int64{1, 2, 3, 4, 5, 6, 7, 8}; !slices.Equal(versions, want) {
		t.Errorf("%d unconditional Puts of one new account returned versions %v; want %v", writers, versions, want)
	}
	if got := mustGet(t, s, SID(1)); got.Version != writers {
		t.Errorf("Version after %d unconditional Puts = %d; want %d", writers, got.Version, writers)
	}
}

func testConcurrentAliasClaim(t *testing.T, s Store) {
	wins := concurrently(t, store.ErrAliasTaken, func(w int) error {
		a := newAccount(w)
		a.Aliases = []string{"contested", fmt.Sprintf("own-%d", w)}
		_, err := s.Put(t.Context(), a, 0)
		return err
	})
	if len(wins) != 1 {
		t.Fatalf("%d accounts took one alias at once; want exactly 1", len(wins))
	}
	if got := mustGet(t, s, "contested"); got.SID != SID(wins[0]) {
		t.Errorf("Get(contested).SID = %q; want the winner %q", got.SID, SID(wins[0]))
	}
	list, err := s.List(t.Context(), "", 100)
	if err != nil || len(list) != 1 {
		t.Errorf("List = %d accounts, %v; want only the winner", len(list), err)
	}
}

// mutate changes every mutable part of a.
func mutate(a *store.Account) {
	a.FriendlyName = "mutated"
	a.Version = 999
	a.AuthToken = "mutated"
	if len(a.Aliases) > 0 {
		a.Aliases[0] = "mutated"
	}
	if len(a.SharedKeys) > 0 {
		a.SharedKeys[0].Secret = "mutated"
		if len(a.SharedKeys[0].Algorithms) > 0 {
			a.SharedKeys[0].Algorithms[0] = "mutated"
		}
	}
}

func testReturnsCopies(t *testing.T, s Store) {
	ctx := t.Context()
	in := newAccount(1)
	put := mustPut(t, s, in, 0)
	want := put.Clone()

	mutate(in)
	mutate(put)
	mutate(mustGet(t, s, SID(1)))
	mutate(mustGet(t, s, "team-1"))
	list, err := s.List(ctx, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range list {
		mutate(a)
	}
	if err := s.All(ctx, func(a *store.Account) error { mutate(a); return nil }); err != nil {
		t.Fatal(err)
	}

	if d := diffAccount(want, mustGet(t, s, SID(1))); d != "" {
		t.Errorf("mutating returned accounts changed the store (-want +got):\n%s", d)
	}
	wantNotFound(t, s, "mutated")
}

func testInvalidAccount(t *testing.T, s Store) {
	tests := []struct {
		name   string
		modify func(a *store.Account)
	}{
		{"empty SID", func(a *store.Account) { a.SID = "" }},
		{"empty auth token", func(a *store.Account) { a.AuthToken = "" }},
		{"duplicate alias", func(a *store.Account) { a.Aliases = []string{"x", "y", "x"} }},
		{"empty alias", func(a *store.Account) { a.Aliases = []string{"x", ""} }},
		{"duplicate shared key id", func(a *store.Account) {
			a.SharedKeys = append(a.SharedKeys, store.SharedKey{ID: a.SharedKeys[0].ID, Secret: "other"})
		}},
		{"shared key without id", func(a *store.Account) { a.SharedKeys[0].ID = "" }},
		{"shared key without secret", func(a *store.Account) { a.SharedKeys[0].Secret = "" }},
		{"unknown algorithm", func(a *store.Account) { a.SharedKeys[0].Algorithms = []store.Algorithm{"HMAC_MD5"} }},
	}
	for _, tt := range tests {
		a := newAccount(1)
		a.PreviousAuthToken = "previous-token-0123456789"
		tt.modify(a)
		got, err := s.Put(t.Context(), a, 0)
		if err == nil {
			t.Errorf("%s: Put = %+v, nil; want an error", tt.name, got)
		}
		noSecrets(t, err, a)
	}
	if list, err := s.List(t.Context(), "", 10); err != nil || len(list) != 0 {
		t.Errorf("after invalid Puts: List = %d accounts, %v; want none", len(list), err)
	}
}

func testPing(t *testing.T, s Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping error = %v", err)
	}
}

func testCanceledContext(t *testing.T, s Store) {
	mustPut(t, s, newAccount(1), 0)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Get(ctx, SID(1)); !errors.Is(err, context.Canceled) {
		t.Errorf("Get(canceled) error = %v; want context.Canceled", err)
	}
	if _, err := s.Put(ctx, newAccount(2), 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Put(canceled) error = %v; want context.Canceled", err)
	}
	wantNotFound(t, s, SID(2))
}

// Values the first release sealed, with Key(7), for account SID(1): its
// auth token, previous auth token and the secret of its shared key "key-1".
// Tests build a database as that release left it with them, and check that
// it reads back as [EarlierAccount]: stored secrets must keep opening.
const (
	EarlierAuthToken         = "v1.1e79cb71.yrjTKwX_B8Qz8X510koH1Zn5Mn61cVeoDxKBSGvxYiZNzHg6mej2Sr2c8r48"
	EarlierPreviousAuthToken = "v1.1e79cb71.TBlItqyNrBXYG5NUlfCqDUWOhW4Uac6K8XnKdTgje-lkc-d98_G8LNVo1gXw7n5fNQ"
	EarlierSharedKey         = "v1.1e79cb71.E-X5iWZzQ1cVl4RXFcbVzwCsWb5cRLd75g8zpjppQwDFNi0qkMsXtn_FCBHPurLD"
)

// EarlierAccount returns the account whose secrets the Earlier values hold,
// with alias "golden", friendly name "Golden", the shared key allowing
// HMAC_SHA256, and no times or version.
func EarlierAccount() *store.Account {
	return &store.Account{
		SID:               SID(1),
		Aliases:           []string{"golden"},
		FriendlyName:      "Golden",
		AuthToken:         "golden-auth-token",
		PreviousAuthToken: "golden-previous-token",
		SharedKeys: []store.SharedKey{{
			ID: "key-1", Secret: "golden-shared-secret", Algorithms: []store.Algorithm{store.HMACSHA256},
		}},
	}
}
