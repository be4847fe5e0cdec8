package client_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/twilioguard/twilioguard/client"
	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/gen/twilioguard/v1/twilioguardv1connect"
	"github.com/twilioguard/twilioguard/middleware"
	"github.com/twilioguard/twilioguard/signature"
)

// *Client is a Verifier for the middleware (and for anything else that
// takes the one-method interface).
var _ middleware.Verifier = (*client.Client)(nil)

const (
	testSID        = "AC0123456789abcdef0123456789abcdef"
	testToken      = "12345678901234567890123456789012"
	testAdminToken = "admin-token-for-tests"
)

// fakeService is a hand-written twilioguard service: VerifyWebhook checks
// form signatures with one auth token; GetAccount needs the admin token.
type fakeService struct {
	twilioguardv1connect.UnimplementedAccountServiceHandler

	mu    sync.Mutex
	reqs  []*twilioguardv1.VerifyWebhookRequest
	block bool // VerifyWebhook waits for its context to end
}

func (s *fakeService) VerifyWebhook(ctx context.Context, req *twilioguardv1.VerifyWebhookRequest) (*twilioguardv1.VerifyWebhookResponse, error) {
	s.mu.Lock()
	s.reqs = append(s.reqs, proto.CloneOf(req))
	block := s.block
	s.mu.Unlock()
	if block {
		<-ctx.Done()
		return nil, connect.NewError(connect.CodeDeadlineExceeded, ctx.Err())
	}
	sreq := &signature.Request{
		URL: req.GetUrl(), Body: req.GetBody(), ContentType: req.GetContentType(),
		HasBody: req.GetContentType() != "" || len(req.GetBody()) > 0, Signature: req.GetSignature(),
	}
	m, err := signature.Check(sreq, []signature.Credential{{Secret: testToken}})
	switch {
	case err == nil:
		return &twilioguardv1.VerifyWebhookResponse{Valid: true, AccountSid: testSID, Credential: "auth_token", MatchedUrl: m.URL}, nil
	case errors.Is(err, signature.ErrMalformedRequest):
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	return &twilioguardv1.VerifyWebhookResponse{AccountSid: testSID, Reason: twilioguardv1.Reason_SIGNATURE_MISMATCH}, nil
}

func (s *fakeService) GetAccount(_ context.Context, req *twilioguardv1.GetAccountRequest) (*twilioguardv1.GetAccountResponse, error) {
	return &twilioguardv1.GetAccountResponse{}, nil
}

// seen records what reached the service over HTTP.
type seen struct {
	mu    sync.Mutex
	calls []call
}

type call struct {
	path, proto, contentType, authorization string
}

func (s *seen) last(t *testing.T) call {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.calls) == 0 {
		t.Fatal("no call reached the service")
	}
	return s.calls[len(s.calls)-1]
}

// startService runs the fake service over h2c (and HTTP/1.1) or, with
// useTLS, over TLS with HTTP/2.
func startService(t *testing.T, useTLS bool) (*httptest.Server, *fakeService, *seen) {
	t.Helper()
	svc := &fakeService{}
	rec := &seen{}
	mux := http.NewServeMux()
	mux.Handle(twilioguardv1connect.NewVerifierServiceHandler(svc))
	mux.Handle(twilioguardv1connect.NewAccountServiceHandler(svc, connect.WithInterceptors(requireAdmin())))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.calls = append(rec.calls, call{r.URL.Path, r.Proto, r.Header.Get("Content-Type"), r.Header.Get("Authorization")})
		rec.mu.Unlock()
		mux.ServeHTTP(w, r)
	})
	srv := httptest.NewUnstartedServer(h)
	if useTLS {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		srv.Config.Protocols = &p
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv, svc, rec
}

func requireAdmin() connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			if req.Header().Get("Authorization") != "Bearer "+testAdminToken {
				return nil, connect.NewError(connect.CodeUnauthenticated, errors.New("admin token required"))
			}
			return next(ctx, req)
		}
	}
}

