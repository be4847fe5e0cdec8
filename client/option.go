package client

import (
	"crypto/tls"
	"fmt"
	"time"

	"connectrpc.com/connect"
)

// An Option configures a [Client].
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type protocol int

const (
	protocolConnect protocol = iota
	protocolGRPC
	protocolGRPCWeb
)

type config struct {
	timeout     time.Duration
	adminToken  string
	httpClient  connect.HTTPClient
	tlsConfig   *tls.Config
	http1       bool
	protocol    protocol
	connectOpts []connect.ClientOption
	errs        []error
}

// WithTimeout sets the deadline of each call, applied on top of any deadline
// the caller's context already has (the earlier one wins). The default is
// [DefaultTimeout] (5 s); zero turns the per-call deadline off, leaving only
// the context's. A negative timeout is an error.
func WithTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d < 0 {
			c.errs = append(c.errs, fmt.Errorf("timeout %v: must not be negative", d))
			return
		}
		c.timeout = d
	})
}

// WithAdminToken sends token as "Authorization: Bearer <token>" on
// AccountService calls ([Client.Accounts]) only; VerifierService calls never
// carry it. By default no token is sent. The token is not logged or put in
// errors by this package. Over an http:// base URL it crosses the network in
// clear text: prefer https:// beyond loopback.
func WithAdminToken(token string) Option {
	return optionFunc(func(c *config) { c.adminToken = token })
}

// WithHTTPClient makes the Client send its requests through hc instead of
// the HTTP client New builds; [WithTLSConfig] and [WithHTTP1] then have no
// effect, and hc must speak the protocols the base URL and [WithGRPC] need
// (gRPC needs HTTP/2). By default New builds a client from a clone of
// [net/http.DefaultTransport].
func WithHTTPClient(hc connect.HTTPClient) Option {
	return optionFunc(func(c *config) {
		if hc == nil {
			c.errs = append(c.errs, fmt.Errorf("nil HTTP client"))
			return
		}
		c.httpClient = hc
	})
}

// WithTLSConfig sets the TLS configuration for an https:// base URL, for
// example RootCAs for a private CA or Certificates for mutual TLS. It is
// cloned. By default the system roots are used.
func WithTLSConfig(cfg *tls.Config) Option {
	return optionFunc(func(c *config) { c.tlsConfig = cfg })
}

// WithHTTP1 makes an http:// base URL use HTTP/1.1 instead of HTTP/2 without
// TLS (h2c), for a proxy in between that does not speak h2c. The Connect and
// gRPC-Web protocols work over HTTP/1.1; gRPC does not. By default http://
// uses h2c, which `twilioguard serve` speaks on its one port.
func WithHTTP1() Option {
	return optionFunc(func(c *config) { c.http1 = true })
}

// WithGRPC makes the Client use the gRPC protocol instead of Connect.
func WithGRPC() Option {
	return optionFunc(func(c *config) { c.protocol = protocolGRPC })
}

// WithGRPCWeb makes the Client use the gRPC-Web protocol instead of Connect.
func WithGRPCWeb() Option {
	return optionFunc(func(c *config) { c.protocol = protocolGRPCWeb })
}

// WithClientOptions passes extra Connect options (interceptors, codecs,
// compression, ...) to both generated clients. They apply after this
// package's own options.
func WithClientOptions(opts ...connect.ClientOption) Option {
	return optionFunc(func(c *config) { c.connectOpts = append(c.connectOpts, opts...) })
}
