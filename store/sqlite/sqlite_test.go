package sqlite_test

import (
	"bytes"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/twilioguard/twilioguard/store"
	"github.com/twilioguard/twilioguard/store/seal"
	"github.com/twilioguard/twilioguard/store/sqlite"
	"github.com/twilioguard/twilioguard/store/storetest"
)

func open(t *testing.T, path string, k *seal.Keyring) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), sqlite.Config{Path: path, Keyring: k})
	if err != nil {
		t.Fatalf("Open error = %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close error = %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, backend())
}

// backend gives storetest SQLite files in temporary directories.
func backend() storetest.Backend {
	// column returns the table, column and row condition holding part.
	column := func(t *testing.T, part string) (table, col, where string, args []any) {
		if id, ok := strings.CutPrefix(part, "shared_key:"); ok {
			return "shared_keys", "secret", " AND key_id = ?", []any{id}
		}
		if id, ok := strings.CutPrefix(part, "algorithms:"); ok {
			return "shared_keys", "algorithms", " AND key_id = ?", []any{id}
		}
		if part != "auth_token" && part != "previous_auth_token" {
			t.Fatalf("unknown part %q", part)
		}
		return "accounts", part, "", nil
	}
	return storetest.Backend{
		Open: func(t *testing.T, keys *seal.Keyring) (storetest.Store, string) {
			path := filepath.Join(t.TempDir(), "accounts.db")
			return open(t, path, keys), path
		},
		Reopen: func(t *testing.T, s storetest.Store, path string, keys *seal.Keyring) storetest.Store {
			if err := s.(*sqlite.Store).Close(); err != nil {
				t.Fatal(err)
			}
			return open(t, path, keys)
		},
		Sealed: func(t *testing.T, path, sid, part string) string {
			table, col, where, args := column(t, part)
			var v string
			if err := rawDB(t, path).QueryRowContext(t.Context(),
				"SELECT "+col+" FROM "+table+" WHERE sid = ?"+where, append([]any{sid}, args...)...).Scan(&v); err != nil {
				t.Fatalf("read %s of %s: %v", part, sid, err)
			}
			return v
		},
		Damage: func(t *testing.T, path, sid, part, value string) bool {
			if part == "shared_keys" {
				return false // each shared key is a row of its own
			}
			table, col, where, args := column(t, part)
			res, err := rawDB(t, path).ExecContext(t.Context(),
				"UPDATE "+table+" SET "+col+" = ? WHERE sid = ?"+where, append([]any{value, sid}, args...)...)
			if err != nil {
				t.Fatalf("damage %s of %s: %v", part, sid, err)
			}
			if n, err := res.RowsAffected(); err != nil || n != 1 {
				t.Fatalf("damage %s of %s: %d rows changed, %v; want 1", part, sid, n, err)
			}
			return true
		},
	}
}

// account returns an account whose every secret is distinct and easy to find
// in a file.
func account(n int, tag string) *store.Account {
	return &store.Account{
		SID:                storetest.SID(n),
		Aliases:            []string{fmt.Sprintf("alias-%d", n)},
		FriendlyName:       fmt.Sprintf("Friendly %d", n),
		AuthToken:          store.Secret(fmt.Sprintf("SECRET-auth-%s-%d-9f8e7d6c", tag, n)),
		PreviousAuthToken:  store.Secret(fmt.Sprintf("SECRET-prev-%s-%d-5a4b3c2d", tag, n)),
		PreviousExpireTime: time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC),
		SharedKeys: []store.SharedKey{{
			ID:         "key-1",
			Secret:     store.Secret(fmt.Sprintf("SECRET-shared-%s-%d-1a2b3c4d", tag, n)),
			Algorithms: []store.Algorithm{store.HMACSHA1, store.HMACSHA256},
		}},
	}
}

func secretsOf(a *store.Account) []string {
	s := []string{a.AuthToken.Reveal(), a.PreviousAuthToken.Reveal()}
	for _, k := range a.SharedKeys {
		s = append(s, k.Secret.Reveal())
	}
	return s
}

// readDir returns the contents of every file in dir, by name.
func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = b
	}
	return files
}

