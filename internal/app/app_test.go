package app_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/twilioguard/twilioguard/client"
	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/internal/app"
	"github.com/twilioguard/twilioguard/internal/testserver"
	"github.com/twilioguard/twilioguard/signature"
	"github.com/twilioguard/twilioguard/store"
	"github.com/twilioguard/twilioguard/store/seal"
	"github.com/twilioguard/twilioguard/store/sqlite"
)

const (
	testSID    = "AC0123456789abcdef0123456789abcdef"
	testToken  = "0123456789abcdef0123456789abcdef"
	adminToken = "admin-token-for-app-tests"
)

// started is an App serving in-process on loopback ports.
type started struct {
	app  *app.App
	url  string
	logs *testserver.Buffer
	stop func() error
}

// start opens and runs an App with SQLite in a temporary directory.
func start(t *testing.T, mutate func(*app.Config)) *started {
	t.Helper()
	logs := &testserver.Buffer{}
	cfg := app.Config{
		Addr:         "127.0.0.1:0",
		ExtauthzAddr: "127.0.0.1:0",
		DataDir:      t.TempDir(),
		AdminToken:   adminToken,
		Logger:       slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	a, err := app.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	s := &started{app: a, url: "http://" + a.Addr(), logs: logs}
	s.stop = sync1(func() error {
		cancel()
		err := <-done
		return errorsJoin(err, a.Close())
	})
	t.Cleanup(func() { _ = s.stop() })
	waitReady(t, s.url)
	return s
}

func sync1(f func() error) func() error {
	var done bool
	var err error
	return func() error {
		if !done {
			done, err = true, f()
		}
		return err
	}
}

func errorsJoin(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func waitReady(t testing.TB, base string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("not ready after 10s")
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAppEndToEnd(t *testing.T) {
	t.Parallel()
	s := start(t, nil)

	c, err := client.New(s.url, client.WithAdminToken(adminToken))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Accounts.PutAccount(t.Context(), &twilioguardv1.PutAccountRequest{Account: &twilioguardv1.Account{Sid: testSID, AuthToken: testToken}}); err != nil {
		t.Fatalf("PutAccount: %v", err)
	}
	const hook = "https://example.com/sms"
	body := "AccountSid=" + testSID + "&Body=hi"
	params, _ := signature.ParseForm([]byte(body))
	sig := signature.Sign(testToken, hook, params)
	resp, err := c.VerifyWebhook(t.Context(), &twilioguardv1.VerifyWebhookRequest{
		Url: hook, Body: []byte(body), ContentType: "application/x-www-form-urlencoded", Signature: sig,
	})
	if err != nil || !resp.GetValid() {
		t.Fatalf("VerifyWebhook = %v, %v; want valid", resp, err)
	}

	if code, text := get(t, s.url+"/healthz"); code != 200 || text != "ok\n" {
		t.Errorf("GET /healthz = %d %q", code, text)
	}
	if code, text := get(t, s.url+"/readyz"); code != 200 || text != "ready: 1 accounts\n" {
		t.Errorf("GET /readyz = %d %q; want 200 ready: 1 accounts", code, text)
	}
	if code, text := get(t, s.url+"/metrics"); code != 200 || !strings.Contains(text, `twilioguard_verifications_total{`) ||
		!strings.Contains(text, "go_goroutines") || !strings.Contains(text, "process_resident_memory_bytes") {
		t.Errorf("GET /metrics = %d; want the verification, Go and process metrics", code)
	}

	// Reflection lists every service of the port, health included.
	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	defer h2c.CloseIdleConnections()
	rc := grpcreflect.NewClient(&http.Client{Transport: h2c}, s.url, connect.WithGRPC())
	stream := rc.NewStream(t.Context())
	names, err := stream.ListServices()
	_, _ = stream.Close()
	if err != nil {
		t.Fatalf("ListServices: %v", err)
	}
	for _, want := range []string{"twilioguard.v1.VerifierService", "twilioguard.v1.AccountService",
		"envoy.service.auth.v3.Authorization", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
		if !containsName(names, want) {
			t.Errorf("reflection lists %v; want %s among them", names, want)
		}
	}

	// The native ext_authz listener answers Check and gRPC health.
	conn, err := grpc.NewClient(s.app.ExtauthzAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hr, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil || hr.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("native health = %v, %v; want SERVING", hr, err)
	}
	check, err := authv3.NewAuthorizationClient(conn).Check(t.Context(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "POST", Path: "/sms", Host: "example.com", Scheme: "https",
			Headers: map[string]string{"content-type": "application/x-www-form-urlencoded", "x-twilio-signature": sig,
				"content-length": fmt.Sprint(len(body)), "x_twilioguard_verified": "true"},
			RawBody: []byte(body),
		}},
	}})
	if err != nil || check.GetOkResponse() == nil {
		t.Fatalf("native Check = %v, %v; want OK", check, err)
	}
	if rm := check.GetOkResponse().GetHeadersToRemove(); !slices.Contains(rm, "x_twilioguard_verified") {
		t.Errorf("Check removes %v; want the forged underscore spelling among them", rm)
	}

	if err := s.stop(); err != nil {
		t.Errorf("Run returned %v after a clean shutdown", err)
	}
}

func containsName[T interface{ ~string }](names []T, want string) bool {
	for _, n := range names {
		if string(n) == want {
			return true
		}
	}
	return false
}

