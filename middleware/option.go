package middleware

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/twilioguard/twilioguard/webhookreq"
)

// An Option configures a [Middleware].
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	url        webhookreq.URLConfig
	maxBody    int64
	accounts   []string
	route      string
	shadow     bool
	rejectDups bool
	refuse     func(http.ResponseWriter, *http.Request, Refusal)
	logger     *slog.Logger
	errs       []error
}

// WithPublicBaseURL sets the scheme, host and optional path prefix Twilio is
// configured with, for example "https://example.com" or
// "https://example.com/twilio" when a proxy strips /twilio. The URL checked
// is this base followed by the raw request-target of each request, and no
// header is read to build it. This is the safest setting behind any proxy.
//
// By default there is no base URL. An empty string leaves the default in
// place (handy for optional configuration). A base URL with user info, a
// query or a fragment, or together with [WithTrustedProxies], makes [New]
// fail.
func WithPublicBaseURL(base string) Option {
	return optionFunc(func(c *config) { c.url.PublicBaseURL = base })
}

// WithTrustedProxies lists the peers (CIDRs such as "10.0.0.0/8" or single
// addresses such as "127.0.0.1" and "::1") whose forwarded headers are
// believed. Only the direct peer of the connection (the request's
// RemoteAddr) decides whether headers are read at all; headers from any
// other peer are ignored (and named in the log when a request is refused).
//
// With several proxies in a row the right-most untrusted rule applies: of
// the hops a header lists, the right-most one that is not itself a trusted
// proxy is taken to be the client, and the scheme and host recorded for it
// are used. Each trusted proxy must set or remove every header the
// middleware reads (see [WithProxyHeaders]); one that passes a client's
// header through lets the client choose the URL.
//
// By default no proxy is trusted. Empty strings are skipped; a malformed
// entry makes [New] fail. Repeated use adds to the list.
func WithTrustedProxies(cidrs ...string) Option {
	return optionFunc(func(c *config) {
		for _, s := range cidrs {
			if strings.TrimSpace(s) != "" {
				c.url.TrustedProxies = append(c.url.TrustedProxies, s)
			}
		}
	})
}

// WithProxyHeaders restricts the forwarded headers read from trusted
// proxies to names, a subset of "Forwarded", "X-Forwarded-Proto",
// "X-Forwarded-Host", "X-Forwarded-Port" and "X-Original-Host" (any case).
// Use it when a proxy sets only some of them and passes the others through
// from the client, e.g. WithProxyHeaders("X-Forwarded-Proto") for a proxy
// that keeps the Host header and sets only X-Forwarded-Proto.
//
// By default all five are read. An unknown name makes [New] fail.
func WithProxyHeaders(names ...string) Option {
	return optionFunc(func(c *config) { c.url.ProxyHeaders = append([]string{}, names...) })
}

// WithMaxBodyBytes sets the largest request body read for verification. A
// larger body is refused with 413 (in shadow mode: served unverified).
// The default is [DefaultMaxBodyBytes] (1 MiB); n must be positive.
func WithMaxBodyBytes(n int64) Option {
	return optionFunc(func(c *config) {
		if n <= 0 {
			c.errs = append(c.errs, fmt.Errorf("max body bytes %d: must be positive", n))
			return
		}
		c.maxBody = n
	})
}

// WithAccounts binds the wrapped routes to some accounts (SIDs or aliases
// known to the verifier): a signature valid for any other account is refused
// (ACCOUNT_NOT_ALLOWED). With exactly one account, requests that carry no
// AccountSid are checked against that account.
//
// By default any account known to the verifier is accepted. Empty strings
// are skipped; repeated use adds to the list.
func WithAccounts(accounts ...string) Option {
	return optionFunc(func(c *config) {
		for _, a := range accounts {
			if a = strings.TrimSpace(a); a != "" {
				c.accounts = append(c.accounts, a)
			}
		}
	})
}

// WithRoute sets a route label (for example "sms") sent to the verifier for
// its logs and metrics and added to this middleware's log lines. The default
// is no label.
func WithRoute(name string) Option {
	return optionFunc(func(c *config) { c.route = name })
}

// WithShadow turns on shadow mode: every request is verified and the
// verdict logged, but the wrapped handler always runs, even when the request
// is not valid, the body is too large, or the verifier cannot be reached.
// Use it to roll out verification and read the would-be refusals first.
// The verdict, when there is one, is still in the context ([VerdictFrom]).
//
// By default the middleware enforces: it refuses and fails closed.
func WithShadow() Option {
	return optionFunc(func(c *config) { c.shadow = true })
}

// WithRejectDuplicates refuses, with 409, a valid request the verifier
// reports as a duplicate (the same webhook verified before within its
// replay window). By default duplicates go through with Duplicate set in
// their [Verdict]; a verifier without replay detection never reports one.
func WithRejectDuplicates() Option {
	return optionFunc(func(c *config) { c.rejectDups = true })
}

// WithRefusalHandler sets the function that answers refused requests, for
// example with a TwiML body or a JSON error. It must write a response with
// ref.Status (or another status of its choosing). The default is
// [DefaultRefusal]; nil keeps it.
func WithRefusalHandler(h func(w http.ResponseWriter, r *http.Request, ref Refusal)) Option {
	return optionFunc(func(c *config) {
		if h != nil {
			c.refuse = h
		}
	})
}

// WithLogger sets the logger for decision lines: Info for refused (or, in
// shadow mode, would-be refused) requests with the reason and hints, Error
// when the verifier cannot decide, Debug for verified requests. Nothing
// secret is logged and caller-supplied values are cut to a bounded length.
// The default discards everything; a nil logger keeps the default.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) {
		if l != nil {
			c.logger = l
		}
	})
}
