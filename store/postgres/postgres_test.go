package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/twilioguard/twilioguard/internal/pgtest"
	"github.com/twilioguard/twilioguard/store"
	"github.com/twilioguard/twilioguard/store/postgres"
	"github.com/twilioguard/twilioguard/store/seal"
	"github.com/twilioguard/twilioguard/store/storetest"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestStore(t *testing.T) {
	t.Parallel()
	storetest.Run(t, backend(requireEnv(t, envDSN)[0]))
}

// backend gives storetest a fresh database on the server base names for
// every store.
func backend(base string) storetest.Backend {
	conn := func(t *testing.T, dsn string) *pgx.Conn {
		c, err := pgx.Connect(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.WithoutCancel(t.Context())) })
		return c
	}
	return storetest.Backend{
		Open: func(t *testing.T, keys *seal.Keyring) (storetest.Store, string) {
			dsn := pgtest.NewDatabase(t, base)
			return openStore(t, dsn, keys), dsn
		},
		Reopen: func(t *testing.T, s storetest.Store, dsn string, keys *seal.Keyring) storetest.Store {
			s.(*postgres.Store).Close()
			return openStore(t, dsn, keys)
		},
		Sealed: func(t *testing.T, dsn, sid, part string) string {
			var v string
			var err error
			if id, ok := strings.CutPrefix(part, "shared_key:"); ok {
				err = conn(t, dsn).QueryRow(t.Context(), `SELECT k->>'secret' FROM accounts, jsonb_array_elements(shared_keys) k
					WHERE sid = $1 AND k->>'id' = $2`, sid, id).Scan(&v)
			} else {
				err = conn(t, dsn).QueryRow(t.Context(), "SELECT "+pgx.Identifier{part}.Sanitize()+" FROM accounts WHERE sid = $1", sid).Scan(&v)
			}
			if err != nil {
				t.Fatalf("read %s of %s: %v", part, sid, err)
			}
			return v
		},
		Damage: func(t *testing.T, dsn, sid, part, value string) bool {
			c := conn(t, dsn)
			var (
				tag pgconn.CommandTag
				err error
			)
			// setKey sets a field of the shared key with this id to a JSON value.
			setKey := func(id, field string, v any) (pgconn.CommandTag, error) {
				j, err := json.Marshal(v)
				if err != nil {
					t.Fatal(err)
				}
				return c.Exec(t.Context(), `UPDATE accounts SET shared_keys = (
					SELECT jsonb_agg(CASE WHEN k->>'id' = $2 THEN jsonb_set(k, $3, $4) ELSE k END ORDER BY i)
					FROM jsonb_array_elements(shared_keys) WITH ORDINALITY AS x(k, i)) WHERE sid = $1`,
					sid, id, []string{field}, string(j))
			}
			if id, ok := strings.CutPrefix(part, "shared_key:"); ok {
				tag, err = setKey(id, "secret", value)
			} else if id, ok := strings.CutPrefix(part, "algorithms:"); ok {
				tag, err = setKey(id, "algorithms", strings.Split(value, ","))
			} else if part == "shared_keys" {
				tag, err = c.Exec(t.Context(), `UPDATE accounts SET shared_keys = '{"not": "a list"}' WHERE sid = $1`, sid)
			} else {
				tag, err = c.Exec(t.Context(), "UPDATE accounts SET "+pgx.Identifier{part}.Sanitize()+" = $2 WHERE sid = $1", sid, value)
			}
			if err != nil || tag.RowsAffected() != 1 {
				t.Fatalf("damage %s of %s: %d rows changed, %v; want 1", part, sid, tag.RowsAffected(), err)
			}
			return true
		},
	}
}

