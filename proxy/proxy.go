// Package proxy is twilioguard's inline verifying reverse proxy: it sits in
// front of an application that receives Twilio webhooks, behind any gateway
// (nginx, Caddy, HAProxy, a cloud load balancer), asks the twilioguard
// service about every request, and forwards only the verified ones.
//
// A [Proxy] is the [middleware] in front of an [httputil.ReverseProxy], so
// it follows the middleware's rules exactly: the public URL from a public
// base URL or from forwarding headers of trusted proxies only, the body read
// within a limit and restored byte for byte, client-sent X-Twilioguard-* and
// X-Twilio-Account-Sid headers removed in any spelling, and the answers 403
// (not valid), 400 (malformed), 413 (body too large), 409 (a duplicate, when
// duplicates are rejected) and 503 (the service cannot decide: fail closed).
// A verified request goes upstream with X-Twilioguard-Verified: true and
// X-Twilio-Account-Sid (and X-Twilioguard-Duplicate: true on a duplicate),
// and the upstream's answer (status, headers, streamed body) comes back
// untouched. In shadow mode every request goes upstream, and the ones that
// would have been refused carry X-Twilioguard-Verified: false.
//
// The proxy holds no token: the [middleware.Verifier] is normally a
// *client.Client of the service.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/internal/bound"
	"github.com/twilioguard/twilioguard/middleware"
	"github.com/twilioguard/twilioguard/webhookreq"
)

// Config configures a [Proxy]. Upstream is required; the zero value of
// every other field is a working default.
type Config struct {
	// Upstream is the application's base URL: http://host:port (HTTP/1.1,
	// or h2c with UpstreamH2C) or https://host:port (TLS, HTTP/2 or
	// HTTP/1.1 as negotiated). A path is prepended to every request's path.
	Upstream string
	// UpstreamH2C speaks HTTP/2 without TLS (prior knowledge) to an http://
	// upstream instead of HTTP/1.1.
	UpstreamH2C bool
	// PublicBaseURL, TrustedProxies and ProxyHeaders rebuild the URL Twilio
	// signed, as [middleware.WithPublicBaseURL], [middleware.WithTrustedProxies]
	// and [middleware.WithProxyHeaders] do. A public base URL wins: with
	// one, no forwarding header is read and TrustedProxies is not used.
	PublicBaseURL  string
	TrustedProxies []string
	ProxyHeaders   []string
	// Accounts binds the proxied application to these accounts (SIDs or
	// aliases), as [middleware.WithAccounts].
	Accounts []string
	// Route labels the service's logs and metrics for these requests.
	Route string
	// Shadow forwards every request and marks the ones that would have
	// been refused with X-Twilioguard-Verified: false.
	Shadow bool
	// RejectDuplicates refuses, with 409, a request the service reports as
	// a duplicate (the same webhook verified before within its replay
	// window).
	RejectDuplicates bool
	// MaxBodyBytes is the largest body read for verification (default
	// [webhookreq.DefaultMaxBodyBytes]); a larger one is refused with 413.
	MaxBodyBytes int64
	// Logger receives the decision lines: Info for refusals (reason, hint,
	// route, account), Error when the service cannot decide or the upstream
	// fails, Debug for verified requests. Nil discards them.
	Logger *slog.Logger
	// Registerer, when set, receives the proxy's Prometheus metrics.
	Registerer prometheus.Registerer
}

// Proxy verifies every request with the service and forwards the verified
// ones to the upstream. Create one with [New]; it is safe for concurrent
// use.
type Proxy struct {
	handler   http.Handler
	upstream  *url.URL
	transport *http.Transport
	shadow    bool
	rejectDup bool
	log       *slog.Logger
	metrics   *metrics
}

// New returns a Proxy that asks v about every request. It fails when v is
// nil or cfg is not valid (no or a bad upstream, a bad base URL or CIDR,
// metrics that cannot be registered), naming what is wrong.
func New(v middleware.Verifier, cfg Config) (*Proxy, error) {
	if v == nil {
		return nil, errors.New("proxy: nil Verifier")
	}
	up, err := parseUpstream(cfg.Upstream)
	if err != nil {
		return nil, err
	}
	if cfg.UpstreamH2C && up.Scheme != "http" {
		return nil, errors.New("proxy: h2c needs an http:// upstream (https:// negotiates HTTP/2 itself)")
	}
	p := &Proxy{
		upstream:  up,
		transport: newTransport(up.Scheme == "https", cfg.UpstreamH2C),
		shadow:    cfg.Shadow,
		rejectDup: cfg.RejectDuplicates,
		log:       cfg.Logger,
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	trusted := cfg.TrustedProxies
	if cfg.PublicBaseURL != "" {
		trusted = nil
	}
	opts := []middleware.Option{
		middleware.WithPublicBaseURL(cfg.PublicBaseURL),
		middleware.WithTrustedProxies(trusted...),
		middleware.WithAccounts(cfg.Accounts...),
		middleware.WithRoute(cfg.Route),
		middleware.WithLogger(p.log),
		middleware.WithRefusalHandler(p.refuse),
	}
	if cfg.ProxyHeaders != nil {
		opts = append(opts, middleware.WithProxyHeaders(cfg.ProxyHeaders...))
	}
	if cfg.MaxBodyBytes != 0 {
		opts = append(opts, middleware.WithMaxBodyBytes(cfg.MaxBodyBytes))
	}
	if cfg.Shadow {
		opts = append(opts, middleware.WithShadow())
	}
	if cfg.RejectDuplicates {
		opts = append(opts, middleware.WithRejectDuplicates())
	}
	mw, err := middleware.New(p.timed(v), opts...)
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	if p.metrics, err = newMetrics(cfg.Registerer); err != nil {
		return nil, fmt.Errorf("proxy: register metrics: %w", err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite:      p.rewrite,
		Transport:    p.transport,
		ErrorHandler: p.upstreamError,
		ErrorLog:     slog.NewLogLogger(p.log.Handler(), slog.LevelWarn),
	}
	p.handler = mw.Wrap(rp)
	return p, nil
}

// ServeHTTP verifies r and forwards it, or refuses it.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.handler.ServeHTTP(w, r) }

// Close closes the idle connections to the upstream. The Proxy stays
// usable.
func (p *Proxy) Close() { p.transport.CloseIdleConnections() }

// parseUpstream checks the upstream URL.
func parseUpstream(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("proxy: no upstream: give the application's URL, e.g. http://127.0.0.1:3000")
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return nil, errors.New("proxy: upstream URL does not parse")
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("proxy: upstream %q: want http://host:port or https://host:port", s)
	case u.Host == "" || u.Opaque != "":
		return nil, fmt.Errorf("proxy: upstream %q: no host", s)
	case u.User != nil:
		return nil, errors.New("proxy: upstream URL must not contain user info")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, fmt.Errorf("proxy: upstream %q: must not have a query or fragment", s)
	}
	return u, nil
}

// newTransport returns the upstream transport: HTTP/1.1 or h2c for http://,
// TLS with HTTP/2 or HTTP/1.1 for https://.
func newTransport(https, h2c bool) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	var p http.Protocols
	switch {
	case https:
		p.SetHTTP1(true)
		p.SetHTTP2(true)
	case h2c:
		p.SetUnencryptedHTTP2(true)
	default:
		p.SetHTTP1(true)
	}
	t.Protocols = &p
	return t
}

