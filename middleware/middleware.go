// Package middleware protects net/http handlers that receive Twilio webhooks.
//
// [New] returns a [Middleware] whose [Middleware.Wrap] checks every request
// with a [Verifier] before the wrapped handler runs. The Verifier is anything
// with the VerifyWebhook method of twilioguard.v1.VerifierService: the remote
// client (package client), the in-process server, or a fake in tests. The app
// holds no auth token.
//
// For each request the middleware (through package webhookreq, which every
// twilioguard adapter shares):
//
//   - rebuilds the URL Twilio requested: a configured public base URL
//     ([WithPublicBaseURL]) followed by the raw request-target, or, without
//     one, the scheme and host of the connection, overridden by the
//     Forwarded (RFC 7239), X-Forwarded-Proto, X-Forwarded-Host,
//     X-Forwarded-Port and X-Original-Host headers only when the direct peer
//     is a trusted proxy ([WithTrustedProxies]), with the right-most
//     untrusted rule over several hops;
//   - reads the body up to a limit ([WithMaxBodyBytes]) and restores it byte
//     for byte for the wrapped handler;
//   - sends the raw body, its content type and the X-Twilio-Signature,
//     X-Twilio-Webhooks-Signature-Settings and I-Twilio-Idempotency-Token
//     headers to the Verifier;
//   - removes client-sent X-Twilioguard-* and X-Twilio-Account-Sid headers,
//     in any spelling, so the wrapped handler never sees forged ones;
//   - refuses ([WithRefusalHandler] writes the answer): 403 when the request
//     is not valid, 400 when it is malformed, 413 when its body is over the
//     limit, 409 for a duplicate when duplicates are rejected
//     ([WithRejectDuplicates]), and 503 for any error of the Verifier (fail
//     closed). Reasons and hints go to the log, never to the caller;
//   - otherwise calls the wrapped handler with the [Verdict] in the request
//     context ([VerdictFrom]).
//
// In shadow mode ([WithShadow]) the wrapped handler always runs and the
// middleware only logs what it would have done.
package middleware

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"reflect"

	"connectrpc.com/connect"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/internal/bound"
	"github.com/twilioguard/twilioguard/webhookreq"
)

// Verifier checks one webhook request. A request that is not valid is a
// verdict (Valid false, with a Reason), not an error; an error means the
// Verifier could not decide. Both the generated VerifierServiceClient and the
// in-process server satisfy it.
type Verifier interface {
	VerifyWebhook(ctx context.Context, req *twilioguardv1.VerifyWebhookRequest) (*twilioguardv1.VerifyWebhookResponse, error)
}

// VerifierFunc adapts a function to the [Verifier] interface.
type VerifierFunc func(ctx context.Context, req *twilioguardv1.VerifyWebhookRequest) (*twilioguardv1.VerifyWebhookResponse, error)

// VerifyWebhook calls f(ctx, req).
func (f VerifierFunc) VerifyWebhook(ctx context.Context, req *twilioguardv1.VerifyWebhookRequest) (*twilioguardv1.VerifyWebhookResponse, error) {
	return f(ctx, req)
}

// DefaultMaxBodyBytes is the default limit on the body of a webhook request
// (1 MiB).
const DefaultMaxBodyBytes = webhookreq.DefaultMaxBodyBytes

// Middleware verifies Twilio webhook requests before a handler sees them.
// Create one with [New]; it is safe for concurrent use.
type Middleware struct {
	verifier   Verifier
	policy     *webhookreq.URLPolicy
	maxBody    int64
	accounts   []string
	route      string
	shadow     bool
	rejectDups bool
	refuse     func(http.ResponseWriter, *http.Request, Refusal)
	logger     *slog.Logger
}