func newClient(t *testing.T, baseURL string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(baseURL, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func signedRequest(rawURL string) *twilioguardv1.VerifyWebhookRequest {
	body := "AccountSid=" + testSID + "&Body=hi"
	params, _ := url.ParseQuery(body)
	return &twilioguardv1.VerifyWebhookRequest{
		Url:         rawURL,
		Body:        []byte(body),
		ContentType: "application/x-www-form-urlencoded",
		Signature:   signature.Sign(testToken, rawURL, params),
	}
}

func TestProtocols(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		tls       bool
		opts      []client.Option
		wantProto string
		wantCT    string
	}{
		{name: "h2c by default", wantProto: "HTTP/2.0", wantCT: "application/proto"},
		{name: "HTTP/1.1 on request", opts: []client.Option{client.WithHTTP1()}, wantProto: "HTTP/1.1", wantCT: "application/proto"},
		{name: "gRPC over h2c", opts: []client.Option{client.WithGRPC()}, wantProto: "HTTP/2.0", wantCT: "application/grpc"},
		{name: "gRPC-Web over HTTP/1.1", opts: []client.Option{client.WithGRPCWeb(), client.WithHTTP1()}, wantProto: "HTTP/1.1", wantCT: "application/grpc-web+proto"},
		{name: "TLS", tls: true, wantProto: "HTTP/2.0", wantCT: "application/proto"},
		{name: "gRPC over TLS", tls: true, opts: []client.Option{client.WithGRPC()}, wantProto: "HTTP/2.0", wantCT: "application/grpc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, _, rec := startService(t, tt.tls)
			opts := tt.opts
			if tt.tls {
				pool := x509.NewCertPool()
				pool.AddCert(srv.Certificate())
				opts = append(opts, client.WithTLSConfig(&tls.Config{RootCAs: pool}))
			}
			c := newClient(t, srv.URL, opts...)
			resp, err := c.VerifyWebhook(t.Context(), signedRequest("https://example.com/sms"))
			if err != nil {
				t.Fatal(err)
			}
			if !resp.GetValid() || resp.GetCredential() != "auth_token" {
				t.Errorf("verdict = %v; want valid with auth_token", resp)
			}
			got := rec.last(t)
			if got.proto != tt.wantProto || got.contentType != tt.wantCT || got.path != twilioguardv1connect.VerifierServiceVerifyWebhookProcedure {
				t.Errorf("service saw %+v; want %s %s", got, tt.wantProto, tt.wantCT)
			}
			if got.authorization != "" {
				t.Errorf("VerifyWebhook carried Authorization %q; want none", got.authorization)
			}
		})
	}
}

func TestTLSWithoutTrustedCA(t *testing.T) {
	t.Parallel()
	srv, _, _ := startService(t, true)
	c := newClient(t, srv.URL) // system roots do not include the test CA
	_, err := c.VerifyWebhook(t.Context(), signedRequest("https://example.com/sms"))
	var uerr x509.UnknownAuthorityError
	if !errors.As(err, &uerr) {
		t.Errorf("err = %v; want an unknown-authority TLS error", err)
	}
}

func TestAdminToken(t *testing.T) {
	t.Parallel()
	srv, _, rec := startService(t, false)

	c := newClient(t, srv.URL, client.WithAdminToken(testAdminToken))
	if _, err := c.Accounts.GetAccount(t.Context(), &twilioguardv1.GetAccountRequest{Account: testSID}); err != nil {
		t.Fatalf("GetAccount with the admin token: %v", err)
	}
	if got := rec.last(t).authorization; got != "Bearer "+testAdminToken {
		t.Errorf("Authorization = %q; want the bearer token", got)
	}
	if _, err := c.VerifyWebhook(t.Context(), signedRequest("https://example.com/sms")); err != nil {
		t.Fatal(err)
	}
	if got := rec.last(t).authorization; got != "" {
		t.Errorf("VerifyWebhook carried Authorization %q; want none", got)
	}

	anon := newClient(t, srv.URL)
	_, err := anon.Accounts.GetAccount(t.Context(), &twilioguardv1.GetAccountRequest{Account: testSID})
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("GetAccount without a token: code %v (%v); want unauthenticated", connect.CodeOf(err), err)
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	srv, svc, _ := startService(t, false)
	svc.block = true
	c := newClient(t, srv.URL, client.WithTimeout(20*time.Millisecond))
	_, err := c.VerifyWebhook(t.Context(), signedRequest("https://example.com/sms"))
	if connect.CodeOf(err) != connect.CodeDeadlineExceeded {
		t.Errorf("code = %v (%v); want deadline_exceeded", connect.CodeOf(err), err)
	}
}

