package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/internal/bound"
	"github.com/twilioguard/twilioguard/replay"
)

// ReplayStore records verified webhooks, so that a copy verified again
// within the replay window is flagged as a duplicate. replay.Memory and
// the Replay of store/postgres satisfy it.
type ReplayStore interface {
	// Claim records key as verified now, unless it was recorded within the
	// window: then it reports a duplicate and when the key was first
	// recorded. Of concurrent claims of one key, exactly one is not a
	// duplicate. An error means the record could not answer.
	Claim(ctx context.Context, key replay.Key) (firstSeen time.Time, duplicate bool, err error)
}

// States of the replay store, for logging changes.
const (
	replayUp int32 = iota
	replayFull
	replayDown
)

// Why a duplicate check answered UNAVAILABLE (label values).
const (
	causeFull    = "full"    // a memory record at its bound
	causeTimeout = "timeout" // the store did not answer in time
	causeError   = "error"   // the store failed (unreachable, ...)
	causeBackoff = "backoff" // not asked: it failed, and another call is probing it
)

// replayChecker flags the duplicates among verified webhooks.
type replayChecker struct {
	store   ReplayStore
	log     *slog.Logger
	now     func() time.Time
	routes  *bound.Labels // the server's route labels
	metrics *replayMetrics
	state   atomic.Int32 // replayUp, replayFull or replayDown
	probing atomic.Bool  // a claim is asking a failed store whether it is back
}

// newReplayChecker returns the checker for s's configuration: nil when
// duplicate detection is off.
func newReplayChecker(s *Server) (*replayChecker, error) {
	if s.cfg.Replay == nil {
		return nil, nil
	}
	r := &replayChecker{store: s.cfg.Replay, log: s.log, now: s.cfg.Now, routes: s.routes}
	m, err := newReplayMetrics(s.cfg.Registerer, s.cfg.AccountLabel, r)
	if err != nil {
		return nil, err
	}
	r.metrics = m
	return r, nil
}

// checkReplay flags a valid answer as a duplicate or not (Config.Replay).
// It refuses an idempotency token over replay.MaxTokenBytes, in any
// request, as malformed; a failure of the replay store never fails the
// call: the answer then says UNAVAILABLE.
func (s *Server) checkReplay(ctx context.Context, req *twilioguardv1.VerifyWebhookRequest, resp *twilioguardv1.VerifyWebhookResponse) error {
	if n := len(req.IdempotencyToken); n > replay.MaxTokenBytes {
		return connect.NewError(connect.CodeInvalidArgument,
			fmt.Errorf("idempotencyToken too long: %d bytes (at most %d)", n, replay.MaxTokenBytes))
	}
	if s.replay == nil || !resp.Valid {
		return nil
	}
	s.replay.check(ctx, req, resp)
	return nil
}

// check claims the webhook's key and sets the replay fields of resp.
//
// After a claim failed because the store did not answer (a timeout, an
// unreachable database), one claim at a time asks the store whether it is
// back, while the others answer UNAVAILABLE at once instead of each
// waiting for the store's timeout.
func (r *replayChecker) check(ctx context.Context, req *twilioguardv1.VerifyWebhookRequest, resp *twilioguardv1.VerifyWebhookResponse) {
	if r.state.Load() == replayDown {
		if !r.probing.CompareAndSwap(false, true) {
			r.unavailable(resp, causeBackoff)
			return
		}
		defer r.probing.Store(false)
	}
	start := r.now()
	key := replay.KeyOf(resp.AccountSid, req.IdempotencyToken, req.Signature, resp.MatchedUrl)
	first, dup, err := r.store.Claim(ctx, key)
	r.metrics.claimDuration.Observe(r.now().Sub(start).Seconds())
	if err != nil {
		r.failed(ctx, resp, err)
		return
	}
	r.setState(replayUp, nil)
	resp.ReplayCheck, resp.Duplicate = twilioguardv1.ReplayCheck_CHECKED, &dup
	if !dup {
		r.metrics.first.Inc()
		return
	}
	resp.FirstSeenTime = timestamppb.New(first)
	r.metrics.duplicate(r.routes.Value(req.GetRoute()), resp.AccountSid)
}

// failed answers UNAVAILABLE after a failed claim and, unless the caller
// went away, records the store's state, which the logs show once per
// outage.
func (r *replayChecker) failed(ctx context.Context, resp *twilioguardv1.VerifyWebhookResponse, err error) {
	switch {
	case ctx.Err() != nil:
		r.unavailable(resp, causeError) // the caller gave up, not the store
	case errors.Is(err, replay.ErrFull):
		r.setState(replayFull, err)
		r.unavailable(resp, causeFull)
	default:
		r.setState(replayDown, err)
		cause := causeError
		if errors.Is(err, context.DeadlineExceeded) {
			cause = causeTimeout
		}
		r.unavailable(resp, cause)
	}
}

