// Package middleware protects net/http handlers that receive Twilio webhooks.
//
// [New] returns a [Middleware] whose [Middleware.Wrap] checks every request
// with a [Verifier] before the wrapped handler runs. The Verifier is anything
// with the VerifyWebhook method of twilioguard.v1.VerifierService: the
// remote client (package client), the in-process server, or a fake in tests.
// The app holds no auth token.
//
// For each request the middleware:
//
//   - rebuilds the URL Twilio requested: a configured public base URL
//     ([WithPublicBaseURL]) followed by the raw request-target, or, without
//     one, the scheme and host of the connection, overridden by the
//     Forwarded (RFC 7239), X-Forwarded-Proto, X-Forwarded-Host,
//     X-Forwarded-Port and X-Original-Host headers only when the direct peer
//     is a trusted proxy ([WithTrustedProxies]). Headers from any other peer
//     never change the URL. Multiple hops use the right-most untrusted rule
//     (see [WithTrustedProxies]);
//   - reads the body up to a limit ([WithMaxBodyBytes], 413 beyond it) and
//     restores it byte for byte for the wrapped handler;
//   - sends the raw body, its content type and the X-Twilio-Signature and
//     X-Twilio-Webhooks-Signature-Settings headers to the Verifier;
//   - answers 403 when the request is not valid (the reason and the
//     verifier's near-miss hint go to the log, never to the caller), 503 when
//     the Verifier cannot decide (fail closed), 400 when the verifier finds
//     the request malformed, and 500 when the Verifier refuses the caller
//     (a configuration error);
//   - otherwise calls the wrapped handler with the verdict in the request
//     context ([VerdictFrom]).
//
// In shadow mode ([WithShadow]) the wrapped handler always runs and the
// middleware only logs what it would have done.
package middleware

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"connectrpc.com/connect"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
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

// The request headers Twilio signs with.
const (
	headerSignature         = "X-Twilio-Signature"
	headerSignatureSettings = "X-Twilio-Webhooks-Signature-Settings"
)

// DefaultMaxBodyBytes is the default limit on the body of a webhook request
// (1 MiB); Twilio's webhooks are far smaller.
const DefaultMaxBodyBytes int64 = 1 << 20

var errBodyTooLarge = errors.New("request body too large")

// Middleware verifies Twilio webhook requests before a handler sees them.
// Create one with [New]; it is safe for concurrent use.
type Middleware struct {
	verifier Verifier
	policy   urlPolicy
	maxBody  int64
	accounts []string
	route    string
	shadow   bool
	logger   *slog.Logger
	err      error
}

// New returns a Middleware that checks requests with v.
//
// New does not fail: an invalid option (for example a malformed CIDR) is
// recorded, reported by [Middleware.Err], and makes every wrapped request
// fail closed with 500. Check Err at start-up.
func New(v Verifier, opts ...Option) *Middleware {
	cfg := config{maxBody: DefaultMaxBodyBytes}
	WithOptions(opts...).apply(&cfg)
	m := &Middleware{
		verifier: v,
		maxBody:  cfg.maxBody,
		accounts: cfg.accounts,
		route:    cfg.route,
		shadow:   cfg.shadow,
		logger:   cfg.logger,
		err:      errors.Join(cfg.errs...),
	}
	if m.logger == nil {
		m.logger = slog.New(slog.DiscardHandler)
	}
	if v == nil {
		m.err = errors.Join(m.err, errors.New("middleware: nil Verifier"))
	}
	m.policy = urlPolicy{baseURL: cfg.baseURL, trusted: cfg.trusted, headers: map[string]bool{}}
	names := cfg.proxyHeaders
	if names == nil {
		names = proxyHeaders
	}
	for _, n := range names {
		m.policy.headers[n] = true
	}
	return m
}

// Err returns the configuration errors found by [New], or nil. A Middleware
// with a configuration error refuses every request with 500.
func (m *Middleware) Err() error {
	return m.err
}

// Wrap returns a handler that verifies each request and then calls next (in
// shadow mode, calls next regardless).
func (m *Middleware) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.serve(w, r, next)
	})
}

type verdictKey struct{}

// VerdictFrom returns the verdict the middleware put in the context of a
// request, and whether there is one. In enforcing mode the wrapped handler
// only runs for valid requests; in shadow mode the verdict may be invalid
// (check GetValid) or absent (the verifier could not be reached).
func VerdictFrom(ctx context.Context) (*twilioguardv1.VerifyWebhookResponse, bool) {
	v, ok := ctx.Value(verdictKey{}).(*twilioguardv1.VerifyWebhookResponse)
	return v, ok && v != nil
}

