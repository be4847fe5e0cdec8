package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus collectors. No label ever carries a
// secret; the account label is optional (Config.AccountLabel).
type metrics struct {
	verifications *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	withAccount   bool
}

func newMetrics(reg prometheus.Registerer, s *Server) (*metrics, error) {
	labels := []string{"result", "reason", "credential", "route"}
	if s.cfg.AccountLabel {
		labels = append(labels, "account")
	}
	m := &metrics{
		withAccount: s.cfg.AccountLabel,
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "twilioguard_verifications_total",
			Help: "Webhook verifications by result (valid, invalid, error), reason and matching credential.",
		}, labels),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "twilioguard_verification_duration_seconds",
			Help:    "Time to decide one VerifyWebhook call.",
			Buckets: []float64{5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 0.025, 0.1},
		}, []string{"result"}),
	}
	collectors := []prometheus.Collector{
		m.verifications,
		m.latency,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "twilioguard_store_up",
			Help: "1 when the account store answered its last health check, else 0.",
		}, func() float64 { return boolFloat(s.storeUp.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "twilioguard_cache_loaded",
			Help: "1 once the account cache has been loaded from the store.",
		}, func() float64 { loaded, _, _ := s.cache.status(); return boolFloat(loaded) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "twilioguard_cache_unreadable_accounts",
			Help: "Cached accounts with secrets that cannot be read (sealed under an unknown key, or damaged).",
		}, func() float64 { return float64(s.cache.unreadable()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "twilioguard_cache_accounts",
			Help: "Accounts held in the in-memory cache.",
		}, func() float64 { _, _, n := s.cache.status(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "twilioguard_cache_last_sync_timestamp_seconds",
			Help: "Unix time of the last complete cache load from the store.",
		}, func() float64 {
			_, t, _ := s.cache.status()
			if t.IsZero() {
				return 0
			}
			return float64(t.UnixNano()) / 1e9
		}),
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) observe(result, reason, credential, route, account string, d time.Duration) {
	if m.withAccount {
		m.verifications.WithLabelValues(result, reason, credential, route, account).Inc()
	} else {
		m.verifications.WithLabelValues(result, reason, credential, route).Inc()
	}
	m.latency.WithLabelValues(result).Observe(d.Seconds())
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
