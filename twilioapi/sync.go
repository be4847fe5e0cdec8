package twilioapi

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// SyncConfig configures a [Syncer].
type SyncConfig struct {
	// Twilio reads the accounts, with the parent account's credentials.
	Twilio *Client
	// Accounts receives the changes: the in-process server in `serve`.
	Accounts AccountService
	// Interval is the time between the starts of two runs.
	Interval time.Duration
	// Logger receives a line per change and per failed run. Nil discards.
	Logger *slog.Logger
	// Registerer receives the metrics (nil: none are registered):
	//
	//	twilioguard_twilio_sync_runs_total{result="success|error"}
	//	twilioguard_twilio_sync_last_success_timestamp_seconds
	//	twilioguard_twilio_sync_changes_total{kind="added|updated|removed"}
	Registerer prometheus.Registerer
}

// Syncer runs [Import] every interval, for `serve --twilio-sync-interval`.
// A run that fails is logged, counted and retried at the next interval; a
// failure reading Twilio changes nothing.
type Syncer struct {
	cfg         SyncConfig
	runs        *prometheus.CounterVec
	changes     *prometheus.CounterVec
	lastSuccess prometheus.Gauge
}

// NewSyncer checks cfg and registers the metrics.
func NewSyncer(cfg SyncConfig) (*Syncer, error) {
	switch {
	case cfg.Twilio == nil:
		return nil, errors.New("twilio sync: no Twilio client")
	case cfg.Accounts == nil:
		return nil, errors.New("twilio sync: no account service")
	case cfg.Interval <= 0:
		return nil, errors.New("twilio sync: the interval must be positive")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Syncer{
		cfg: cfg,
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "twilioguard_twilio_sync_runs_total",
			Help: "Runs of the Twilio account sync by result (success, error).",
		}, []string{"result"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "twilioguard_twilio_sync_changes_total",
			Help: "Accounts changed by the Twilio account sync, by kind (added, updated, removed).",
		}, []string{"kind"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "twilioguard_twilio_sync_last_success_timestamp_seconds",
			Help: "Unix time of the end of the last successful Twilio account sync (0: none yet).",
		}),
	}
	for _, r := range []string{"success", "error"} {
		s.runs.WithLabelValues(r)
	}
	for _, k := range []string{"added", "updated", "removed"} {
		s.changes.WithLabelValues(k)
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{s.runs, s.changes, s.lastSuccess} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// Run syncs at once, then every interval, until ctx ends.
func (s *Syncer) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		_, _ = s.SyncOnce(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// SyncOnce runs one import and records it in the metrics and the log.
func (s *Syncer) SyncOnce(ctx context.Context) (Summary, error) {
	start := time.Now()
	sum, err := Import(ctx, s.cfg.Twilio, s.cfg.Accounts, s.cfg.Logger)
	s.changes.WithLabelValues("added").Add(float64(sum.Added))
	s.changes.WithLabelValues("updated").Add(float64(sum.Updated))
	s.changes.WithLabelValues("removed").Add(float64(sum.Removed))
	if err != nil {
		if ctx.Err() == nil {
			s.runs.WithLabelValues("error").Inc()
			s.cfg.Logger.Error("twilio sync failed; retried at the next interval", "error", err, "next_in", s.cfg.Interval)
		}
		return sum, err
	}
	s.runs.WithLabelValues("success").Inc()
	s.lastSuccess.SetToCurrentTime()
	level := slog.LevelDebug
	if sum.Added+sum.Updated+sum.Removed > 0 {
		level = slog.LevelInfo
	}
	s.cfg.Logger.Log(ctx, level, "twilio sync done", "added", sum.Added, "updated", sum.Updated,
		"removed", sum.Removed, "unchanged", sum.Unchanged, "latency", time.Since(start).Round(time.Millisecond))
	return sum, nil
}
