package postgres

import (
	"context"
	crand "crypto/rand"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/server"
	"github.com/twilioguard/twilioguard/signature"
	"github.com/twilioguard/twilioguard/store"
	"github.com/twilioguard/twilioguard/store/seal"
)

// loadAccounts is how many accounts TestLoadScale puts in PostgreSQL; the
// environment variable TWILIOGUARD_TEST_SCALE_ACCOUNTS changes it.
// Under the race detector it puts 20,000. TestCacheScale
// (cache_scale_test.go) holds a million in the cache without the database.
const loadAccounts = 100_000

// TestLoadScale bulk-loads accounts into PostgreSQL and loads them into a
// server's in-memory cache through this store, as a replica does at start
// and on every resync. It reports the load rate and the cache's memory per
// account, and checks that a sample of the accounts verifies.
//
// It is not parallel, so that the heap it measures is its own.
func TestLoadScale(t *testing.T) {
	base := os.Getenv("TWILIOGUARD_TEST_POSTGRES_DSN")
	if base == "" {
		msg := "TWILIOGUARD_TEST_POSTGRES_DSN is not set: run scripts/test.sh, which installs PostgreSQL (apt-get install postgresql)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	n := loadAccounts
	if raceEnabled {
		n = 20_000
	}
	if v := os.Getenv("TWILIOGUARD_TEST_SCALE_ACCOUNTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1000 {
			t.Fatalf("TWILIOGUARD_TEST_SCALE_ACCOUNTS=%q: want a number >= 1000", v)
		}
	}
	ctx := t.Context()
	key := make([]byte, seal.KeySize)
	crand.Read(key)
	keys, err := seal.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, Config{DSN: scaleDatabase(t, base), Keyring: keys})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	start := time.Now()
	if err := s.bulkInsert(ctx, n); err != nil {
		t.Fatalf("bulk insert: %v", err)
	}
	t.Logf("inserted %d accounts with COPY in %v", n, time.Since(start).Round(time.Millisecond))

	before := liveHeap()
	srv, err := server.New(server.Config{Store: s, AdminToken: "scale-test-admin-token"})
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := srv.Load(ctx); err != nil {
		t.Fatalf("Load: %v", err)
	}
	loadTime := time.Since(start)
	used := liveHeap() - before
	t.Logf("loaded %d accounts from PostgreSQL into the cache in %v (%.0f accounts/s); cache heap %.1f MiB, %d bytes per account",
		n, loadTime.Round(time.Millisecond), float64(n)/loadTime.Seconds(), float64(used)/(1<<20), used/uint64(n))
	if budget := uint64(cacheBudget) * uint64(n) / 1_000_000; used > budget {
		t.Errorf("cache heap %d KiB for %d accounts; want <= %d KiB (300 MiB per million)", used>>10, n, budget>>10)
	}
	valid, _ := verifyTimes(t, srv, n, 1000)
	t.Logf("a valid verification with %d accounts cached takes %v (race detector on: %v)", n, valid, raceEnabled)
	runtime.KeepAlive(srv)
}

// cacheBudget is the most heap the server's cache may use for a million
// accounts.
const cacheBudget = 300 << 20

// scaleDatabase creates a database for TestCacheScale and drops it at the end.
func scaleDatabase(t *testing.T, base string) string {
	t.Helper()
	name := fmt.Sprintf("tg_scale_%d", time.Now().UnixNano())
	conn, err := pgx.Connect(t.Context(), base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(t.Context()))
	if _, err := conn.Exec(t.Context(), "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("drop database: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("drop database: %v", err)
		}
	})
	cfg, err := pgx.ParseConfig(base)
	if err != nil {
		t.Fatal(err)
	}
	u := url.URL{Scheme: "postgres", User: url.User(cfg.User), Host: fmt.Sprintf("%s:%d", cfg.Host, cfg.Port), Path: "/" + name}
	if cfg.Password != "" {
		u.User = url.UserPassword(cfg.User, cfg.Password)
	}
	u.RawQuery = "sslmode=disable"
	return u.String()
}

