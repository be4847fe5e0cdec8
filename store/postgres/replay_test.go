package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/twilioguard/twilioguard/internal/pgtest"
	"github.com/twilioguard/twilioguard/replay"
	"github.com/twilioguard/twilioguard/store"
	"github.com/twilioguard/twilioguard/store/postgres"
)

func replayKey(i int) replay.Key { return replay.KeyOf("AC1", fmt.Sprint("token-", i), "", "") }

// connect opens a plain connection to dsn for the test.
func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.WithoutCancel(t.Context())) })
	return c
}

func TestReplayClaim(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t, requireEnv(t, envDSN)[0])
	r := openStore(t, dsn, newKeyring(t)).Replay(postgres.ReplayConfig{Window: 400 * time.Millisecond})

	first, dup, err := r.Claim(t.Context(), replayKey(1))
	if err != nil || dup {
		t.Fatalf("first claim = %v, %v, %v; want a first claim", first, dup, err)
	}
	if d := time.Since(first); d < -time.Second || d > time.Minute {
		t.Errorf("first-seen time %v is not now (the database's clock)", first)
	}
	again, dup, err := r.Claim(t.Context(), replayKey(1))
	if err != nil || !dup || !again.Equal(first) {
		t.Errorf("second claim = %v, %v, %v; want a duplicate first seen at %v", again, dup, err, first)
	}
	if _, dup, err := r.Claim(t.Context(), replayKey(2)); err != nil || dup {
		t.Errorf("another key = %v, %v; want a first claim", dup, err)
	}

	// After the window, the key is new again (its row is taken over before
	// any expiry runs), and a new window starts.
	time.Sleep(500 * time.Millisecond)
	renewed, dup, err := r.Claim(t.Context(), replayKey(1))
	if err != nil || dup || !renewed.After(first) {
		t.Errorf("claim after the window = %v, %v, %v; want a new first claim", renewed, dup, err)
	}
	if got, dup, err := r.Claim(t.Context(), replayKey(1)); err != nil || !dup || !got.Equal(renewed) {
		t.Errorf("claim in the new window = %v, %v, %v; want a duplicate first seen at %v", got, dup, err, renewed)
	}
}

// TestReplayConcurrentClaims claims one key 50 times at once through three
// stores (three connection pools, as three replicas have): exactly one
// claim is first, and every duplicate names its time.
func TestReplayConcurrentClaims(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t, requireEnv(t, envDSN)[0])
	keys := newKeyring(t)
	var records []*postgres.Replay
	for range 3 {
		records = append(records, openStore(t, dsn, keys).Replay(postgres.ReplayConfig{Timeout: 10 * time.Second}))
	}
	for round := range 5 {
		k := replayKey(round)
		type result struct {
			first time.Time
			dup   bool
			err   error
		}
		results := make([]result, 50)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range results {
			wg.Go(func() {
				<-start
				f, d, err := records[i%len(records)].Claim(t.Context(), k)
				results[i] = result{f, d, err}
			})
		}
		close(start)
		wg.Wait()
		firsts := 0
		for i, r := range results {
			if r.err != nil {
				t.Fatalf("round %d, claim %d: %v", round, i, r.err)
			}
			if !r.dup {
				firsts++
			}
			if !r.first.Equal(results[0].first) {
				t.Errorf("round %d: claim %d saw first-seen %v, claim 0 %v; want one time", round, i, r.first, results[0].first)
			}
		}
		if firsts != 1 {
			t.Errorf("round %d: %d of 50 concurrent claims were first; want exactly 1", round, firsts)
		}
	}
}

