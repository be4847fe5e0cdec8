package postgres

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
)

// channel is the NOTIFY channel the accounts trigger announces changes on.
const channel = "twilioguard_accounts"

// Timing of [Store.Watch].
const (
	// watchBackoffMin and watchBackoffMax bound the wait between reconnect
	// attempts; the wait doubles after every failed attempt.
	watchBackoffMin = 100 * time.Millisecond
	watchBackoffMax = time.Second
	// watchIdle is how long Watch waits for a notification before it pings
	// the connection, so a silently dead connection is noticed.
	watchIdle = 15 * time.Second
	// watchPingTimeout bounds that ping.
	watchPingTimeout = 5 * time.Second
)

// Watch follows the changes every replica makes to accounts and calls
// changed with the SID of each changed (created, replaced or deleted)
// account, from one goroutine, in the order the changes committed. After
// every (re)connection, including the first, it calls changed("") meaning
// "changes may have been missed: resync everything"; only then do per-account
// calls follow, so a caller that reloads on "" misses nothing.
//
// Watch holds one dedicated connection (outside the pool). When it breaks,
// Watch reconnects with exponential backoff (100 ms doubling to 1 s,
// jittered) for as long as ctx lives, and returns ctx's error when ctx ends.
func (s *Store) Watch(ctx context.Context, changed func(sid string)) error {
	backoff := watchBackoffMin
	for {
		listening, err := s.listen(ctx, changed)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if listening {
			backoff = watchBackoffMin
		}
		wait := jitter(backoff)
		s.log.Warn("watching account changes: connection lost; reconnecting",
			"error", wrap("watch", err), "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, watchBackoffMax)
	}
}

// listen connects, LISTENs, calls changed("") and then changed(sid) for each
// notification until the connection fails or ctx ends. It reports whether
// it got as far as listening.
func (s *Store) listen(ctx context.Context, changed func(sid string)) (listening bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return false, err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx) // the connection is being dropped anyway
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+channel); err != nil {
		return false, err
	}
	s.log.Info("watching account changes", "channel", channel)
	changed("")
	for {
		waitCtx, cancel := context.WithTimeout(ctx, watchIdle)
		n, err := conn.WaitForNotification(waitCtx)
		cancel()
		switch {
		case err == nil:
			changed(n.Payload)
		case ctx.Err() != nil:
			return true, ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			// Idle: make sure the connection is still alive.
			pingCtx, cancel := context.WithTimeout(ctx, watchPingTimeout)
			err := conn.Ping(pingCtx)
			cancel()
			if err != nil {
				return true, err
			}
		default:
			return true, err
		}
	}
}

// jitter returns d changed by a random amount of up to ±20%.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.4-0.2)*float64(d))
}