// timed wraps v to measure how long the service takes to answer.
func (p *Proxy) timed(v middleware.Verifier) middleware.Verifier {
	return middleware.VerifierFunc(func(ctx context.Context, req *twilioguardv1.VerifyWebhookRequest) (*twilioguardv1.VerifyWebhookResponse, error) {
		start := time.Now()
		resp, err := v.VerifyWebhook(ctx, req)
		p.metrics.verify.Observe(time.Since(start).Seconds())
		return resp, err
	})
}

// forwardingHeaders are kept on the way upstream exactly as they arrived:
// the proxy is transparent to how the application sees its clients.
var forwardingHeaders = []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"}

// rewrite builds the upstream request: the upstream's address, the
// original Host, the forwarding headers as received (with the direct peer
// appended to X-Forwarded-For), and the verdict headers. It runs after the
// hop-by-hop headers are removed, so a Connection header cannot remove the
// headers set here.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(p.upstream)
	pr.Out.Host = pr.In.Host
	for _, h := range forwardingHeaders {
		if v, ok := pr.In.Header[h]; ok {
			pr.Out.Header[h] = v
		}
	}
	if ip, _, err := net.SplitHostPort(pr.In.RemoteAddr); err == nil {
		if prior := pr.Out.Header["X-Forwarded-For"]; len(prior) > 0 {
			ip = strings.Join(prior, ", ") + ", " + ip
		}
		pr.Out.Header.Set("X-Forwarded-For", ip)
	}

	v, ok := middleware.VerdictFrom(pr.In.Context())
	h := pr.Out.Header
	switch {
	case !ok:
		h.Set(webhookreq.HeaderVerified, "false")
		p.metrics.count(actionForwarded, resultUndecided, "")
	case !v.Valid:
		h.Set(webhookreq.HeaderVerified, "false")
		p.metrics.count(actionForwarded, resultInvalid, v.Reason)
	case v.Duplicate:
		// In shadow mode with duplicates rejected, a duplicate would have
		// been refused.
		verified := !(p.shadow && p.rejectDup)
		h.Set(webhookreq.HeaderVerified, fmt.Sprint(verified))
		if verified {
			h.Set(webhookreq.HeaderAccountSID, v.AccountSID)
		}
		h.Set(webhookreq.HeaderDuplicate, "true")
		p.metrics.count(actionForwarded, resultDuplicate, "")
	default:
		h.Set(webhookreq.HeaderVerified, "true")
		h.Set(webhookreq.HeaderAccountSID, v.AccountSID)
		p.metrics.count(actionForwarded, resultValid, "")
	}
}

// refuse counts a refusal and answers it as the middleware does: a short
// plain-text body with the status and no diagnosis.
func (p *Proxy) refuse(w http.ResponseWriter, r *http.Request, ref middleware.Refusal) {
	res, reason := resultOf(ref)
	p.metrics.count(actionRefused, res, reason)
	middleware.DefaultRefusal(w, r, ref)
}

// resultOf names the result of a refusal.
func resultOf(ref middleware.Refusal) (result, string) {
	switch ref.Status {
	case http.StatusForbidden:
		if ref.Verdict != nil {
			return resultInvalid, ref.Verdict.Reason
		}
		return resultInvalid, ""
	case http.StatusConflict:
		return resultDuplicate, ""
	case http.StatusBadRequest:
		return resultMalformed, ""
	case http.StatusRequestEntityTooLarge:
		return resultTooLarge, ""
	}
	return resultError, ""
}

// upstreamError answers 502 when the upstream cannot be reached or fails
// mid-answer, and logs why.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	p.metrics.upstreamErrors.Inc()
	level := slog.LevelError
	if r.Context().Err() != nil { // the client went away
		level = slog.LevelInfo
	}
	p.log.LogAttrs(r.Context(), level, "upstream request failed",
		slog.String("upstream", p.upstream.Redacted()),
		slog.String("path", bound.Text(r.URL.Path, bound.TextBytes)),
		slog.String("error", bound.Text(err.Error(), bound.TextBytes)))
	http.Error(w, http.StatusText(http.StatusBadGateway), http.StatusBadGateway)
}
