// Package forwardauth answers HTTP forward-auth requests: gateways that ask
// an HTTP endpoint whether to let a request through (Traefik's forwardAuth
// with forwardBody, APISIX's forward-auth, Envoy's HTTP ext_authz with
// path_prefix, Istio's envoyExtAuthzHttp) ask twilioguard whether Twilio
// sent the webhook.
//
// The [Handler] is mounted at [Path] on the service's port. For each auth
// request it:
//
//   - refuses (400) a request that carries a header only twilioguard sets
//     (X-Twilioguard-* other than the settings below, X-Twilio-Account-Sid,
//     in any spelling): the gateway passed a client's forged copy through;
//   - rebuilds the original request ([webhookreq.ForwardAuthOriginal]):
//     from X-Forwarded-Method, -Proto, -Host and -Uri when X-Forwarded-Uri
//     is present, otherwise from the method, the path after [Path], the
//     Host header and X-Forwarded-Proto;
//   - reads the route's settings: the query parameters of the auth URL
//     (accounts, public_base_url, mode, route, duplicates) when the
//     original request-target came from X-Forwarded-Uri, which win over the
//     headers X-Twilioguard-Accounts, -Public-Base-Url, -Mode, -Route and
//     -Duplicates;
//   - answers 403 with X-Twilioguard-Reason: BODY_NOT_FORWARDED for a form
//     POST whose body the gateway did not send;
//   - otherwise verifies the original request with the [middleware] (one
//     per route, cached) and answers 200 with X-Twilio-Account-Sid and
//     X-Twilioguard-Verified: true, 403 with X-Twilioguard-Reason, 400
//     (malformed), 413 (body too large), 409 (a duplicate on a route that
//     rejects them) or 503 (the service cannot decide, or the route's
//     settings are wrong: fail closed).
//
// In shadow mode every answer is 200, and a request that would have been
// refused carries X-Twilioguard-Verified: false and its reason.
package forwardauth

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/internal/bound"
	"github.com/twilioguard/twilioguard/middleware"
	"github.com/twilioguard/twilioguard/webhookreq"
)

// Path is where the handler is mounted on the service's port; Envoy's
// path_prefix and Istio's pathPrefix are this.
const Path = "/forward-auth"

// Route settings: request headers (always read) and query parameters of the
// auth URL (read when the original request-target comes from
// X-Forwarded-Uri; they win over the headers).
const (
	HeaderAccounts      = "X-Twilioguard-Accounts"
	HeaderPublicBaseURL = "X-Twilioguard-Public-Base-Url"
	HeaderMode          = "X-Twilioguard-Mode"
	HeaderRoute         = "X-Twilioguard-Route"
	HeaderDuplicates    = "X-Twilioguard-Duplicates"

	ParamAccounts      = "accounts"
	ParamPublicBaseURL = "public_base_url"
	ParamMode          = "mode"
	ParamRoute         = "route"
	ParamDuplicates    = "duplicates"
)

// settingHeaders are the X-Twilioguard-* headers a gateway may send.
var settingHeaders = map[string]string{
	HeaderAccounts:      ParamAccounts,
	HeaderPublicBaseURL: ParamPublicBaseURL,
	HeaderMode:          ParamMode,
	HeaderRoute:         ParamRoute,
	HeaderDuplicates:    ParamDuplicates,
}

// Handler answers forward-auth requests. Create one with [New]; it is safe
// for concurrent use.
type Handler struct {
	v       middleware.Verifier
	log     *slog.Logger
	maxBody int64
	answers *prometheus.CounterVec
	labels  *bound.Labels
	routes  *bound.Cache[settings, *route]
}

// An Option configures a [Handler].
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	log     *slog.Logger
	reg     prometheus.Registerer
	maxBody int64
}

// WithLogger sets the logger: the middleware's decision lines (Info for
// refusals with the reason and hint, Error when the service cannot decide,
// Debug for verified requests) and the handler's own (Info for a body that
// was not forwarded or a forged header, Error for wrong route settings).
// The default discards them; nil keeps it.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) {
		if l != nil {
			c.log = l
		}
	})
}

// WithRegisterer registers the metric twilioguard_forward_auth_requests_total
// on reg. By default it is not registered.
func WithRegisterer(reg prometheus.Registerer) Option {
	return optionFunc(func(c *config) { c.reg = reg })
}

// WithMaxBodyBytes sets the largest body read (default
// [webhookreq.DefaultMaxBodyBytes]); a larger one is answered 413.
func WithMaxBodyBytes(n int64) Option {
	return optionFunc(func(c *config) { c.maxBody = n })
}

