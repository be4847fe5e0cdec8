package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/signature"
)

// ErrBodyTooLarge is returned (wrapped) by [Client.VerifyRequest] when the
// request body is larger than the limit set with [WithMaxBodyBytes].
var ErrBodyTooLarge = errors.New("client: request body too large")

// A RequestOption sets optional fields of the VerifyWebhookRequest that
// [Client.VerifyRequest] builds.
type RequestOption func(*twilioguardv1.VerifyWebhookRequest)

// WithAccount names the account (SID or alias) whose credentials verify the
// request. By default the AccountSid field of the body names it.
func WithAccount(account string) RequestOption {
	return func(r *twilioguardv1.VerifyWebhookRequest) { r.Account = account }
}

// WithAllowedAccounts binds the request to some accounts: a signature valid
// for any other account is refused (ACCOUNT_NOT_ALLOWED).
func WithAllowedAccounts(accounts ...string) RequestOption {
	return func(r *twilioguardv1.VerifyWebhookRequest) {
		r.AllowedAccounts = append(r.AllowedAccounts, accounts...)
	}
}

// WithRoute sets the route label the service uses in its logs and metrics.
func WithRoute(name string) RequestOption {
	return func(r *twilioguardv1.VerifyWebhookRequest) { r.Route = name }
}

// VerifyRequest verifies an incoming webhook request r, for code that holds
// an *http.Request and does not use the middleware.
//
// The URL checked is publicBaseURL (the scheme, host and optional path
// prefix Twilio is configured with, for example "https://example.com")
// followed by the raw request-target of r (r.RequestURI, never a re-encoded
// URL). With an empty publicBaseURL the scheme and host of the connection
// are used (r.TLS and r.Host); no forwarded header is ever read here, so
// behind a TLS-terminating proxy pass the public base URL (the middleware
// package can also trust forwarded headers from configured proxies).
//
// The body is read up to the limit of [WithMaxBodyBytes] and restored, so
// the caller can read or parse it afterwards; it is sent raw with its
// Content-Type, along with the X-Twilio-Signature and
// X-Twilio-Webhooks-Signature-Settings headers. Beyond the limit the error
// wraps [ErrBodyTooLarge] and r.Body still yields the whole body.
//
// As with [Client.VerifyWebhook], an invalid request is a verdict with Valid
// false; an error means no verdict.
func (c *Client) VerifyRequest(ctx context.Context, r *http.Request, publicBaseURL string, opts ...RequestOption) (*twilioguardv1.VerifyWebhookResponse, error) {
	req, err := buildRequest(r, publicBaseURL, c.maxBody)
	if err != nil {
		return nil, err
	}
	for _, o := range opts {
		o(req)
	}
	return c.VerifyWebhook(ctx, req)
}

// buildRequest turns r into a VerifyWebhookRequest, restoring r.Body.
func buildRequest(r *http.Request, publicBaseURL string, limit int64) (*twilioguardv1.VerifyWebhookRequest, error) {
	base, err := baseOf(r, publicBaseURL)
	if err != nil {
		return nil, err
	}
	body, err := readAndRestore(r, limit)
	if err != nil {
		return nil, err
	}
	req := &twilioguardv1.VerifyWebhookRequest{
		Url:               base + signature.RequestTarget(r),
		Signature:         r.Header.Get("X-Twilio-Signature"),
		SignatureSettings: r.Header.Get("X-Twilio-Webhooks-Signature-Settings"),
	}
	ct := r.Header.Get("Content-Type")
	if len(body) > 0 || (ct != "" && r.Method != http.MethodGet && r.Method != http.MethodHead) {
		req.Body, req.ContentType = body, ct
	}
	return req, nil
}

// baseOf returns the scheme://host[/prefix] part of the URL to check.
func baseOf(r *http.Request, publicBaseURL string) (string, error) {
	if publicBaseURL == "" {
		if r.Host == "" {
			return "", errors.New("client: request has no Host and no public base URL was given")
		}
		if r.TLS != nil {
			return "https://" + r.Host, nil
		}
		return "http://" + r.Host, nil
	}
	u, err := url.Parse(publicBaseURL)
	switch {
	case err != nil:
		return "", errors.New("client: public base URL does not parse")
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "", u.Opaque != "":
		return "", fmt.Errorf("client: public base URL %q: want http(s)://host[:port][/prefix]", publicBaseURL)
	case u.User != nil:
		return "", errors.New("client: public base URL must not contain user info (Twilio signs the URL without it)")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return "", fmt.Errorf("client: public base URL %q: must not have a query or fragment", publicBaseURL)
	}
	return strings.TrimRight(publicBaseURL, "/"), nil
}

// readAndRestore reads at most limit bytes of r.Body and puts back a body
// that yields exactly the original bytes.
func readAndRestore(r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength > limit {
		return nil, fmt.Errorf("%w: Content-Length %d > %d", ErrBodyTooLarge, r.ContentLength, limit)
	}
	orig := r.Body
	b, err := io.ReadAll(io.LimitReader(orig, limit+1))
	if err != nil || int64(len(b)) > limit {
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(b), orig), orig}
		if err != nil {
			return nil, fmt.Errorf("client: read request body: %w", err)
		}
		return nil, fmt.Errorf("%w: more than %d bytes", ErrBodyTooLarge, limit)
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.ContentLength = int64(len(b))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	return b, nil
}
