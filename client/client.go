// Package client is the thin Go client of a twilioguard service.
//
// [New] returns a [Client] holding the generated Connect clients of
// twilioguard.v1.VerifierService ([Client.Verifier]) and
// twilioguard.v1.AccountService ([Client.Accounts]) over one HTTP client:
// HTTP/2 without TLS (h2c) for an http:// base URL, TLS (HTTP/2 or
// HTTP/1.1, as negotiated) for https://, a per-call timeout, and the admin
// bearer token on AccountService calls only.
//
// *Client has the VerifyWebhook method, so it is a middleware.Verifier:
//
//	c, err := client.New("http://twilioguard:8080")
//	if err != nil { ... }
//	m, err := middleware.New(c, middleware.WithPublicBaseURL("https://example.com"))
//	if err != nil { ... }
//	http.Handle("/sms", m.Wrap(smsHandler))
package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"connectrpc.com/connect"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/gen/twilioguard/v1/twilioguardv1connect"
)

// DefaultTimeout is the default deadline of one call (see [WithTimeout]).
const DefaultTimeout = 5 * time.Second

// Client calls a twilioguard service. Create one with [New]; it is safe for
// concurrent use. Its fields are the generated clients; use them for any
// call, and [Client.VerifyWebhook] for the common one.
type Client struct {
	// Verifier calls twilioguard.v1.VerifierService.
	Verifier twilioguardv1connect.VerifierServiceClient
	// Accounts calls twilioguard.v1.AccountService, the admin API. Its calls
	// carry the token given with [WithAdminToken]; without one the service
	// answers Unauthenticated.
	Accounts twilioguardv1connect.AccountServiceClient

	transport *http.Transport // nil when the caller supplied the HTTP client
}

// New returns a Client for the service at baseURL: "http://host:port" (h2c)
// or "https://host:port" (TLS), optionally with a path prefix when a proxy
// routes the service under one. A base URL with user info, a query or a
// fragment is an error.
func New(baseURL string, opts ...Option) (*Client, error) {
	cfg := config{timeout: DefaultTimeout}
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("client: nil Option")
		}
		o.apply(&cfg)
	}
	if len(cfg.errs) > 0 {
		return nil, fmt.Errorf("client: %w", errors.Join(cfg.errs...))
	}
	u, err := url.Parse(baseURL)
	switch {
	case err != nil:
		// url.Error quotes the input, which may hold a password: say less.
		return nil, errors.New("client: base URL does not parse")
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("client: base URL %q: want http://host:port (h2c) or https://host:port (TLS)", baseURL)
	case u.Host == "" || u.Opaque != "":
		return nil, fmt.Errorf("client: base URL %q: no host", baseURL)
	case u.User != nil:
		return nil, errors.New("client: base URL must not contain user info; use WithAdminToken for the admin API")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, fmt.Errorf("client: base URL %q: must not have a query or fragment", baseURL)
	}
	if cfg.protocol == protocolGRPC && u.Scheme == "http" && cfg.http1 {
		return nil, errors.New("client: gRPC needs HTTP/2: WithGRPC and WithHTTP1 conflict")
	}
	base := strings.TrimRight(baseURL, "/")

	c := &Client{}
	httpClient := cfg.httpClient
	if httpClient == nil {
		c.transport = newTransport(u.Scheme == "https", cfg)
		httpClient = &http.Client{Transport: c.transport}
	}

	common := []connect.ClientOption{}
	switch cfg.protocol {
	case protocolGRPC:
		common = append(common, connect.WithGRPC())
	case protocolGRPCWeb:
		common = append(common, connect.WithGRPCWeb())
	}
	if cfg.timeout > 0 {
		common = append(common, connect.WithInterceptors(timeoutInterceptor(cfg.timeout)))
	}
	common = append(common, cfg.connectOpts...)

	c.Verifier = twilioguardv1connect.NewVerifierServiceClient(httpClient, base, common...)
	adminOpts := common
	if cfg.adminToken != "" {
		adminOpts = append(adminOpts[:len(adminOpts):len(adminOpts)], connect.WithInterceptors(bearerInterceptor(cfg.adminToken)))
	}
	c.Accounts = twilioguardv1connect.NewAccountServiceClient(httpClient, base, adminOpts...)
	return c, nil
}

// VerifyWebhook calls twilioguard.v1.VerifierService/VerifyWebhook. A request
// that is not valid is a verdict (Valid false, with a Reason), not an error;
// an error means the service could not decide (see [connect.CodeOf]).
func (c *Client) VerifyWebhook(ctx context.Context, req *twilioguardv1.VerifyWebhookRequest) (*twilioguardv1.VerifyWebhookResponse, error) {
	if c == nil {
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("client: nil *Client (New failed?)"))
	}
	return c.Verifier.VerifyWebhook(ctx, req)
}

// Close closes the idle connections of the HTTP transport New made. It does
// nothing when the HTTP client came from [WithHTTPClient]. The Client stays
// usable.
func (c *Client) Close() {
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	}
}

func newTransport(https bool, cfg config) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	var p http.Protocols
	switch {
	case https:
		p.SetHTTP1(true)
		p.SetHTTP2(true)
		if cfg.tlsConfig != nil {
			t.TLSClientConfig = cfg.tlsConfig.Clone()
		}
	case cfg.http1:
		p.SetHTTP1(true)
	default:
		p.SetUnencryptedHTTP2(true)
	}
	t.Protocols = &p
	return t
}

// timeoutInterceptor gives every call a deadline of at most d.
func timeoutInterceptor(d time.Duration) connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			ctx, cancel := context.WithTimeout(ctx, d)
			defer cancel()
			return next(ctx, req)
		}
	}
}

// bearerInterceptor sends token as the bearer credential of every call.
func bearerInterceptor(token string) connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+token)
			return next(ctx, req)
		}
	}
}