// New returns a Middleware that checks requests with v. It returns an error
// when v is nil or an option is invalid (a malformed CIDR or base URL, both
// a public base URL and trusted proxies, ...).
func New(v Verifier, opts ...Option) (*Middleware, error) {
	if v == nil || isNilPointer(v) {
		return nil, errors.New("middleware: nil Verifier")
	}
	cfg := config{maxBody: DefaultMaxBodyBytes}
	for _, o := range opts {
		if o == nil {
			cfg.errs = append(cfg.errs, errors.New("nil Option"))
			continue
		}
		o.apply(&cfg)
	}
	if cfg.url.PublicBaseURL != "" && len(cfg.url.TrustedProxies) > 0 {
		cfg.errs = append(cfg.errs, errors.New("WithPublicBaseURL and WithTrustedProxies conflict: "+
			"with a public base URL no forwarding header is read; set one of them"))
	}
	policy, err := webhookreq.NewURLPolicy(cfg.url)
	if err != nil {
		cfg.errs = append(cfg.errs, err)
	}
	if err := errors.Join(cfg.errs...); err != nil {
		return nil, errors.Join(errors.New("middleware: invalid configuration"), err)
	}
	m := &Middleware{
		verifier:   v,
		policy:     policy,
		maxBody:    cfg.maxBody,
		accounts:   cfg.accounts,
		route:      cfg.route,
		shadow:     cfg.shadow,
		rejectDups: cfg.rejectDups,
		refuse:     cfg.refuse,
		logger:     cfg.logger,
	}
	if m.logger == nil {
		m.logger = slog.New(slog.DiscardHandler)
	}
	if m.refuse == nil {
		m.refuse = DefaultRefusal
	}
	return m, nil
}

// Wrap returns a handler that verifies each request and then calls next (in
// shadow mode, calls next regardless).
func (m *Middleware) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.serve(w, r, next)
	})
}

// Refusal is a request the middleware does not let through: the status it
// answers with and why.
type Refusal struct {
	// Status is 400 (malformed), 403 (not valid), 409 (duplicate), 413
	// (body too large) or 503 (the verifier could not decide).
	Status int
	// Verdict is the verifier's answer, or nil when there is none (400, 413
	// and 503 without a verdict).
	Verdict *Verdict
	// Err says why there is no verdict; nil when there is one.
	Err error
}

// DefaultRefusal writes a short plain-text answer with ref.Status and no
// diagnosis; 413 also closes the connection and 503 asks to retry after a
// second.
func DefaultRefusal(w http.ResponseWriter, _ *http.Request, ref Refusal) {
	switch ref.Status {
	case http.StatusRequestEntityTooLarge:
		w.Header().Set("Connection", "close")
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
	}
	http.Error(w, http.StatusText(ref.Status), ref.Status)
}

func (m *Middleware) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	ctx := r.Context()
	webhookreq.StripInjected(r.Header)
	pub := m.policy.Rebuild(r)
	attrs := m.attrs(pub)

	body, err := webhookreq.ReadBody(r, m.maxBody)
	if err != nil {
		ref := Refusal{Status: http.StatusBadRequest, Err: err}
		msg := "twilio webhook refused: cannot read the request body"
		if errors.Is(err, webhookreq.ErrBodyTooLarge) {
			ref.Status, msg = http.StatusRequestEntityTooLarge, "twilio webhook refused: request body too large"
		}
		m.refused(w, r, next, ref, msg, slog.LevelInfo, append(attrs, slog.String("error", err.Error())))
		return
	}

	req := webhookreq.Request(r, pub.URL, body)
	req.AllowedAccounts, req.Route = m.accounts, m.route
	resp, err := m.verifier.VerifyWebhook(ctx, req)
	if err == nil && resp == nil {
		err = errors.New("verifier returned no verdict")
	}
	if err != nil {
		m.verifierError(w, r, next, attrs, err)
		return
	}

	v := verdictOf(resp)
	attrs = append(attrs, slog.String("account_sid", v.AccountSID))
	switch {
	case !v.Valid:
		attrs = append(attrs, slog.String("reason", v.Reason))
		attrs = appendIf(attrs, "hint", v.Hint)
		attrs = appendIf(attrs, "proxy_hint", pub.ProxyHint, slog.String("peer", bound.Text(webhookreq.Peer(r.RemoteAddr), 64)))
		m.refused(w, r, next, Refusal{Status: http.StatusForbidden, Verdict: &v}, "twilio webhook refused", slog.LevelInfo, attrs)
		return
	case v.Duplicate && m.rejectDups:
		attrs = append(attrs, slog.Time("first_seen", v.FirstSeen))
		m.refused(w, r, next, Refusal{Status: http.StatusConflict, Verdict: &v}, "twilio webhook refused: duplicate", slog.LevelInfo, attrs)
		return
	}
	if m.logger.Enabled(ctx, slog.LevelDebug) {
		m.logger.LogAttrs(ctx, slog.LevelDebug, "twilio webhook verified",
			append(attrs, slog.String("credential", v.Credential), slog.Bool("duplicate", v.Duplicate))...)
	}
	next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, verdictKey{}, &v)))
}

