package middleware

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
)

// An Option configures a [Middleware].
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	baseURL      string
	trusted      []netip.Prefix
	proxyHeaders []string
	maxBody      int64
	accounts     []string
	route        string
	shadow       bool
	logger       *slog.Logger
	errs         []error
}

// WithPublicBaseURL sets the scheme, host and optional path prefix Twilio is
// configured with, for example "https://example.com" or
// "https://example.com/twilio" when a proxy strips /twilio. The URL checked
// is this base followed by the raw request-target of each request, and no
// header is read to build it. This is the safest setting behind any proxy.
//
// By default there is no base URL. An empty string leaves the default in
// place (handy for optional configuration). A base URL with user info, a
// query or a fragment is a configuration error (see [Middleware.Err]).
func WithPublicBaseURL(base string) Option {
	return optionFunc(func(c *config) {
		if base == "" {
			return
		}
		u, err := parseBaseURL(base)
		if err != nil {
			c.errs = append(c.errs, err)
			return
		}
		c.baseURL = u
	})
}

// WithTrustedProxies lists the peers (CIDRs such as "10.0.0.0/8" or single
// addresses such as "127.0.0.1" and "::1") whose forwarded headers are
// believed when no public base URL is set. Only the direct peer of the
// connection (the request's RemoteAddr) decides whether headers are read at
// all; headers from any other peer are ignored (and named in the log when a
// request is refused).
//
// With several proxies in a row the right-most untrusted rule applies: of
// the hops a header lists, the right-most one that is not itself a trusted
// proxy is taken to be the client, and the scheme and host recorded for it
// are used. Each trusted proxy must set or remove every header the
// middleware reads (see [WithProxyHeaders]); one that passes a client's
// header through lets the client choose the URL.
//
// By default no proxy is trusted. Empty strings are skipped; a malformed
// entry is a configuration error (see [Middleware.Err]). Repeated use adds
// to the list.
func WithTrustedProxies(cidrs ...string) Option {
	return optionFunc(func(c *config) {
		for _, s := range cidrs {
			if strings.TrimSpace(s) == "" {
				continue
			}
			p, err := parsePrefix(s)
			if err != nil {
				c.errs = append(c.errs, err)
				continue
			}
			c.trusted = append(c.trusted, p)
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
// By default all five are read. An unknown name is a configuration error
// (see [Middleware.Err]).
func WithProxyHeaders(names ...string) Option {
	return optionFunc(func(c *config) {
		c.proxyHeaders = []string{}
		for _, n := range names {
			canon := http.CanonicalHeaderKey(strings.TrimSpace(n))
			if !slices.Contains(proxyHeaders, canon) {
				c.errs = append(c.errs, fmt.Errorf("proxy header %q: not one of %s", n, strings.Join(proxyHeaders, ", ")))
				continue
			}
			c.proxyHeaders = append(c.proxyHeaders, canon)
		}
	})
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

// WithLogger sets the logger for decision lines: Warn for refused (or, in
// shadow mode, would-be refused) requests with the reason and hints, Error
// when the verifier cannot decide, Debug for verified requests. Nothing
// secret is logged. The default discards everything; a nil logger keeps the
// default.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) {
		if l != nil {
			c.logger = l
		}
	})
}

// WithOptions composes several options into one.
func WithOptions(opts ...Option) Option {
	return optionFunc(func(c *config) {
		for _, o := range opts {
			if o == nil {
				c.errs = append(c.errs, errors.New("nil Option"))
				continue
			}
			o.apply(c)
		}
	})
}
