package proxy

import "github.com/prometheus/client_golang/prometheus"

// What the proxy did with a request.
type action string

const (
	actionForwarded action = "forwarded"
	actionRefused   action = "refused"
)

// What the service (or the proxy, before asking it) said about a request.
type result string

const (
	resultValid     result = "valid"
	resultInvalid   result = "invalid"   // not valid; see the reason
	resultDuplicate result = "duplicate" // valid, seen before within the replay window
	resultMalformed result = "malformed" // 400
	resultTooLarge  result = "too_large" // 413
	resultError     result = "error"     // the service could not decide
	resultUndecided result = "undecided" // shadow mode: malformed, too large or no answer
)

// metrics are the Prometheus collectors of a Proxy.
type metrics struct {
	requests       *prometheus.CounterVec
	verify         prometheus.Histogram
	upstreamErrors prometheus.Counter
}

// newMetrics creates the collectors and registers them on reg when it is
// not nil.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "twilioguard_proxy_requests_total",
			Help: "Requests by action (forwarded, refused), result (valid, invalid, duplicate, malformed, " +
				"too_large, error, undecided) and reason (when invalid).",
		}, []string{"action", "result", "reason"}),
		verify: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "twilioguard_proxy_verify_duration_seconds",
			Help:    "Time the service took to answer VerifyWebhook, as the proxy saw it.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		upstreamErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "twilioguard_proxy_upstream_errors_total",
			Help: "Requests answered 502 because the upstream could not be reached or failed.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.verify, m.upstreamErrors} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// count records one request. Actions, results and reasons are fixed sets.
func (m *metrics) count(a action, r result, reason string) {
	m.requests.WithLabelValues(string(a), string(r), reason).Inc()
}