// TestReplayExpire checks that Expire deletes every expired row, in
// batches, and nothing else.
func TestReplayExpire(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t, requireEnv(t, envDSN)[0])
	r := openStore(t, dsn, newKeyring(t)).Replay(postgres.ReplayConfig{Window: time.Hour})
	c := connect(t, dsn)
	const expired, live = 2500, 10
	if _, err := c.Exec(t.Context(), `INSERT INTO replay_claims (key, first_seen, expire_time)
		SELECT substring(sha256(i::text::bytea) from 1 for 16), now() - interval '2 hours', now() - interval '1 hour' - i * interval '1 second'
		FROM generate_series(1, $1) i`, expired); err != nil {
		t.Fatal(err)
	}
	for i := range live {
		if _, _, err := r.Claim(t.Context(), replayKey(i)); err != nil {
			t.Fatal(err)
		}
	}
	n, err := r.Expire(t.Context())
	if err != nil || n != expired {
		t.Fatalf("Expire = %d, %v; want %d", n, err, expired)
	}
	var left int
	if err := c.QueryRow(t.Context(), "SELECT count(*) FROM replay_claims").Scan(&left); err != nil || left != live {
		t.Errorf("rows left = %d, %v; want the %d live claims", left, err, live)
	}
	for i := range live {
		if _, dup, err := r.Claim(t.Context(), replayKey(i)); err != nil || !dup {
			t.Errorf("live claim %d after Expire: %v, %v; want still a duplicate", i, dup, err)
		}
	}
}

// TestReplayClaimTimeout holds the row of a key in an open transaction:
// a claim of that key must give up after its timeout.
func TestReplayClaimTimeout(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t, requireEnv(t, envDSN)[0])
	st := openStore(t, dsn, newKeyring(t))
	r := st.Replay(postgres.ReplayConfig{Timeout: 200 * time.Millisecond})
	k := replayKey(1)
	if _, _, err := r.Claim(t.Context(), k); err != nil {
		t.Fatal(err)
	}
	tx, err := connect(t, dsn).Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(t.Context())) }()
	if _, err := tx.Exec(t.Context(), "SELECT 1 FROM replay_claims WHERE key = $1 FOR UPDATE", k[:]); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, _, err = r.Claim(t.Context(), k)
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("claim of a locked key: %v; want an error wrapping context.DeadlineExceeded", err)
	}
	if took > 5*time.Second {
		t.Errorf("claim of a locked key took %v; want it to give up after its 200ms timeout", took)
	}
	t.Logf("claim of a locked key gave up after %v", took.Round(time.Millisecond))

	_ = st.Close()
	if _, _, err := r.Claim(t.Context(), replayKey(2)); err == nil {
		t.Error("claim on a closed store succeeded")
	}
}

// TestReplayDatabaseDown stops the envCtl server: a claim fails quickly
// with store.ErrUnavailable, and works again once the server is back. It is
// not parallel: it owns the envCtl server while it runs.
func TestReplayDatabaseDown(t *testing.T) {
	env := requireEnv(t, envCtlDSN, envCtl)
	ctl := env[1]
	dsn := pgtest.NewDatabase(t, env[0])
	r := openStore(t, dsn, newKeyring(t)).Replay(postgres.ReplayConfig{})
	if _, _, err := r.Claim(t.Context(), replayKey(1)); err != nil {
		t.Fatal(err)
	}

	ensureRunning(t, ctl)
	pgctl(t, ctl, "stop", "-m", "fast", "-w")
	start := time.Now()
	_, _, err := r.Claim(t.Context(), replayKey(2))
	took := time.Since(start)
	if !errors.Is(err, store.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("claim with the database down: %v; want store.ErrUnavailable or a timeout", err)
	}
	if took > 5*time.Second {
		t.Errorf("claim with the database down took %v; want at most its timeout", took)
	}
	t.Logf("claim with the database down failed after %v: %v", took.Round(time.Millisecond), err)

	pgctl(t, ctl, "start", "-w", "-t", "60")
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, dup, err := r.Claim(t.Context(), replayKey(1))
		if err == nil {
			if !dup {
				t.Error("a key claimed before the outage is new after it; want it remembered")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("claims still fail 30s after the restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