func TestOpenRequiresKeyring(t *testing.T) {
	t.Parallel()
	_, err := postgres.Open(t.Context(), postgres.Config{DSN: "postgres://127.0.0.1:1/x"})
	if err == nil || !strings.Contains(err.Error(), "TWILIOGUARD_SECRET_KEY") {
		t.Errorf("Open without a keyring: error = %v; want one naming TWILIOGUARD_SECRET_KEY", err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	// A port that was just free: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	const password = "hunter2-do-not-leak"
	_, err = postgres.Open(t.Context(), postgres.Config{
		DSN:     "postgres://someone:" + password + "@" + addr + "/db?sslmode=disable",
		Keyring: newKeyring(t),
	})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Open(unreachable) error = %v; want ErrUnavailable", err)
	}
	if err != nil && (strings.Contains(err.Error(), password) || strings.Contains(err.Error(), "someone")) {
		t.Errorf("Open(unreachable) error %q reveals the DSN", err)
	}
}

func TestOpenBadDSN(t *testing.T) {
	t.Parallel()
	const dsn = "postgres://user:secret-pw@host:notaport/db"
	_, err := postgres.Open(t.Context(), postgres.Config{DSN: dsn, Keyring: newKeyring(t)})
	if err == nil {
		t.Fatal("Open(bad DSN) = nil error")
	}
	if strings.Contains(err.Error(), "secret-pw") {
		t.Errorf("Open(bad DSN) error %q reveals the password", err)
	}
}

// TestConcurrentOpen starts several stores on one empty database at once, as
// replicas do: the advisory lock lets exactly one of them migrate.
func TestConcurrentOpen(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t, requireEnv(t, envDSN)[0])
	keys := newKeyring(t)
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			s, err := postgres.Open(t.Context(), postgres.Config{DSN: dsn, Keyring: keys})
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open #%d: %v", i, err)
		}
	}
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var rows, distinct int
	if err := conn.QueryRow(t.Context(), "SELECT count(*), count(DISTINCT version) FROM schema_migrations").Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows == 0 || rows != distinct {
		t.Errorf("schema_migrations has %d rows for %d versions; want each migration applied once", rows, distinct)
	}
}

func TestSecretsSealedAtRest(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t, requireEnv(t, envDSN)[0])
	s := openStore(t, dsn, newKeyring(t))
	a := &store.Account{
		SID:                storetest.SID(1),
		AuthToken:          "plain-auth-token-0123456789",
		PreviousAuthToken:  "plain-previous-token-0123",
		PreviousExpireTime: time.Now().Add(time.Hour),
		SharedKeys:         []store.SharedKey{{ID: "k1", Secret: "plain-shared-secret-0123"}},
	}
	if _, err := s.Put(t.Context(), a, 0); err != nil {
		t.Fatal(err)
	}

	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var raw string
	if err := conn.QueryRow(t.Context(), "SELECT accounts::text FROM accounts").Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(raw, a.SID) {
		t.Fatalf("the stored row %q does not hold the SID; the search below is broken", raw)
	}
	for _, secret := range []string{"plain-auth-token", "plain-previous-token", "plain-shared-secret"} {
		if strings.Contains(raw, secret) {
			t.Errorf("the stored row contains %q in plaintext", secret)
		}
	}
}

// watcher runs s.Watch until the test ends and passes on every callback.
func watcher(t *testing.T, s *postgres.Store) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	ch := make(chan string, 100)
	done := make(chan error, 1)
	go func() { done <- s.Watch(ctx, func(sid string) { ch <- sid }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Watch returned %v; want context.Canceled", err)
		}
	})
	return ch
}

// next returns the next Watch callback, failing the test after timeout.
func next(t *testing.T, ch <-chan string, timeout time.Duration) string {
	t.Helper()
	select {
	case sid := <-ch:
		return sid
	case <-time.After(timeout):
		t.Fatalf("no Watch callback within %v", timeout)
		return ""
	}
}

