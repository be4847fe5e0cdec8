package atrest_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/twilioguard/twilioguard/store"
	"github.com/twilioguard/twilioguard/store/atrest"
	"github.com/twilioguard/twilioguard/store/storetest"
)

var sid = storetest.SID(1)

// TestOpensValuesSealedByEarlierReleases opens values that store/sqlite
// wrote before this package existed: databases written then must keep
// opening.
func TestOpensValuesSealedByEarlierReleases(t *testing.T) {
	t.Parallel()
	sealed := atrest.Secrets{
		AuthToken:         storetest.EarlierAuthToken,
		PreviousAuthToken: storetest.EarlierPreviousAuthToken,
		SharedKeys: []atrest.SharedKey{{
			ID: "key-1", Secret: storetest.EarlierSharedKey, Algorithms: []store.Algorithm{store.HMACSHA256},
		}},
	}
	a := &store.Account{SID: sid}
	atrest.New(storetest.Keyring(t, 7)).Open(a, sealed)
	want := storetest.EarlierAccount()
	want.Aliases, want.FriendlyName = nil, ""
	if d := cmp.Diff(want, a); d != "" {
		t.Errorf("Open(values of an earlier release) (-want +got):\n%s", d)
	}
}

func account() *store.Account {
	return &store.Account{
		SID:               sid,
		AuthToken:         "auth-token-0123",
		PreviousAuthToken: "previous-token-4567",
		SharedKeys: []store.SharedKey{
			{ID: "k1", Secret: "shared-1", Algorithms: []store.Algorithm{store.HMACSHA1, store.HMACSHA256}},
			{ID: "k2", Secret: "shared-2"},
		},
	}
}

// secretsOf returns only the secret fields of a, for comparison.
func secretsOf(a *store.Account) *store.Account {
	return &store.Account{AuthToken: a.AuthToken, PreviousAuthToken: a.PreviousAuthToken,
		SharedKeys: a.SharedKeys, Unreadable: a.Unreadable}
}