func TestNoPlaintextSecrets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(dir, "accounts.db"), Keyring: storetest.Keyring(t, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var secrets []string
	for i := range 3 {
		for _, tag := range []string{"first", "replaced"} {
			a := account(i, tag)
			secrets = append(secrets, secretsOf(a)...)
			if _, err := s.Put(t.Context(), a, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Delete(t.Context(), storetest.SID(2), 0); err != nil {
		t.Fatal(err)
	}

	check := func(when string, wantFiles ...string) {
		files := readDir(t, dir)
		for _, name := range wantFiles {
			if _, ok := files[name]; !ok {
				t.Errorf("%s: no file %s among %d files", when, name, len(files))
			}
		}
		var all []byte
		for name, b := range files {
			all = append(all, b...)
			for _, secret := range secrets {
				if bytes.Contains(b, []byte(secret)) {
					t.Errorf("%s: file %s holds a secret in plain text (%s)", when, name, store.Secret(secret).Fingerprint())
				}
			}
		}
		// The files do hold the account data, so the search above looks
		// in the right place.
		if !bytes.Contains(all, []byte(storetest.SID(1))) || !bytes.Contains(all, []byte("Friendly 1")) {
			t.Errorf("%s: the files do not hold the plain-text SID and friendly name; the search is broken", when)
		}
	}
	check("open", "accounts.db", "accounts.db-wal")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check("closed", "accounts.db")
}

func TestFileMode(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "accounts.db")
	open(t, path, storetest.Keyring(t, 1))
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("database file mode = %v; want 0600", got)
	}
}

func TestReopenPersists(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "accounts.db")
	s, err := sqlite.Open(t.Context(), sqlite.Config{Path: path, Keyring: storetest.Keyring(t, 1)})
	if err != nil {
		t.Fatal(err)
	}
	want, err := s.Put(t.Context(), account(1, "x"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, path, storetest.Keyring(t, 1))
	got, err := s.Get(t.Context(), "alias-1")
	if err != nil {
		t.Fatalf("Get after reopen error = %v", err)
	}
	if d := cmp.Diff(want, got, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("Get after reopen (-want +got):\n%s", d)
	}

	// Migrations ran once.
	db := rawDB(t, path)
	var n int
	if err := db.QueryRowContext(t.Context(), "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) < 2 {
		t.Fatalf("migration files: %v, %v", files, err)
	}
	if n != len(files) {
		t.Errorf("schema_migrations has %d rows; want %d, one per migration", n, len(files))
	}
}

// rawDB opens path with no store around it.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestNewerSchemaRefused(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "accounts.db")
	s, err := sqlite.Open(t.Context(), sqlite.Config{Path: path, Keyring: storetest.Keyring(t, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := rawDB(t, path).ExecContext(t.Context(), "INSERT INTO schema_migrations VALUES (9999, '9999_future.sql', 0)"); err != nil {
		t.Fatal(err)
	}
	if s, err := sqlite.Open(t.Context(), sqlite.Config{Path: path, Keyring: storetest.Keyring(t, 1)}); err == nil {
		s.Close()
		t.Fatal("Open(database from a newer program) succeeded; want error")
	} else if !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open error = %v; want one saying the schema is newer", err)
	}
}

// TestResealPages rotates the key over more accounts than fit in a page.
func TestResealPages(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "accounts.db")
	s, err := sqlite.Open(t.Context(), sqlite.Config{Path: path, Keyring: storetest.Keyring(t, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var want []*store.Account
	for i := range 5 {
		a, err := s.Put(t.Context(), account(i, "rot"), 0)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, a)
	}
	s.Close()

	rotated := open(t, path, storetest.Keyring(t, 2, 1))
	sqlite.SetPageSize(rotated, 2)
	n, err := rotated.Reseal(t.Context())
	if err != nil || n != 3*len(want) {
		t.Errorf("Reseal in pages of 2 = %d, %v; want %d, nil", n, err, 3*len(want))
	}
	ids, err := rotated.KeyIDs(t.Context())
	if want := map[string]int{storetest.Keyring(t, 2).PrimaryID(): 3 * len(want)}; err != nil || !cmp.Equal(want, ids) {
		t.Errorf("KeyIDs in pages of 2 = %v, %v; want %v", ids, err, want)
	}
	rotated.Close()

	got, err := open(t, path, storetest.Keyring(t, 2)).List(t.Context(), "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("accounts after reseal, read with the new key alone (-want +got):\n%s", d)
	}
}

func TestAllPages(t *testing.T) {
	t.Parallel()
	s := open(t, filepath.Join(t.TempDir(), "accounts.db"), storetest.Keyring(t, 1))
	sqlite.SetPageSize(s, 3)
	calls := 0
	if err := s.All(t.Context(), func(*store.Account) error { calls++; return nil }); err != nil || calls != 0 {
		t.Errorf("All on an empty store: %d calls, error %v; want 0, nil", calls, err)
	}
	for _, n := range []int{6, 10} {
		for i := range n {
			if _, err := s.Put(t.Context(), account(i, "page"), 0); err != nil {
				t.Fatal(err)
			}
		}
		var sids []string
		if err := s.All(t.Context(), func(a *store.Account) error {
			if len(a.SharedKeys) != 1 || len(a.Aliases) != 1 {
				t.Errorf("All: %s has %d shared keys and %d aliases; want 1 and 1", a.SID, len(a.SharedKeys), len(a.Aliases))
			}
			sids = append(sids, a.SID)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		var want []string
		for i := range n {
			want = append(want, storetest.SID(i))
		}
		if d := cmp.Diff(want, sids); d != "" {
			t.Errorf("All over %d accounts in pages of 3 (-want +got):\n%s", n, d)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  sqlite.Config
	}{
		{"no path", sqlite.Config{Keyring: storetest.Keyring(t, 1)}},
		{"no keyring", sqlite.Config{Path: filepath.Join(dir, "a.db")}},
		{"missing directory", sqlite.Config{Path: filepath.Join(dir, "missing", "a.db"), Keyring: storetest.Keyring(t, 1)}},
		{"query in path", sqlite.Config{Path: filepath.Join(dir, "a.db?mode=ro"), Keyring: storetest.Keyring(t, 1)}},
	}
	for _, tt := range tests {
		if s, err := sqlite.Open(t.Context(), tt.cfg); err == nil {
			s.Close()
			t.Errorf("%s: Open succeeded; want error", tt.name)
		}
	}
}

// TestOpensEarlierDatabase opens a database as the first release left it:
// schema version 1, secrets sealed (with key 0x07 repeated) before
// store/atrest existed. Open migrates it and every value reads back.
func TestOpensEarlierDatabase(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "accounts.db")
	first, err := os.ReadFile("migrations/0001_accounts.sql")
	if err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	for _, q := range []string{
		`CREATE TABLE schema_migrations (
			version      INTEGER NOT NULL PRIMARY KEY,
			name         TEXT    NOT NULL,
			applied_time INTEGER NOT NULL
		) STRICT`,
		`INSERT INTO schema_migrations VALUES (1, '0001_accounts.sql', 0)`,
		string(first),
		`INSERT INTO accounts VALUES ('` + storetest.SID(1) + `', 'Golden',
			'` + storetest.EarlierAuthToken + `', '` + storetest.EarlierPreviousAuthToken + `',
			2208988800000000000, 1700000000000000000, 1700000001000000000, 3)`,
		`INSERT INTO account_aliases VALUES ('golden', '` + storetest.SID(1) + `', 0)`,
		`INSERT INTO shared_keys VALUES ('` + storetest.SID(1) + `', 'key-1', 0,
			'` + storetest.EarlierSharedKey + `', 'HMAC_SHA256')`,
	} {
		if _, err := db.ExecContext(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	got, err := open(t, path, storetest.Keyring(t, 7)).Get(t.Context(), "golden")
	if err != nil {
		t.Fatal(err)
	}
	want := storetest.EarlierAccount()
	want.PreviousExpireTime = time.Unix(0, 2208988800000000000).UTC()
	want.CreateTime = time.Unix(0, 1700000000000000000).UTC()
	want.UpdateTime = time.Unix(0, 1700000001000000000).UTC()
	want.Version = 3
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("account of an earlier release (-want +got):\n%s", d)
	}
}