func TestServiceDown(t *testing.T) {
	t.Parallel()
	srv, _, _ := startService(t, false)
	base := srv.URL
	srv.Close()
	c := newClient(t, base)
	_, err := c.VerifyWebhook(t.Context(), signedRequest("https://example.com/sms"))
	if connect.CodeOf(err) != connect.CodeUnavailable {
		t.Errorf("code = %v (%v); want unavailable", connect.CodeOf(err), err)
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		base string
		opts []client.Option
	}{
		{base: ""},
		{base: "localhost:8080"},
		{base: "ftp://localhost"},
		{base: "http://"},
		{base: "http://localhost:8080/?x=1"},
		{base: "http://localhost:8080/#f"},
		{base: "http://admin:s3cret@localhost:8080"},
		{base: "http://localhost:8080", opts: []client.Option{client.WithGRPC(), client.WithHTTP1()}},
		{base: "http://localhost:8080", opts: []client.Option{client.WithTimeout(-1)}},
		{base: "http://localhost:8080", opts: []client.Option{client.WithHTTPClient(nil)}},
		{base: "http://localhost:8080", opts: []client.Option{nil}},
	}
	for _, tt := range tests {
		c, err := client.New(tt.base, tt.opts...)
		if err == nil || c != nil {
			t.Errorf("New(%q) = %v, %v; want an error", tt.base, c, err)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("New(%q) error %q leaks the password", tt.base, err)
		}
	}
	for _, base := range []string{"http://localhost:8080", "https://tg.example/prefix/", "http://[::1]:8080"} {
		if _, err := client.New(base); err != nil {
			t.Errorf("New(%q): %v", base, err)
		}
	}
}

func TestWithHTTPClientAndPrefix(t *testing.T) {
	t.Parallel()
	srv, _, rec := startService(t, false)
	// A proxy that serves the service under /tg.
	proxy := httptest.NewServer(http.StripPrefix("/tg", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.URL.Scheme, r.URL.Host, r.RequestURI = "http", strings.TrimPrefix(srv.URL, "http://"), ""
		resp, err := http.DefaultTransport.RoundTrip(r.WithContext(r.Context()))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})))
	t.Cleanup(proxy.Close)
	c := newClient(t, proxy.URL+"/tg/", client.WithHTTPClient(proxy.Client()))
	resp, err := c.VerifyWebhook(t.Context(), signedRequest("https://example.com/sms"))
	if err != nil || !resp.GetValid() {
		t.Fatalf("VerifyWebhook through a prefix proxy = %v, %v; want valid", resp, err)
	}
	if got := rec.last(t); got.proto != "HTTP/1.1" || got.path != twilioguardv1connect.VerifierServiceVerifyWebhookProcedure {
		t.Errorf("service saw %+v; want HTTP/1.1 on the procedure path", got)
	}
}

func TestClientBehindMiddleware(t *testing.T) {
	t.Parallel()
	srv, _, _ := startService(t, false)
	c := newClient(t, srv.URL)
	var served int
	var mu sync.Mutex
	m, err := middleware.New(c)
	if err != nil {
		t.Fatal(err)
	}
	app := httptest.NewServer(m.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		served++
		mu.Unlock()
		v, _ := middleware.VerdictFrom(r.Context())
		fmt.Fprint(w, v.AccountSID)
	})))
	t.Cleanup(app.Close)

	target := app.URL + "/sms"
	for _, tt := range []struct {
		signedFor string
		want      int
	}{{target, 200}, {target + "x", 403}} {
		req := signedRequest(tt.signedFor)
		hreq, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, target, bytes.NewReader(req.GetBody()))
		hreq.Header.Set("Content-Type", req.GetContentType())
		hreq.Header.Set("X-Twilio-Signature", req.GetSignature())
		resp, err := http.DefaultClient.Do(hreq)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("signed for %q: status %d; want %d", tt.signedFor, resp.StatusCode, tt.want)
		}
		if tt.want == 200 && string(b) != testSID {
			t.Errorf("handler saw account %q; want %s", b, testSID)
		}
	}
	if served != 1 {
		t.Errorf("handler served %d requests; want 1", served)
	}
	// A client that failed to build is refused by the middleware at once,
	// instead of failing every request later.
	var broken *client.Client
	if _, err := middleware.New(broken); err == nil {
		t.Errorf("middleware.New(nil *client.Client) = nil error; want an error")
	}
}