func TestSealOpen(t *testing.T) {
	t.Parallel()
	c := atrest.New(storetest.Keyring(t, 1))
	in := account()
	sealed, err := c.Seal(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{sealed.AuthToken, sealed.PreviousAuthToken, sealed.SharedKeys[0].Secret, sealed.SharedKeys[1].Secret} {
		if !strings.HasPrefix(v, "v1.") || strings.Contains(v, "shared-") || strings.Contains(v, "token") {
			t.Errorf("sealed value %q is not a sealed value, or shows its secret", v)
		}
	}
	got := &store.Account{SID: sid, Unreadable: []string{"stale"}}
	c.Open(got, sealed)
	if d := cmp.Diff(secretsOf(in), secretsOf(got), cmpopts.EquateEmpty()); d != "" {
		t.Errorf("Open(Seal(a)) (-want +got):\n%s", d)
	}

	// Without a previous token nothing is sealed for it.
	in.PreviousAuthToken = ""
	sealed, err = c.Seal(in)
	if err != nil {
		t.Fatal(err)
	}
	if sealed.PreviousAuthToken != "" {
		t.Errorf("sealed previous token = %q; want \"\" when there is none", sealed.PreviousAuthToken)
	}
}

func TestOpenUnreadable(t *testing.T) {
	t.Parallel()
	writer := atrest.New(storetest.Keyring(t, 1))
	sealed, err := writer.Seal(account())
	if err != nil {
		t.Fatal(err)
	}
	other, err := writer.Seal(&store.Account{SID: storetest.SID(2), AuthToken: "other"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		reader *atrest.Codec
		damage func(s *atrest.Secrets)
		want   *store.Account
	}{{
		name:   "unknown key",
		reader: atrest.New(storetest.Keyring(t, 2)),
		want: &store.Account{
			SharedKeys: []store.SharedKey{{ID: "k1"}, {ID: "k2"}},
			Unreadable: []string{"auth_token", "previous_auth_token", "shared_key:k1", "shared_key:k2"},
		},
	}, {
		name:   "auth token of another account",
		reader: writer,
		damage: func(s *atrest.Secrets) { s.AuthToken = other.AuthToken },
		want: &store.Account{
			PreviousAuthToken: "previous-token-4567",
			SharedKeys:        account().SharedKeys,
			Unreadable:        []string{"auth_token"},
		},
	}, {
		name:   "previous token in the auth token's place",
		reader: writer,
		damage: func(s *atrest.Secrets) { s.AuthToken, s.PreviousAuthToken = s.PreviousAuthToken, "not sealed" },
		want: &store.Account{
			SharedKeys: account().SharedKeys,
			Unreadable: []string{"auth_token", "previous_auth_token"},
		},
	}, {
		name:   "empty auth token",
		reader: writer,
		damage: func(s *atrest.Secrets) { s.AuthToken = "" },
		want: &store.Account{
			PreviousAuthToken: "previous-token-4567",
			SharedKeys:        account().SharedKeys,
			Unreadable:        []string{"auth_token"},
		},
	}, {
		name:   "unknown algorithm",
		reader: writer,
		damage: func(s *atrest.Secrets) { s.SharedKeys[1].Algorithms = []store.Algorithm{"HMAC_MD5"} },
		want: &store.Account{
			AuthToken:         "auth-token-0123",
			PreviousAuthToken: "previous-token-4567",
			SharedKeys:        []store.SharedKey{account().SharedKeys[0], {ID: "k2"}},
			Unreadable:        []string{"shared_key:k2"},
		},
	}, {
		name:   "shared key secret under another id",
		reader: writer,
		damage: func(s *atrest.Secrets) { s.SharedKeys[0].ID = "renamed" },
		want: &store.Account{
			AuthToken:         "auth-token-0123",
			PreviousAuthToken: "previous-token-4567",
			SharedKeys:        []store.SharedKey{{ID: "renamed"}, account().SharedKeys[1]},
			Unreadable:        []string{"shared_key:renamed"},
		},
	}, {
		name:   "damaged list of shared keys",
		reader: writer,
		damage: func(s *atrest.Secrets) { s.SharedKeys, s.SharedKeysDamaged = nil, true },
		want: &store.Account{
			AuthToken:         "auth-token-0123",
			PreviousAuthToken: "previous-token-4567",
			Unreadable:        []string{"shared_keys"},
		},
	}}
	for _, tt := range tests {
		s := sealed
		s.SharedKeys = slices.Clone(sealed.SharedKeys)
		if tt.damage != nil {
			tt.damage(&s)
		}
		got := &store.Account{SID: sid, FriendlyName: "kept"}
		tt.reader.Open(got, s)
		if got.SID != sid || got.FriendlyName != "kept" {
			t.Errorf("%s: Open changed other fields: %q %q", tt.name, got.SID, got.FriendlyName)
		}
		if d := cmp.Diff(tt.want, secretsOf(got), cmpopts.EquateEmpty()); d != "" {
			t.Errorf("%s: Open (-want +got):\n%s", tt.name, d)
		}
	}
}

// memDB is a [atrest.DB] over records in memory. It counts transactions and
// can fail the next one.
type memDB struct {
	records []atrest.Record // in SID order
	views   int
	updates int
	failOn  int // fail the update with this number (1-based); 0: never
}

var errInjected = errors.New("injected failure")

func (m *memDB) View(ctx context.Context, fn func(atrest.Tx) error) error {
	m.views++
	return fn(&memTx{db: m, records: m.records})
}

func (m *memDB) Update(ctx context.Context, fn func(atrest.Tx) error) error {
	m.updates++
	tx := &memTx{db: m, records: slices.Clone(m.records)}
	if err := fn(tx); err != nil {
		return err
	}
	if m.updates == m.failOn {
		return errInjected
	}
	m.records = tx.records
	return nil
}

type memTx struct {
	db      *memDB
	records []atrest.Record
}

func (t *memTx) Records(ctx context.Context, after string, limit int) ([]atrest.Record, error) {
	var out []atrest.Record
	for _, r := range t.records {
		if r.SID > after && len(out) < limit {
			r.SharedKeys = slices.Clone(r.SharedKeys)
			out = append(out, r)
		}
	}
	return out, nil
}

func (t *memTx) Write(ctx context.Context, r atrest.Record) error {
	for i := range t.records {
		if t.records[i].SID == r.SID {
			t.records[i] = r
			return nil
		}
	}
	return fmt.Errorf("no record %s", r.SID)
}

// sealedDB returns n accounts sealed by c, with SIDs in order.
func sealedDB(t *testing.T, c *atrest.Codec, n int) *memDB {
	t.Helper()
	db := &memDB{}
	for i := range n {
		a := account()
		a.SID = storetest.SID(i)
		s, err := c.Seal(a)
		if err != nil {
			t.Fatal(err)
		}
		db.records = append(db.records, atrest.Record{SID: a.SID, Secrets: s})
	}
	return db
}

func TestResealAndKeyIDs(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	oldKeys, rotated, newKeys := storetest.Keyring(t, 1), storetest.Keyring(t, 2, 1), storetest.Keyring(t, 2)
	oldID, newID := oldKeys.PrimaryID(), newKeys.PrimaryID()
	db := sealedDB(t, atrest.New(oldKeys), 5)
	// A value no key opens, and one that is not sealed at all.
	stranger, err := atrest.New(storetest.Keyring(t, 3)).Seal(&store.Account{SID: db.records[4].SID, AuthToken: "x"})
	if err != nil {
		t.Fatal(err)
	}
	db.records[4].AuthToken = stranger.AuthToken
	db.records[3].PreviousAuthToken = "damaged"

	counts, err := atrest.KeyIDs(ctx, db, 2)
	if err != nil {
		t.Fatal(err)
	}
	strangerID := storetest.Keyring(t, 3).PrimaryID()
	want := map[string]int{oldID: 5*4 - 2, strangerID: 1, "": 1}
	if d := cmp.Diff(want, counts); d != "" {
		t.Errorf("KeyIDs before reseal (-want +got):\n%s", d)
	}
	if db.views != 3 || db.updates != 0 {
		t.Errorf("KeyIDs over 5 records in pages of 2: %d views, %d updates; want 3 and 0", db.views, db.updates)
	}

	n, err := atrest.New(rotated).Reseal(ctx, db, 2)
	if err != nil || n != 18 {
		t.Errorf("Reseal = %d, %v; want 18 (every readable value), nil", n, err)
	}
	if n, err := atrest.New(rotated).Reseal(ctx, db, 2); err != nil || n != 0 {
		t.Errorf("second Reseal = %d, %v; want 0, nil", n, err)
	}
	counts, err = atrest.KeyIDs(ctx, db, 10)
	if err != nil {
		t.Fatal(err)
	}
	want = map[string]int{newID: 18, strangerID: 1, "": 1}
	if d := cmp.Diff(want, counts); d != "" {
		t.Errorf("KeyIDs after reseal (-want +got):\n%s", d)
	}

	// The new key alone opens every value the old one did.
	for i, r := range db.records {
		a := &store.Account{SID: r.SID}
		atrest.New(newKeys).Open(a, r.Secrets)
		var wantUnreadable []string
		switch i {
		case 3:
			wantUnreadable = []string{"previous_auth_token"}
		case 4:
			wantUnreadable = []string{"auth_token"}
		}
		if !slices.Equal(a.Unreadable, wantUnreadable) {
			t.Errorf("%s after reseal: Unreadable = %q; want %q", r.SID, a.Unreadable, wantUnreadable)
		}
	}
}

func TestResealCountsCommittedPages(t *testing.T) {
	t.Parallel()
	db := sealedDB(t, atrest.New(storetest.Keyring(t, 1)), 5)
	db.failOn = 2
	n, err := atrest.New(storetest.Keyring(t, 2, 1)).Reseal(t.Context(), db, 2)
	if !errors.Is(err, errInjected) || n != 2*4 {
		t.Errorf("Reseal with the second page failing = %d, %v; want 8 (the first page), the failure", n, err)
	}
	if _, err := atrest.New(storetest.Keyring(t, 1)).Reseal(t.Context(), db, 0); err == nil {
		t.Error("Reseal(page size 0) succeeded; want an error")
	}
}
