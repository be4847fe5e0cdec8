package extauthz

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/twilioguard/twilioguard/internal/bound"
)

// metrics are the Prometheus collectors of a Server.
type metrics struct {
	checks   *prometheus.CounterVec
	duration *prometheus.HistogramVec

	// series caches the labelled metrics, cheaper to find than through
	// WithLabelValues. Route labels are bounded (package bound) and results
	// and reasons are fixed sets, so it holds them all.
	series *bound.Cache[seriesKey, series]
}

// maxSeries bounds metrics.series: 101 route labels × 2 modes × the
// results and reasons.
const maxSeries = 8192

type seriesKey struct{ route, mode, result, reason string }

type series struct {
	checks   prometheus.Counter
	duration prometheus.Observer
}

// newMetrics creates the collectors and registers them with reg when reg is
// not nil. When another Server already registered them on reg, the
// registered collectors are shared.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		series: bound.NewCache[seriesKey, series](maxSeries),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "twilioguard_extauthz_checks_total",
			Help: "Envoy ext_authz checks by route, mode (enforce, shadow), result " +
				"(valid, invalid, malformed, partial_body, error) and reason (when invalid).",
		}, []string{"route", "mode", "result", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "twilioguard_extauthz_check_duration_seconds",
			Help:    "Time to answer an Envoy ext_authz check, by result.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"result"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.checks, err = register(reg, m.checks)
	if err != nil {
		return nil, err
	}
	m.duration, err = register(reg, m.duration)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c on reg, or returns the collector already registered
// under the same description.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	var zero C
	return zero, err
}

// observe records one Check.
func (m *metrics) observe(v verdict, d time.Duration) {
	k := seriesKey{v.route.label, v.route.mode(), string(v.result), v.reason}
	s, ok := m.series.Get(k)
	if !ok {
		s = series{
			checks:   m.checks.WithLabelValues(k.route, k.mode, k.result, k.reason),
			duration: m.duration.WithLabelValues(k.result),
		}
		m.series.Add(k, s)
	}
	s.checks.Inc()
	s.duration.Observe(d.Seconds())
}
