package sqlite_test

import (
	"bytes"
	"database/sql"
	"errors"
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

func keyring(t *testing.T, primary byte, old ...byte) *seal.Keyring {
	t.Helper()
	var olds [][]byte
	for _, b := range old {
		olds = append(olds, bytes.Repeat([]byte{b}, seal.KeySize))
	}
	k, err := seal.NewKeyring(bytes.Repeat([]byte{primary}, seal.KeySize), olds...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

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
	storetest.Run(t, func(t *testing.T) storetest.Store {
		return open(t, filepath.Join(t.TempDir(), "accounts.db"), keyring(t, 1))
	})
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
	s, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(dir, "accounts.db"), Keyring: keyring(t, 1)})
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
	open(t, path, keyring(t, 1))
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
	s, err := sqlite.Open(t.Context(), sqlite.Config{Path: path, Keyring: keyring(t, 1)})
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

	s = open(t, path, keyring(t, 1))
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
	if n != 1 {
		t.Errorf("schema_migrations has %d rows; want 1", n)
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
	s, err := sqlite.Open(t.Context(), sqlite.Config{Path: path, Keyring: keyring(t, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := rawDB(t, path).ExecContext(t.Context(), "INSERT INTO schema_migrations VALUES (9999, '9999_future.sql', 0)"); err != nil {
		t.Fatal(err)
	}
	if s, err := sqlite.Open(t.Context(), sqlite.Config{Path: path, Keyring: keyring(t, 1)}); err == nil {
		s.Close()
		t.Fatal("Open(database from a newer program) succeeded; want error")
	} else if !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open error = %v; want one saying the schema is newer", err)
	}
}

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "accounts.db")
	s, err := sqlite.Open(t.Context(), sqlite.Config{Path: path, Keyring: keyring(t, 1)})
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

	// A keyring without the old key cannot open the secrets, and says so
	// without revealing them.
	wrong := open(t, path, keyring(t, 2))
	_, err = wrong.Get(t.Context(), storetest.SID(0))
	if !errors.Is(err, seal.ErrUnknownKey) {
		t.Errorf("Get with an unknown key: error = %v; want seal.ErrUnknownKey", err)
	}
	if err != nil && strings.Contains(err.Error(), "SECRET") {
		t.Errorf("Get error %q reveals a secret", err)
	}

	// New primary key, old key kept: everything opens; Reseal rewrites
	// every secret (3 per account) without changing versions.
	rotated := open(t, path, keyring(t, 2, 1))
	sqlite.SetPageSize(rotated, 2)
	n, err := rotated.Reseal(t.Context())
	if err != nil {
		t.Fatalf("Reseal error = %v", err)
	}
	if n != 3*len(want) {
		t.Errorf("Reseal rewrote %d secrets; want %d", n, 3*len(want))
	}
	if n, err := rotated.Reseal(t.Context()); err != nil || n != 0 {
		t.Errorf("second Reseal = %d, %v; want 0, nil", n, err)
	}

	// Now the new key alone opens everything, unchanged.
	newOnly := open(t, path, keyring(t, 2))
	got, err := newOnly.List(t.Context(), "", 10)
	if err != nil {
		t.Fatalf("List with only the new key: error = %v", err)
	}
	if d := cmp.Diff(want, got, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("accounts after reseal (-want +got):\n%s", d)
	}
}

func TestSealedValuesAreBoundToTheirRow(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "accounts.db")
	s := open(t, path, keyring(t, 1))
	for i := range 2 {
		if _, err := s.Put(t.Context(), account(i, "bind"), 0); err != nil {
			t.Fatal(err)
		}
	}
	// Copy account 0's sealed auth token over account 1's, and account 1's
	// sealed previous token into its own auth token column.
	db := rawDB(t, path)
	if _, err := db.ExecContext(t.Context(),
		"UPDATE accounts SET auth_token = (SELECT auth_token FROM accounts WHERE sid = ?) WHERE sid = ?",
		storetest.SID(0), storetest.SID(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(t.Context(), storetest.SID(1)); !errors.Is(err, seal.ErrAuthentication) {
		t.Errorf("Get(account with another account's sealed token) error = %v; want seal.ErrAuthentication", err)
	}
	if _, err := db.ExecContext(t.Context(),
		"UPDATE accounts SET auth_token = previous_auth_token WHERE sid = ?", storetest.SID(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(t.Context(), storetest.SID(0)); !errors.Is(err, seal.ErrAuthentication) {
		t.Errorf("Get(account with its previous token in the auth token column) error = %v; want seal.ErrAuthentication", err)
	}
}

func TestAllPages(t *testing.T) {
	t.Parallel()
	s := open(t, filepath.Join(t.TempDir(), "accounts.db"), keyring(t, 1))
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
		{"no path", sqlite.Config{Keyring: keyring(t, 1)}},
		{"no keyring", sqlite.Config{Path: filepath.Join(dir, "a.db")}},
		{"missing directory", sqlite.Config{Path: filepath.Join(dir, "missing", "a.db"), Keyring: keyring(t, 1)}},
		{"query in path", sqlite.Config{Path: filepath.Join(dir, "a.db?mode=ro"), Keyring: keyring(t, 1)}},
	}
	for _, tt := range tests {
		if s, err := sqlite.Open(t.Context(), tt.cfg); err == nil {
			s.Close()
			t.Errorf("%s: Open succeeded; want error", tt.name)
		}
	}
}

func TestListLimit(t *testing.T) {
	t.Parallel()
	s := open(t, filepath.Join(t.TempDir(), "accounts.db"), keyring(t, 1))
	if _, err := s.List(t.Context(), "", 0); err == nil {
		t.Error("List(limit 0) succeeded; want error")
	}
}