func TestWatch(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t, requireEnv(t, envDSN)[0])
	keys := newKeyring(t)
	writer, reader := openStore(t, dsn, keys), openStore(t, dsn, keys)
	changes := watcher(t, reader)
	if got := next(t, changes, 10*time.Second); got != "" {
		t.Fatalf("first Watch callback = %q; want \"\" (resync)", got)
	}

	a := &store.Account{SID: storetest.SID(7), AuthToken: "token-0123456789", Aliases: []string{"shop"}}
	var latencies []time.Duration
	steps := []struct {
		name string
		do   func() error
	}{
		{"create", func() error { _, err := writer.Put(t.Context(), a, 0); return err }},
		{"replace", func() error { _, err := writer.Put(t.Context(), a, 1); return err }},
		{"delete", func() error { return writer.Delete(t.Context(), a.SID, 0) }},
	}
	for _, step := range steps {
		start := time.Now()
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if got := next(t, changes, 10*time.Second); got != a.SID {
			t.Errorf("after %s: Watch callback = %q; want %q", step.name, got, a.SID)
		}
		latencies = append(latencies, time.Since(start))
	}
	t.Logf("change-to-callback latency (write included): %v", latencies)

	// A failed write announces nothing.
	if _, err := writer.Put(t.Context(), a, 5); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Put(absent, version 5) error = %v; want ErrNotFound", err)
	}
	select {
	case got := <-changes:
		t.Errorf("Watch callback %q after a failed write; want none", got)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestWatchReconnects stops the database server under a watching store. It
// is not parallel: it owns the envCtl server while it runs.
func TestWatchReconnects(t *testing.T) {
	env := requireEnv(t, envCtlDSN, envCtl)
	ctl := env[1]
	dsn := pgtest.NewDatabase(t, env[0])
	keys := newKeyring(t)
	s := openStore(t, dsn, keys)
	changes := watcher(t, s)
	if got := next(t, changes, 10*time.Second); got != "" {
		t.Fatalf("first Watch callback = %q; want \"\"", got)
	}
	a := &store.Account{SID: storetest.SID(1), AuthToken: "token-0123456789"}
	if _, err := s.Put(t.Context(), a, 0); err != nil {
		t.Fatal(err)
	}
	if got := next(t, changes, 10*time.Second); got != a.SID {
		t.Fatalf("Watch callback = %q; want %q", got, a.SID)
	}

	ensureRunning(t, ctl)
	pgctl(t, ctl, "stop", "-m", "fast", "-w")
	if _, err := s.Put(t.Context(), a, 0); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Put while the database is down: error = %v; want ErrUnavailable", err)
	}
	if _, err := s.Get(t.Context(), a.SID); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Get while the database is down: error = %v; want ErrUnavailable", err)
	}
	if err := s.Ping(t.Context()); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Ping while the database is down: error = %v; want ErrUnavailable", err)
	}
	time.Sleep(time.Second) // let Watch fail a few reconnects

	start := time.Now()
	pgctl(t, ctl, "start", "-w", "-t", "60")
	if got := next(t, changes, 30*time.Second); got != "" {
		t.Fatalf("first callback after the restart = %q; want \"\" (resync)", got)
	}
	t.Logf("Watch reconnected %v after the server was started", time.Since(start))

	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping after the restart: %v", err)
	}
	if _, err := s.Put(t.Context(), a, 0); err != nil {
		t.Fatalf("Put after the restart: %v", err)
	}
	if got := next(t, changes, 10*time.Second); got != a.SID {
		t.Errorf("Watch callback after the restart = %q; want %q", got, a.SID)
	}
}

// TestOpensEarlierDatabase opens a database as the first release left it:
// schema version 1, secrets sealed (with key 0x07 repeated) before
// store/atrest existed. Open migrates it and every value reads back.
func TestOpensEarlierDatabase(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t, requireEnv(t, envDSN)[0])
	first, err := os.ReadFile("migrations/0001_accounts.sql")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(t.Context()))
	for _, q := range []string{
		`CREATE TABLE schema_migrations (
			version    integer     PRIMARY KEY,
			name       text        NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`,
		`INSERT INTO schema_migrations (version, name) VALUES (1, '0001_accounts.sql')`,
		string(first),
		`INSERT INTO accounts VALUES ('` + storetest.SID(1) + `', '{golden}', 'Golden',
			'` + storetest.EarlierAuthToken + `', '` + storetest.EarlierPreviousAuthToken + `',
			'2040-01-01T00:00:00Z',
			'[{"id": "key-1", "secret": "` + storetest.EarlierSharedKey + `", "algorithms": ["HMAC_SHA256"]}]',
			'2023-11-14T22:13:20Z', '2023-11-14T22:13:21Z', 3)`,
		`INSERT INTO account_aliases VALUES ('golden', '` + storetest.SID(1) + `')`,
	} {
		if _, err := conn.Exec(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}

	got, err := openStore(t, dsn, storetest.Keyring(t, 7)).Get(t.Context(), "golden")
	if err != nil {
		t.Fatal(err)
	}
	want := storetest.EarlierAccount()
	want.PreviousExpireTime = time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)
	want.CreateTime = time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC)
	want.UpdateTime = time.Date(2023, 11, 14, 22, 13, 21, 0, time.UTC)
	want.Version = 3
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("account of an earlier release (-want +got):\n%s", d)
	}
}