// scaleAccount returns account i of the scale test: a SID, a 32-hex-digit
// auth token, and an alias on every tenth account.
func scaleAccount(i int) *store.Account {
	a := &store.Account{
		SID:       fmt.Sprintf("AC%032x", i),
		AuthToken: store.Secret(fmt.Sprintf("%032x", uint64(i)*0x9e3779b97f4a7c15)),
	}
	if i%10 == 0 {
		a.Aliases = []string{fmt.Sprintf("tenant-%d", i)}
	}
	return a
}

// bulkInsert writes scaleAccount(0..n-1) with COPY, sealing their secrets
// as Put does. The change trigger is off meanwhile: nobody listens, and a
// million notifications would only slow the copy down.
func (s *Store) bulkInsert(ctx context.Context, n int) error {
	if _, err := s.pool.Exec(ctx, "ALTER TABLE accounts DISABLE TRIGGER accounts_notify"); err != nil {
		return err
	}
	defer func() {
		_, _ = s.pool.Exec(context.WithoutCancel(ctx), "ALTER TABLE accounts ENABLE TRIGGER accounts_notify")
	}()
	now := time.Now().UTC().Truncate(time.Microsecond)
	var aliases [][]any
	i := 0
	_, err := s.pool.CopyFrom(ctx, pgx.Identifier{"accounts"},
		[]string{"sid", "aliases", "auth_token", "shared_keys", "create_time", "update_time", "version"},
		pgx.CopyFromFunc(func() ([]any, error) {
			if i == n {
				return nil, nil
			}
			a := scaleAccount(i)
			i++
			sealed, err := s.codec.Seal(a)
			if err != nil {
				return nil, err
			}
			keys, err := json.Marshal(sealed.SharedKeys)
			if err != nil {
				return nil, err
			}
			for _, al := range a.Aliases {
				aliases = append(aliases, []any{al, a.SID})
			}
			al := a.Aliases
			if al == nil {
				al = []string{}
			}
			return []any{a.SID, al, sealed.AuthToken, string(keys), now, now, int64(1)}, nil
		}))
	if err != nil {
		return err
	}
	_, err = s.pool.CopyFrom(ctx, pgx.Identifier{"account_aliases"}, []string{"alias", "sid"}, pgx.CopyFromRows(aliases))
	return err
}

// liveHeap returns the bytes of live heap objects after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// verifyTimes returns the mean time of VerifyWebhook over calls random
// known accounts (valid signatures) and over calls unknown ones.
func verifyTimes(t *testing.T, srv *server.Server, accounts, calls int) (valid, unknown time.Duration) {
	t.Helper()
	const rawURL = "https://example.com/twilio/sms"
	params := url.Values{"Body": {"hello"}}
	reqs := make([]*twilioguardv1.VerifyWebhookRequest, calls)
	misses := make([]*twilioguardv1.VerifyWebhookRequest, calls)
	for i := range reqs {
		a := scaleAccount(rand.IntN(accounts))
		reqs[i] = &twilioguardv1.VerifyWebhookRequest{
			Url:       rawURL,
			Params:    []*twilioguardv1.Param{{Key: "Body", Value: "hello"}},
			Signature: signature.Sign(a.AuthToken.Reveal(), rawURL, params),
			Account:   a.SID,
		}
		misses[i] = &twilioguardv1.VerifyWebhookRequest{
			Url:       rawURL,
			Params:    reqs[i].Params,
			Signature: reqs[i].Signature,
			Account:   fmt.Sprintf("AC%032x", accounts+rand.IntN(accounts)),
		}
	}
	run := func(reqs []*twilioguardv1.VerifyWebhookRequest, wantValid bool) time.Duration {
		start := time.Now()
		for _, req := range reqs {
			resp, err := srv.VerifyWebhook(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Valid != wantValid {
				t.Fatalf("VerifyWebhook(%s) = %v; want valid=%v", req.Account, resp, wantValid)
			}
		}
		return time.Since(start) / time.Duration(len(reqs))
	}
	return run(reqs, true), run(misses, false)
}