// New returns a Handler that verifies with v. It fails when v is nil, an
// option is nil or invalid, or the metric cannot be registered.
func New(v middleware.Verifier, opts ...Option) (*Handler, error) {
	if v == nil {
		return nil, errors.New("forwardauth: nil Verifier")
	}
	c := config{log: slog.New(slog.DiscardHandler), maxBody: webhookreq.DefaultMaxBodyBytes}
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("forwardauth: nil Option")
		}
		o.apply(&c)
	}
	if c.maxBody <= 0 {
		return nil, fmt.Errorf("forwardauth: max body bytes %d: must be positive", c.maxBody)
	}
	h := &Handler{
		v:       v,
		log:     c.log,
		maxBody: c.maxBody,
		labels:  bound.NewLabels(""),
		routes:  bound.NewCache[settings, *route](maxRoutes),
		answers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "twilioguard_forward_auth_requests_total",
			Help: "Forward-auth answers by route, status (200 in shadow mode) and reason " +
				"(why the request is not verified, e.g. SIGNATURE_MISMATCH or BODY_NOT_FORWARDED).",
		}, []string{"route", "status", "reason"}),
	}
	if c.reg != nil {
		if err := c.reg.Register(h.answers); err != nil {
			return nil, fmt.Errorf("forwardauth: register metrics: %w", err)
		}
	}
	return h, nil
}

// reasonBodyNotForwarded is the reason the handler gives without asking
// the service.
var reasonBodyNotForwarded = twilioguardv1.Reason_BODY_NOT_FORWARDED.String()

// ServeHTTP answers one forward-auth request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if name := forgedHeader(r.Header); name != "" {
		h.log.LogAttrs(ctx, slog.LevelInfo, "forward-auth refused: the request carries a header only twilioguard sets; "+
			"configure the gateway to remove its clients' copies",
			slog.String("header", bound.Text(name, bound.LabelBytes)))
		h.answer(w, nil, http.StatusBadRequest, "", false)
		return
	}
	o, err := webhookreq.ForwardAuthOriginal(r, Path)
	if err != nil {
		h.log.LogAttrs(ctx, slog.LevelInfo, "forward-auth refused: malformed request",
			slog.String("error", bound.Text(err.Error(), bound.TextBytes)))
		h.answer(w, nil, http.StatusBadRequest, "", false)
		return
	}
	s := readSettings(r, o)
	rt, err := h.route(s)
	if err != nil {
		h.log.LogAttrs(ctx, slog.LevelError, "forward-auth cannot decide: the route's settings are wrong",
			slog.String("error", bound.Text(err.Error(), bound.TextBytes)))
		h.answer(w, nil, http.StatusServiceUnavailable, "", false)
		return
	}

	body, err := webhookreq.ReadBody(r, h.maxBody)
	if err == nil && webhookreq.BodyNotForwarded(o.Method, r.Header.Get("Content-Type"), len(body)) {
		msg := "forward-auth refused: the gateway did not forward the body of a form POST, so its signature cannot be checked; " +
			"configure the gateway to send the body (Traefik forwardBody: true) or put twilioguard proxy in front of the app"
		if rt.shadow {
			msg += " (shadow mode: allowed)"
		}
		attrs := []slog.Attr{slog.String("reason", reasonBodyNotForwarded), slog.String("url", bound.Text(s.baseURL+o.Target, bound.TextBytes))}
		if rt.name != "" {
			attrs = append(attrs, slog.String("route", bound.Text(rt.name, bound.TextBytes)))
		}
		h.log.LogAttrs(ctx, slog.LevelInfo, msg, attrs...)
		h.answer(w, rt, http.StatusForbidden, reasonBodyNotForwarded, false)
		return
	}
	// Errors reading the body are the middleware's to answer (413, 400).
	orig := r.WithContext(ctx)
	orig.Method, orig.RequestURI = o.Method, o.Target
	rt.handler.ServeHTTP(w, orig)
}

// forgedHeader returns the name of a header in h that only twilioguard sets
// (in any spelling) and that is not a route setting, or "".
func forgedHeader(h http.Header) string {
	for name := range h {
		if _, ok := settingHeaders[name]; !ok && webhookreq.IsInjected(name) {
			return name
		}
	}
	return ""
}