// attrs are the log attributes every decision line of a request carries.
func (m *Middleware) attrs(pub webhookreq.PublicURL) []slog.Attr {
	attrs := make([]slog.Attr, 0, 10)
	attrs = appendIf(attrs, "route", m.route)
	return append(attrs, slog.String("url", bound.Text(pub.URL, bound.TextBytes)), slog.String("url_from", pub.From))
}

// refused answers ref (or, in shadow mode, logs it and calls next).
func (m *Middleware) refused(w http.ResponseWriter, r *http.Request, next http.Handler, ref Refusal, msg string, level slog.Level, attrs []slog.Attr) {
	ctx := r.Context()
	if m.shadow {
		m.logger.LogAttrs(ctx, level, msg+" (shadow mode: let through)", attrs...)
		if ref.Verdict != nil {
			r = r.WithContext(context.WithValue(ctx, verdictKey{}, ref.Verdict))
		}
		next.ServeHTTP(w, r)
		return
	}
	m.logger.LogAttrs(ctx, level, msg, attrs...)
	m.refuse(w, r, ref)
}

// verifierError answers a request the Verifier could not decide on: 400 for
// malformed input, 503 otherwise (fail closed).
func (m *Middleware) verifierError(w http.ResponseWriter, r *http.Request, next http.Handler, attrs []slog.Attr, err error) {
	attrs = append(attrs, slog.String("error", bound.Text(err.Error(), bound.TextBytes)))
	switch connect.CodeOf(err) {
	case connect.CodeInvalidArgument:
		m.refused(w, r, next, Refusal{Status: http.StatusBadRequest, Err: err}, "twilio webhook refused: malformed request", slog.LevelInfo, attrs)
	case connect.CodeUnauthenticated, connect.CodePermissionDenied:
		m.refused(w, r, next, Refusal{Status: http.StatusServiceUnavailable, Err: err},
			"twilio webhook refused: the verifier refused this caller (check its configuration)", slog.LevelError, attrs)
	default:
		level := slog.LevelError
		if r.Context().Err() != nil { // the caller went away; nobody reads the answer
			level = slog.LevelInfo
		}
		m.refused(w, r, next, Refusal{Status: http.StatusServiceUnavailable, Err: err}, "twilio webhook refused: verifier unavailable", level, attrs)
	}
}

// isNilPointer reports whether v holds a nil pointer, such as the
// *client.Client of a failed client.New.
func isNilPointer(v Verifier) bool {
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}

// appendIf appends the attribute key=value when value is not empty, then
// more.
func appendIf(attrs []slog.Attr, key, value string, more ...slog.Attr) []slog.Attr {
	if value != "" {
		attrs = append(attrs, slog.String(key, bound.Text(value, bound.TextBytes)))
	}
	return append(attrs, more...)
}
