package server_test

import (
	"bytes"
	"context"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/gen/twilioguard/v1/twilioguardv1connect"
	"github.com/twilioguard/twilioguard/internal/testserver"
	"github.com/twilioguard/twilioguard/server"
	"github.com/twilioguard/twilioguard/signature"
	"github.com/twilioguard/twilioguard/store"
)

// Accounts and secrets of the test fixture. Every secret is distinct and
// long enough that finding it anywhere by accident is impossible.
const (
	sid1       = "AC0123456789abcdef0123456789abcdef"
	sid2       = "ACfedcba9876543210fedcba9876543210"
	sidUnknown = "ACffffffffffffffffffffffffffffffff"

	token1     = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
	prevToken1 = "0f9e8d7c6b5a49382716051f2e3d4c5b"
	token2     = "77aa88bb99cc00dd11ee22ff33445566"
	ks1Secret  = "ks1-secret-Zq8Lm3Vx9Rt2Wp5Yn7Bc"
	ks2Secret  = "ks2-secret-Hd4Jf6Kg8Lh0Mj2Nk4Pl"
	adminToken = "admin-token-Qw3Er5Ty7Ui9Op1As3Df"

	hookURL = "https://hooks.example.com/twilio/sms"
)

// t0 is the fixture's current time; prevToken1 expires an hour later.
var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// fixtureSecrets lists every secret of the fixture, for leak checks.
var fixtureSecrets = []string{token1, prevToken1, token2, ks1Secret, ks2Secret, adminToken}

func defaultAccounts() []*store.Account {
	return []*store.Account{
		{
			SID:                sid1,
			Aliases:            []string{"main", "sales"},
			FriendlyName:       "Main account",
			AuthToken:          token1,
			PreviousAuthToken:  prevToken1,
			PreviousExpireTime: t0.Add(time.Hour),
			SharedKeys: []store.SharedKey{
				{ID: "KS1", Secret: ks1Secret, Algorithms: []store.Algorithm{store.HMACSHA256}},
				{ID: "KS2", Secret: ks2Secret, Algorithms: []store.Algorithm{store.HMACSHA1, store.HMACSHA256}},
			},
		},
		{SID: sid2, Aliases: []string{"other"}, AuthToken: token2},
	}
}

// testClock is a settable clock for server.Config.Now.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// recorder is an http.RoundTripper that copies every response's headers,
// body and trailers into a buffer, so tests can search all the server said.
type recorder struct {
	next http.RoundTripper
	out  *testserver.Buffer
}

func (r recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	_ = resp.Header.Write(r.out)
	resp.Body = &recordedBody{ReadCloser: resp.Body, resp: resp, out: r.out}
	return resp, nil
}

type recordedBody struct {
	io.ReadCloser
	resp *http.Response
	out  *testserver.Buffer
	once sync.Once
}

func (b *recordedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	_, _ = b.out.Write(p[:n])
	if err == io.EOF {
		b.once.Do(func() { _ = b.resp.Trailer.Write(b.out) })
	}
	return n, err
}

// protocol is one of the three RPC protocols a client may speak.
type protocol struct {
	name string
	opts []connect.ClientOption
	h2c  bool // needs HTTP/2 (prior knowledge, no TLS)
}

// protocols are run for every RPC case: Connect over HTTP/1.1, gRPC over
// h2c and gRPC-Web over HTTP/1.1.
var protocols = []protocol{
	{name: "connect"},
	{name: "grpc", opts: []connect.ClientOption{connect.WithGRPC()}, h2c: true},
	{name: "grpcweb", opts: []connect.ClientOption{connect.WithGRPCWeb()}},
}

// setup describes a test server.
type setup struct {
	// accounts are stored before the server loads; nil means defaultAccounts.
	accounts []*store.Account
	// storeDown makes the store unreachable before the first load, so the
	// server never loads.
	storeDown bool
	// config adjusts the server configuration.
	config func(*server.Config)
}

// harness is a server over a real loopback listener (HTTP/1.1 and h2c)
// with a fake store, a settable clock and a captured debug log.
type harness struct {
	srv       *server.Server
	store     *fakeStore
	clock     *testClock
	logs      *testserver.Buffer
	responses *testserver.Buffer // everything the server sent to the clients
	baseURL   string
	h1, h2c   *http.Client
}