// answer writes a status of the handler's own or of the middleware, with
// X-Twilioguard-Reason when the request is not valid (reason, the name of a
// VerifyWebhookResponse reason) and X-Twilioguard-Duplicate when it is a
// duplicate, and counts it. On a route in shadow mode a would-be refusal
// is answered 200 with X-Twilioguard-Verified: false.
func (h *Handler) answer(w http.ResponseWriter, rt *route, status int, reason string, duplicate bool) {
	label := ""
	if rt != nil {
		label = rt.label
	}
	hdr := w.Header()
	if reason != "" {
		hdr.Set(webhookreq.HeaderReason, reason)
	}
	if duplicate {
		hdr.Set(webhookreq.HeaderDuplicate, "true")
	}
	if status != http.StatusOK && rt != nil && rt.shadow {
		status = http.StatusOK
	}
	h.answers.WithLabelValues(label, fmt.Sprint(status), reason).Inc()
	if status == http.StatusOK {
		if hdr.Get(webhookreq.HeaderVerified) == "" {
			hdr.Set(webhookreq.HeaderVerified, "false")
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	if status == http.StatusServiceUnavailable {
		hdr.Set("Retry-After", "1")
	}
	http.Error(w, http.StatusText(status), status)
}

// settings are a route's settings as the request gives them.
type settings struct {
	baseURL, accounts, mode, name, duplicates string
}

// readSettings reads the route settings of r: query parameters of the auth
// URL when the original request-target came from X-Forwarded-Uri, else (and
// for parameters not given) headers. Without a public base URL the
// original request's origin is the base.
func readSettings(r *http.Request, o webhookreq.Original) settings {
	var q map[string][]string
	if o.FromHeaders && r.URL.RawQuery != "" {
		q = r.URL.Query()
	}
	get := func(header string) string {
		if vs, ok := q[settingHeaders[header]]; ok && len(vs) > 0 {
			return vs[0]
		}
		return r.Header.Get(header)
	}
	s := settings{
		baseURL:    get(HeaderPublicBaseURL),
		accounts:   get(HeaderAccounts),
		mode:       get(HeaderMode),
		name:       get(HeaderRoute),
		duplicates: get(HeaderDuplicates),
	}
	if s.baseURL == "" {
		s.baseURL = o.Origin
	}
	return s
}

// route is the middleware of one combination of settings.
type route struct {
	handler http.Handler // the middleware around the 200 answer
	shadow  bool
	name    string // as given, for logs
	label   string // bounded, for metrics
}

const (
	// maxRoutes bounds the cache of routes: distinct settings normally
	// come from the gateway's configuration and are few.
	maxRoutes = 1024
	// maxCachedSettings is the longest settings (all values together)
	// whose route is cached.
	maxCachedSettings = 1024
)

// route returns the route for s, from the cache when it is there.
func (h *Handler) route(s settings) (*route, error) {
	cacheable := len(s.baseURL)+len(s.accounts)+len(s.mode)+len(s.name)+len(s.duplicates) <= maxCachedSettings
	if cacheable {
		if rt, ok := h.routes.Get(s); ok {
			return rt, nil
		}
	}
	rt, err := h.newRoute(s)
	if err != nil {
		return nil, err
	}
	if cacheable {
		h.routes.Add(s, rt)
	}
	return rt, nil
}

// newRoute checks s and builds its middleware.
func (h *Handler) newRoute(s settings) (*route, error) {
	rt := &route{name: s.name, label: h.labels.Value(s.name)}
	opts := []middleware.Option{
		middleware.WithPublicBaseURL(s.baseURL),
		middleware.WithAccounts(strings.Split(s.accounts, ",")...),
		middleware.WithRoute(s.name),
		middleware.WithMaxBodyBytes(h.maxBody),
		middleware.WithLogger(h.log),
		middleware.WithRefusalHandler(func(w http.ResponseWriter, _ *http.Request, ref middleware.Refusal) {
			reason := ""
			if ref.Verdict != nil && ref.Status == http.StatusForbidden {
				reason = ref.Verdict.Reason
			}
			h.answer(w, rt, ref.Status, reason, ref.Status == http.StatusConflict)
		}),
	}
	var err error
	if rt.shadow, err = webhookreq.ParseMode(s.mode); err != nil {
		return nil, fmt.Errorf("mode %w", err)
	}
	rejectDups, err := webhookreq.ParseDuplicates(s.duplicates)
	if err != nil {
		return nil, fmt.Errorf("duplicates %w", err)
	}
	if rt.shadow {
		opts = append(opts, middleware.WithShadow())
	}
	if rejectDups {
		opts = append(opts, middleware.WithRejectDuplicates())
	}
	if s.accounts != "" && strings.Trim(s.accounts, ", ") == "" {
		return nil, errors.New("accounts is empty")
	}
	m, err := middleware.New(h.v, opts...)
	if err != nil {
		return nil, err
	}
	rt.handler = m.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, ok := middleware.VerdictFrom(r.Context())
		switch {
		case !ok: // shadow mode: malformed, too large or undecided
			h.answer(w, rt, http.StatusOK, "", false)
		case !v.Valid: // shadow mode
			h.answer(w, rt, http.StatusOK, v.Reason, false)
		case v.Duplicate && rejectDups: // shadow mode
			h.answer(w, rt, http.StatusOK, "", true)
		default:
			w.Header().Set(webhookreq.HeaderVerified, "true")
			w.Header().Set(webhookreq.HeaderAccountSID, v.AccountSID)
			h.answer(w, rt, http.StatusOK, "", v.Duplicate)
		}
	}))
	return rt, nil
}