// TestBrokenBodiesAre400 sends request bodies that cannot be read — broken
// chunked encodings and a body shorter than its Content-Length — to every
// Connect handler of the port. Each gets 400, never 500, and the port keeps
// serving.
func TestBrokenBodiesAre400(t *testing.T) {
	t.Parallel()
	s := start(t, nil)
	addr := strings.TrimPrefix(s.url, "http://")
	paths := []string{
		"/twilioguard.v1.VerifierService/VerifyWebhook",
		"/twilioguard.v1.AccountService/GetAccount",
		"/envoy.service.auth.v3.Authorization/Check",
	}
	bodies := map[string]string{
		"bad chunk size":       "zz\r\n{}\r\n0\r\n\r\n",
		"missing CRLF":         "2\r\n{}0\r\n\r\n",
		"huge chunk extension": "2;" + strings.Repeat("x", 70<<10) + "\r\n{}\r\n0\r\n\r\n",
		"truncated last chunk": "5\r\n{}",
		"short Content-Length": "",
	}
	for _, path := range paths {
		for name, body := range bodies {
			head := "POST " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/json\r\nAuthorization: Bearer " + adminToken + "\r\n"
			if name == "short Content-Length" {
				head += "Content-Length: 10\r\n\r\n{}"
			} else {
				head += "Transfer-Encoding: chunked\r\n\r\n" + body
			}
			status := rawStatus(t, addr, head, name == "short Content-Length" || name == "truncated last chunk")
			if status != 400 {
				t.Errorf("%s, %s: status %d; want 400", path, name, status)
			}
		}
	}
	if code, _ := get(t, s.url+"/readyz"); code != 200 {
		t.Errorf("after broken bodies: /readyz = %d; want 200", code)
	}
}

// rawStatus writes a raw HTTP/1.1 request and returns the response status.
// With closeWrite the client half-closes the connection after writing, so
// the server sees the body end early.
func rawStatus(t *testing.T, addr, request string, closeWrite bool) int {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	if closeWrite {
		_ = conn.(*net.TCPConn).CloseWrite()
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestShortAdminTokenRefused(t *testing.T) {
	t.Parallel()
	_, err := app.Open(t.Context(), app.Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), AdminToken: "x"})
	if err == nil || !strings.Contains(err.Error(), "at least 16") {
		t.Fatalf("Open with a 1-character admin token: %v; want a refusal", err)
	}
}

// TestSecretKeyMismatch seals accounts under one key and starts the
// service with another: with every stored secret under an unknown key it
// refuses to start, naming the key ids; with only some, it serves the
// others, says degraded without naming accounts, and the broken account can
// be repaired.
func TestSecretKeyMismatch(t *testing.T) {
	t.Parallel()
	k1, _ := seal.GenerateKey()
	k2, _ := seal.GenerateKey()
	dir := t.TempDir()
	put := func(key, sid, token string) {
		t.Helper()
		raw, _ := seal.ParseKey(key)
		ring, _ := seal.NewKeyring(raw)
		st, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(dir, app.SQLiteFile), Keyring: ring})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if _, err := st.Put(t.Context(), &store.Account{SID: sid, AuthToken: store.Secret(token)}, 0); err != nil {
			t.Fatal(err)
		}
	}
	const sid2 = "ACfedcba9876543210fedcba9876543210"
	put(k1, testSID, testToken)

	raw, _ := seal.ParseKey(k2)
	_, err := app.Open(t.Context(), app.Config{Addr: "127.0.0.1:0", DataDir: dir, AdminToken: adminToken, SecretKey: k2})
	if err == nil || !strings.Contains(err.Error(), "does not match") || !strings.Contains(err.Error(), seal.KeyID(raw)) {
		t.Fatalf("Open with the wrong key: %v; want a refusal naming the key ids", err)
	}

	put(k2, sid2, "fedcba9876543210fedcba9876543210")
	s := start(t, func(c *app.Config) { c.DataDir, c.SecretKey = dir, k2 })
	code, text := get(t, s.url+"/readyz")
	if code != 200 || !strings.HasPrefix(text, "degraded: 1 of 2 accounts") || strings.Contains(text, testSID) {
		t.Errorf("GET /readyz = %d %q; want degraded, counting without naming", code, text)
	}
	c, err := client.New(s.url, client.WithAdminToken(adminToken))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	verify := func(sid, token string) (*twilioguardv1.VerifyWebhookResponse, error) {
		body := "AccountSid=" + sid
		params, _ := signature.ParseForm([]byte(body))
		return c.VerifyWebhook(t.Context(), &twilioguardv1.VerifyWebhookRequest{Url: "https://example.com/sms", Body: []byte(body),
			ContentType: "application/x-www-form-urlencoded", Signature: signature.Sign(token, "https://example.com/sms", params)})
	}
	if resp, err := verify(sid2, "fedcba9876543210fedcba9876543210"); err != nil || !resp.GetValid() {
		t.Errorf("the readable account = %v, %v; want valid", resp, err)
	}
	if _, err := verify(testSID, testToken); connect.CodeOf(err) != connect.CodeUnavailable {
		t.Errorf("the unreadable account: %v; want Unavailable", err)
	}
	if _, err := c.Accounts.PutAccount(t.Context(), &twilioguardv1.PutAccountRequest{Account: &twilioguardv1.Account{Sid: testSID, AuthToken: testToken}}); err != nil {
		t.Fatalf("repair: %v", err)
	}
	if resp, err := verify(testSID, testToken); err != nil || !resp.GetValid() {
		t.Errorf("the repaired account = %v, %v; want valid", resp, err)
	}
	if code, text := get(t, s.url+"/readyz"); code != 200 || text != "ready: 2 accounts\n" {
		t.Errorf("GET /readyz after the repair = %d %q", code, text)
	}
	if !strings.Contains(s.logs.String(), "cannot be read with this secret key") {
		t.Errorf("no start-up warning about the unreadable secrets")
	}
}