// unavailable marks resp as not checked for duplicates and counts why.
func (r *replayChecker) unavailable(resp *twilioguardv1.VerifyWebhookResponse, cause string) {
	resp.ReplayCheck = twilioguardv1.ReplayCheck_UNAVAILABLE
	r.metrics.unavailable.Inc()
	r.metrics.byCause[cause].Inc()
}

// setState records the store's state and logs a change: an error when
// duplicates can no longer be told apart, info when they can again.
func (r *replayChecker) setState(state int32, err error) {
	if r.state.Load() == state {
		return
	}
	if r.state.Swap(state) == state {
		return
	}
	switch state {
	case replayUp:
		r.log.Info("duplicate check available again")
	case replayFull:
		r.log.Error("replay record full: new webhooks answer replayCheck UNAVAILABLE until older ones expire; "+
			"raise --replay-max-entries or shorten --replay-window", "error", err)
	case replayDown:
		r.log.Error("duplicate check unavailable: valid webhooks answer replayCheck UNAVAILABLE until the replay store answers again",
			"error", err)
	}
}

// replayAttrs are the log attributes of a verified request's replay check.
func replayAttrs(attrs []slog.Attr, resp *twilioguardv1.VerifyWebhookResponse) []slog.Attr {
	if resp.ReplayCheck == twilioguardv1.ReplayCheck_REPLAY_CHECK_UNSPECIFIED {
		return attrs
	}
	attrs = append(attrs, slog.String("replay_check", resp.ReplayCheck.String()))
	if resp.Duplicate != nil {
		attrs = append(attrs, slog.Bool("duplicate", resp.GetDuplicate()))
	}
	if resp.FirstSeenTime != nil {
		attrs = append(attrs, slog.Time("first_seen", resp.FirstSeenTime.AsTime()))
	}
	return attrs
}

// replayMetrics are the collectors of the duplicate check.
type replayMetrics struct {
	first         prometheus.Counter
	dup           prometheus.Counter
	unavailable   prometheus.Counter
	byCause       map[string]prometheus.Counter // unavailable, by cause
	duplicates    *prometheus.CounterVec
	claimDuration prometheus.Histogram
	withAccount   bool
}

func newReplayMetrics(reg prometheus.Registerer, withAccount bool, r *replayChecker) (*replayMetrics, error) {
	labels := []string{"route"}
	if withAccount {
		labels = append(labels, "account")
	}
	checks := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "twilioguard_replay_checks_total",
		Help: "Duplicate checks of valid webhooks by result: first, duplicate, or unavailable (the duplicate flag is unknown).",
	}, []string{"result"})
	m := &replayMetrics{
		withAccount: withAccount,
		first:       checks.WithLabelValues("first"),
		dup:         checks.WithLabelValues("duplicate"),
		unavailable: checks.WithLabelValues("unavailable"),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "twilioguard_replay_duplicates_total",
			Help: "Valid webhooks verified before within the replay window, by route (and account).",
		}, labels),
		claimDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "twilioguard_replay_claim_duration_seconds",
			Help:    "Time to record one verified webhook in the replay store (memory or PostgreSQL).",
			Buckets: []float64{1e-6, 5e-6, 2.5e-5, 1e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 5e-2, 0.25, 1},
		}),
	}
	unavailable := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "twilioguard_replay_unavailable_total",
		Help: "Valid webhooks answered replayCheck UNAVAILABLE, by cause: full (memory record at its bound), " +
			"timeout, error (store unreachable, or the call was cancelled) or backoff (store down, another call is probing it).",
	}, []string{"cause"})
	m.byCause = map[string]prometheus.Counter{}
	for _, c := range []string{causeFull, causeTimeout, causeError, causeBackoff} {
		m.byCause[c] = unavailable.WithLabelValues(c)
	}
	for _, c := range []prometheus.Collector{checks, m.duplicates, m.claimDuration, unavailable,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "twilioguard_replay_store_up",
			Help: "1 unless the last duplicate check failed because the replay store did not answer.",
		}, func() float64 { return boolFloat(r.state.Load() != replayDown) }),
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// duplicate counts one duplicate.
func (m *replayMetrics) duplicate(route, account string) {
	m.dup.Inc()
	if m.withAccount {
		m.duplicates.WithLabelValues(route, account).Inc()
	} else {
		m.duplicates.WithLabelValues(route).Inc()
	}
}
