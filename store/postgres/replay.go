package postgres

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/twilioguard/twilioguard/replay"
)

// DefaultReplayTimeout is the default deadline of one [Replay.Claim].
const DefaultReplayTimeout = 250 * time.Millisecond

// Expiry of replay claims.
const (
	// replayExpireInterval is how often [Replay.Run] deletes expired claims.
	replayExpireInterval = time.Minute
	// replayExpireBatch is how many rows one DELETE removes at most, so no
	// statement holds locks or runs for long.
	replayExpireBatch = 1000
	// replayExpireTimeout bounds one batch.
	replayExpireTimeout = 30 * time.Second
)

// ReplayConfig configures [Store.Replay].
type ReplayConfig struct {
	// Window is how long a claimed key is remembered (default
	// replay.DefaultWindow).
	Window time.Duration
	// Timeout bounds one claim, waiting for a connection included (default
	// [DefaultReplayTimeout]). A claim past it fails with an error wrapping
	// context.DeadlineExceeded.
	Timeout time.Duration
}

// Replay is the record of verified webhooks (see package replay) in the
// store's database, in table replay_claims, shared by every replica on it.
// Its times come from the database's clock, so replicas whose clocks differ
// still agree on every window. It is safe for concurrent use.
//
// A claim is one INSERT … ON CONFLICT statement: PostgreSQL's unique index
// makes concurrent claims of one key wait for each other, so exactly one of
// them, on whichever replica, inserts the row (or takes over an expired
// one) and the others see it. Expired rows are ignored by claims and deleted
// by [Replay.Run] in batches of at most 1000 rows.
type Replay struct {
	pool    *pgxpool.Pool
	log     *slog.Logger
	window  int64 // microseconds
	timeout time.Duration
}

// Replay returns the replay record in the store's database. It shares the
// store's connection pool and logger.
func (s *Store) Replay(cfg ReplayConfig) *Replay {
	if cfg.Window <= 0 {
		cfg.Window = replay.DefaultWindow
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultReplayTimeout
	}
	return &Replay{pool: s.pool, log: s.log, window: cfg.Window.Microseconds(), timeout: cfg.Timeout}
}

const (
	// claimSQL inserts the key, or takes over its row when that expired,
	// and returns the new first-seen time; it returns no row when the key
	// is held.
	claimSQL = `INSERT INTO replay_claims AS c (key, first_seen, expire_time)
		VALUES ($1, now(), now() + $2::bigint * interval '1 microsecond')
		ON CONFLICT (key) DO UPDATE SET first_seen = EXCLUDED.first_seen, expire_time = EXCLUDED.expire_time
		WHERE c.expire_time <= EXCLUDED.first_seen
		RETURNING first_seen`
	// heldSQL reads when a held key was first claimed.
	heldSQL = `SELECT first_seen FROM replay_claims WHERE key = $1`
	// expireSQL deletes a batch of expired claims, skipping rows a claim
	// is taking over at that moment.
	expireSQL = `DELETE FROM replay_claims WHERE key IN (
		SELECT key FROM replay_claims WHERE expire_time <= now() LIMIT $1 FOR UPDATE SKIP LOCKED)`
)

// Claim records key as claimed now, unless it was claimed within the
// window (on any replica): then it reports a duplicate and when the key was
// first claimed. Of concurrent claims of one key, exactly one is not a
// duplicate. It fails after the configured timeout, with an error wrapping
// store.ErrUnavailable when the database cannot be reached.
func (r *Replay) Claim(ctx context.Context, key replay.Key) (firstSeen time.Time, duplicate bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	// A held key may expire and be deleted between the two statements:
	// then it is claimed again.
	for range 2 {
		err := r.pool.QueryRow(ctx, claimSQL, key[:], r.window).Scan(&firstSeen)
		if !errors.Is(err, pgx.ErrNoRows) {
			return firstSeen, false, wrap("claim replay key", err)
		}
		err = r.pool.QueryRow(ctx, heldSQL, key[:]).Scan(&firstSeen)
		if !errors.Is(err, pgx.ErrNoRows) {
			return firstSeen, err == nil, wrap("read replay key", err)
		}
	}
	return time.Time{}, false, errors.New("claim replay key: the key expired twice during the claim")
}

// Expire deletes every expired claim, in batches of at most 1000 rows, and
// returns how many it deleted.
func (r *Replay) Expire(ctx context.Context) (int64, error) {
	var total int64
	for {
		bctx, cancel := context.WithTimeout(ctx, replayExpireTimeout)
		tag, err := r.pool.Exec(bctx, expireSQL, replayExpireBatch)
		cancel()
		if err != nil {
			return total, wrap("delete expired replay keys", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < replayExpireBatch {
			return total, nil
		}
	}
}

// Run deletes expired claims every minute until ctx ends. Every replica may
// run it: concurrent runs skip the rows another one is deleting.
func (r *Replay) Run(ctx context.Context) {
	t := time.NewTicker(replayExpireInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := r.Expire(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			r.log.Warn("deleting expired replay keys failed; claims ignore them, the next run retries", "deleted", n, "error", err)
		case n > 0:
			r.log.Debug("deleted expired replay keys", "deleted", n)
		}
	}
}