func newHarness(t *testing.T, s setup) *harness {
	t.Helper()
	h := &harness{clock: &testClock{t: t0}, logs: &testserver.Buffer{}, responses: &testserver.Buffer{}}
	accounts := s.accounts
	if accounts == nil {
		accounts = defaultAccounts()
	}
	h.store = newFakeStore(h.clock.Now, accounts...)
	reg := prometheus.NewRegistry()
	cfg := server.Config{
		Store:        h.store,
		Registerer:   reg,
		AdminToken:   adminToken,
		Logger:       slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:          h.clock.Now,
		MaxParams:    40,
		MaxBodyBytes: 64 << 10,
	}
	if s.config != nil {
		s.config(&cfg)
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	h.srv = srv
	h.store.SetDown(s.storeDown)
	err = srv.Load(t.Context())
	switch {
	case s.storeDown && err == nil:
		t.Fatal("Load with the store down: got nil error")
	case !s.storeDown && err != nil:
		t.Fatalf("Load: %v", err)
	}

	mux := http.NewServeMux()
	srv.Routes(mux)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ts := httptest.NewUnstartedServer(mux)
	ts.Config.Protocols = new(http.Protocols)
	ts.Config.Protocols.SetHTTP1(true)
	ts.Config.Protocols.SetUnencryptedHTTP2(true)
	ts.Start()
	t.Cleanup(ts.Close)
	h.baseURL = ts.URL

	h1 := &http.Transport{MaxIdleConnsPerHost: 16}
	h2 := &http.Transport{Protocols: new(http.Protocols)}
	h2.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(h1.CloseIdleConnections)
	t.Cleanup(h2.CloseIdleConnections)
	h.h1 = &http.Client{Transport: recorder{next: h1, out: h.responses}}
	h.h2c = &http.Client{Transport: recorder{next: h2, out: h.responses}}
	return h
}

func (h *harness) httpClient(p protocol) *http.Client {
	if p.h2c {
		return h.h2c
	}
	return h.h1
}

// verifier returns a VerifierService client speaking p.
func (h *harness) verifier(p protocol) twilioguardv1connect.VerifierServiceClient {
	return twilioguardv1connect.NewVerifierServiceClient(h.httpClient(p), h.baseURL, p.opts...)
}

// admin returns an AccountService client speaking p that sends bearer as
// the admin token ("" sends no Authorization header).
func (h *harness) admin(p protocol, bearer string) twilioguardv1connect.AccountServiceClient {
	opts := append([]connect.ClientOption{}, p.opts...)
	if bearer != "" {
		opts = append(opts, connect.WithInterceptors(bearerToken(bearer)))
	}
	return twilioguardv1connect.NewAccountServiceClient(h.httpClient(p), h.baseURL, opts...)
}

func bearerToken(tok string) connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+tok)
			return next(ctx, req)
		}
	}
}

// get fetches path over HTTP/1.1 and returns the status and body.
func (h *harness) get(t *testing.T, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, h.baseURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := h.h1.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", path, err)
	}
	return resp.StatusCode, string(body)
}

// post sends body to path over HTTP/1.1 with the given headers (pairs of
// name and value) and returns the status and response body.
func (h *harness) post(t *testing.T, path, contentType string, body []byte, header ...string) (int, []byte) {
	t.Helper()
	status, out, err := h.send(t.Context(), path, contentType, body, header...)
	if err != nil {
		t.Fatalf("POST %s (%d bytes): %v", path, len(body), err)
	}
	return status, out
}

// send is post that returns transport errors instead of failing the test,
// for use off the test goroutine.
func (h *harness) send(ctx context.Context, path, contentType string, body []byte, header ...string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.baseURL+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", contentType)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := h.h1.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// params builds Param messages from key, value pairs.
func params(kv ...string) []*twilioguardv1.Param {
	out := make([]*twilioguardv1.Param, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, &twilioguardv1.Param{Key: kv[i], Value: kv[i+1]})
	}
	return out
}

// values converts Param messages to url.Values for signing.
func values(ps []*twilioguardv1.Param) url.Values {
	v := url.Values{}
	for _, p := range ps {
		v[p.Key] = append(v[p.Key], p.Value)
	}
	return v
}

// signedParams returns a params-mode request for rawURL signed with secret.
func signedParams(secret, rawURL string, ps []*twilioguardv1.Param) *twilioguardv1.VerifyWebhookRequest {
	return &twilioguardv1.VerifyWebhookRequest{
		Url:       rawURL,
		Params:    ps,
		Signature: signature.Sign(secret, rawURL, values(ps)),
	}
}

// smsParams are the fields of a typical inbound SMS webhook of account sid.
func smsParams(sid string) []*twilioguardv1.Param {
	return params(
		"ToCountry", "US",
		"ToState", "CA",
		"SmsMessageSid", "SM1f0e2d3c4b5a69788796a5b4c3d2e1f0",
		"NumMedia", "0",
		"ToCity", "SAN FRANCISCO",
		"FromZip", "94105",
		"SmsSid", "SM1f0e2d3c4b5a69788796a5b4c3d2e1f0",
		"FromState", "CA",
		"SmsStatus", "received",
		"FromCity", "SAN FRANCISCO",
		"Body", "Hello from the test suite! Café ☕ & friends",
		"FromCountry", "US",
		"To", "+15005550006",
		"ToZip", "94105",
		"NumSegments", "1",
		"MessageSid", "SM1f0e2d3c4b5a69788796a5b4c3d2e1f0",
		"AccountSid", sid,
		"From", "+14155551234",
		"ApiVersion", "2010-04-01",
		"MessagingServiceSid", "",
		"OptOutType", "",
	)
}