func (m *Middleware) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	ctx := r.Context()
	if m.err != nil {
		m.logger.LogAttrs(ctx, slog.LevelError, "twilio webhook refused: middleware misconfigured",
			appendIf(nil, "route", m.route, slog.String("error", m.err.Error()))...)
		http.Error(w, "webhook verification misconfigured", http.StatusInternalServerError)
		return
	}
	pub := m.policy.rebuild(r)
	attrs := appendIf(nil, "route", m.route, slog.String("url", pub.url), slog.String("url_from", pub.from))

	body, err := readBody(r, m.maxBody)
	if err != nil {
		tooLarge := errors.Is(err, errBodyTooLarge)
		if m.shadow && tooLarge {
			m.logger.LogAttrs(ctx, slog.LevelWarn, "twilio webhook not verified (shadow mode): request body too large",
				append(attrs, slog.Int64("max_body_bytes", m.maxBody))...)
			r2 := r.Clone(ctx)
			r2.Body = struct {
				io.Reader
				io.Closer
			}{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
			next.ServeHTTP(w, r2)
			return
		}
		if tooLarge {
			m.logger.LogAttrs(ctx, slog.LevelWarn, "twilio webhook refused: request body too large",
				append(attrs, slog.Int64("max_body_bytes", m.maxBody))...)
			w.Header().Set("Connection", "close")
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		m.logger.LogAttrs(ctx, slog.LevelWarn, "twilio webhook refused: cannot read request body",
			append(attrs, slog.String("error", err.Error()))...)
		http.Error(w, "cannot read request body", http.StatusBadRequest)
		return
	}

	req := &twilioguardv1.VerifyWebhookRequest{
		Url:               pub.url,
		Signature:         r.Header.Get(headerSignature),
		SignatureSettings: r.Header.Get(headerSignatureSettings),
		AllowedAccounts:   m.accounts,
		Route:             m.route,
	}
	if ct := r.Header.Get("Content-Type"); len(body) > 0 || (ct != "" && r.Method != http.MethodGet && r.Method != http.MethodHead) {
		req.Body, req.ContentType = body, ct
	}

	verdict, err := m.verifier.VerifyWebhook(ctx, req)
	if err == nil && verdict == nil {
		err = errors.New("verifier returned no verdict")
	}
	if err != nil {
		m.refuseError(w, r, next, body, attrs, err)
		return
	}

	attrs = append(attrs, slog.String("account_sid", verdict.GetAccountSid()))
	if !verdict.GetValid() {
		attrs = append(attrs, slog.String("reason", verdict.GetReason().String()))
		attrs = appendIf(attrs, "hint", verdict.GetHint())
		attrs = appendIf(attrs, "proxy_hint", pub.proxyHint, slog.String("peer", peerString(r.RemoteAddr)))
		if !m.shadow {
			m.logger.LogAttrs(ctx, slog.LevelWarn, "twilio webhook refused", attrs...)
			http.Error(w, "invalid Twilio signature", http.StatusForbidden)
			return
		}
		m.logger.LogAttrs(ctx, slog.LevelWarn, "twilio webhook would be refused (shadow mode)", attrs...)
	} else {
		m.logger.LogAttrs(ctx, slog.LevelDebug, "twilio webhook verified",
			append(attrs, slog.String("credential", verdict.GetCredential()), slog.String("matched_url", verdict.GetMatchedUrl()))...)
	}
	next.ServeHTTP(w, withBody(r.WithContext(context.WithValue(ctx, verdictKey{}, verdict)), body))
}

// appendIf appends the attribute key=value when value is not empty, then
// more.
func appendIf(attrs []slog.Attr, key, value string, more ...slog.Attr) []slog.Attr {
	if value != "" {
		attrs = append(attrs, slog.String(key, value))
	}
	return append(attrs, more...)
}

// refuseError answers a request the Verifier could not decide on: 400 for
// malformed input, 500 when the Verifier refuses the caller, 503 otherwise
// (fail closed). In shadow mode it logs and calls next instead.
func (m *Middleware) refuseError(w http.ResponseWriter, r *http.Request, next http.Handler, body []byte, attrs []slog.Attr, err error) {
	ctx := r.Context()
	attrs = append(attrs, slog.String("error", err.Error()))
	if m.shadow {
		m.logger.LogAttrs(ctx, slog.LevelError, "twilio webhook not verified (shadow mode): verifier error", attrs...)
		next.ServeHTTP(w, withBody(r, body))
		return
	}
	switch connect.CodeOf(err) {
	case connect.CodeInvalidArgument:
		m.logger.LogAttrs(ctx, slog.LevelWarn, "twilio webhook refused: malformed request", attrs...)
		http.Error(w, "malformed webhook request", http.StatusBadRequest)
	case connect.CodeUnauthenticated, connect.CodePermissionDenied:
		m.logger.LogAttrs(ctx, slog.LevelError, "twilio webhook refused: verifier refused this caller (check its configuration)", attrs...)
		http.Error(w, "webhook verification misconfigured", http.StatusInternalServerError)
	default:
		level := slog.LevelError
		if ctx.Err() != nil { // the caller went away; nobody reads the answer
			level = slog.LevelInfo
		}
		m.logger.LogAttrs(ctx, level, "twilio webhook refused: verifier unavailable", attrs...)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "webhook verifier unavailable", http.StatusServiceUnavailable)
	}
}

// readBody reads the body of r, at most limit bytes. Beyond the limit it
// returns what it read and an error wrapping errBodyTooLarge; the rest stays
// unread in r.Body.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength > limit {
		return nil, fmt.Errorf("%w: Content-Length %d > %d", errBodyTooLarge, r.ContentLength, limit)
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return b, fmt.Errorf("read body: %w", err)
	}
	if int64(len(b)) > limit {
		return b, fmt.Errorf("%w: more than %d bytes", errBodyTooLarge, limit)
	}
	return b, nil
}

// withBody returns r with its body replaced by a fresh reader over body, so
// the next handler reads the same bytes the verifier saw.
func withBody(r *http.Request, body []byte) *http.Request {
	if r.Body == nil || r.Body == http.NoBody {
		return r
	}
	r2 := r.WithContext(r.Context()) // a shallow copy
	r2.Body = io.NopCloser(bytes.NewReader(body))
	r2.ContentLength = int64(len(body))
	r2.GetBody = func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(body)), nil
	}
	return r2
}
