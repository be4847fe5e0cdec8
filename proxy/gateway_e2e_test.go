package proxy_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twilioguard/twilioguard/internal/gatewaytest"
	"github.com/twilioguard/twilioguard/internal/testserver"
	"github.com/twilioguard/twilioguard/signature"
)

// The end-to-end tests run the real twilioguard service and the real
// `twilioguard proxy` behind a real gateway that terminates TLS, with the
// gateway configuration shipped in deploy/ (only its addresses and
// certificate changed), in front of a recording application.

// rig is a gateway in front of the proxy, in front of an application.
type rig struct {
	tg     *testserver.Server
	app    *gatewaytest.App
	proxy  *gatewaytest.Proxy
	public string       // the gateway's https:// base URL
	client *http.Client // trusts the test certificate
}

// startService starts twilioguard serve with the test account and the
// application. Duplicate detection is off: these tests send one signed
// webhook several times to check what each gateway does with it.
func startService(t *testing.T, args ...string) (*testserver.Server, *gatewaytest.App) {
	t.Helper()
	tg := testserver.Start(t, testserver.Options{Args: append([]string{"--replay-window", "0"}, args...)})
	tg.PutAccount(t, testSID, testToken)
	return tg, startUpstream(t, false)
}

// TestBehindNginx runs deploy/nginx/twilioguard-proxy.conf: nginx
// terminates TLS in front of the proxy, which trusts nginx's X-Forwarded-*
// headers (--trusted-proxies).
func TestBehindNginx(t *testing.T) {
	t.Parallel()
	_, cert, key := gatewaytest.Nginx(t)
	tg, app := startService(t)
	px := gatewaytest.StartProxy(t, "--server", tg.URL, "--upstream", app.URL, "--trusted-proxies", "127.0.0.1")
	gw := testserver.FreeAddr(t)
	conf := gatewaytest.Shipped(t, "nginx/twilioguard-proxy.conf",
		[2]string{"server 127.0.0.1:8090;", "server " + strings.TrimPrefix(px.URL, "http://") + ";"},
		[2]string{"listen 443 ssl;", "listen " + gw + " ssl;"},
		[2]string{"/etc/ssl/certs/hooks.example.com.pem", cert},
		[2]string{"/etc/ssl/private/hooks.example.com.key", key},
	)
	gatewaytest.StartNginx(t, conf, gw)
	checkGateway(t, &rig{tg: tg, app: app, proxy: px, public: "https://" + gw, client: gatewaytest.TLSClient(t, cert)}, "nginx")
}

// TestBehindCaddy runs deploy/caddy/Caddyfile: Caddy terminates TLS in
// front of the proxy, which checks the URL under its public base URL.
func TestBehindCaddy(t *testing.T) {
	t.Parallel()
	gatewaytest.Caddy(t)
	_, cert, key := gatewaytest.Nginx(t) // the test certificate
	tg, app := startService(t)
	gw := testserver.FreeAddr(t)
	public := "https://" + gw
	px := gatewaytest.StartProxy(t, "--server", tg.URL, "--upstream", app.URL, "--public-base-url", public)
	conf := gatewaytest.Shipped(t, "caddy/Caddyfile",
		[2]string{"hooks.example.com {", public + " {"},
		[2]string{"# tls /etc/ssl/certs/hooks.pem /etc/ssl/private/hooks.key", "tls " + cert + " " + key},
		[2]string{"reverse_proxy 127.0.0.1:8090 {", "reverse_proxy " + strings.TrimPrefix(px.URL, "http://") + " {"},
	)
	// No admin endpoint and no HTTP-to-HTTPS redirect listener (port 80)
	// in tests.
	gatewaytest.StartCaddy(t, "{\n\tadmin off\n\tauto_https off\n}\n"+conf, gw)
	checkGateway(t, &rig{tg: tg, app: app, proxy: px, public: public, client: gatewaytest.TLSClient(t, cert)}, "caddy")
}

// checkGateway sends signed, tampered and forged requests through the
// gateway, then stops the service.
func checkGateway(t *testing.T, r *rig, gateway string) {
	target := "/sms?x=%7e&y=it's"
	signedURL := r.public + target

	t.Run("signed: the application's answer, byte for byte", func(t *testing.T) {
		got := send(t, r.client, r.public+target, signedURL, body, nil)
		if got.Status != http.StatusCreated || got.Body != twiml || got.Header.Get("X-App") != "yes" {
			t.Errorf("got %d %q %v; want the application's 201 and TwiML", got.Status, got.Body, got.Header)
		}
		ups := r.app.Take()
		if len(ups) != 1 {
			t.Fatalf("application got %d requests; want 1", len(ups))
		}
		h := ups[0].Header
		if ups[0].Body != body || ups[0].Target != target || h.Get("X-Twilioguard-Verified") != "true" || h.Get("X-Twilio-Account-Sid") != testSID {
			t.Errorf("application got %s body %q verified=%q account=%q; want the original with the verified headers",
				ups[0].Target, ups[0].Body, h.Get("X-Twilioguard-Verified"), h.Get("X-Twilio-Account-Sid"))
		}
	})

	t.Run("tampered: 403, the application is not called", func(t *testing.T) {
		for name, req := range map[string]struct{ target, signed, body string }{
			"body":  {target, signedURL, strings.Replace(body, "caf", "cof", 1)},
			"query": {"/sms?x=%7e&y=its", signedURL, body},
			"path":  {"/voice?x=%7e&y=it's", signedURL, body},
			"host":  {target, "https://evil.example" + target, body},
		} {
			if got := send(t, r.client, r.public+req.target, req.signed, req.body, nil); got.Status != http.StatusForbidden || got.Body != "Forbidden\n" {
				t.Errorf("%s: got %d %q; want 403 Forbidden", name, got.Status, got.Body)
			}
		}
		if ups := r.app.Take(); len(ups) != 0 {
			t.Errorf("application got %d requests; want none", len(ups))
		}
	})

	t.Run("forged verified headers never reach the application", func(t *testing.T) {
		forged := http.Header{
			"X-Twilioguard-Verified":  {"true"},
			"X-TWILIOGUARD-VERIFIED":  {"true"},
			"X_Twilioguard_Verified":  {"true"},
			"X-Twilio-Account-Sid":    {"ACffffffffffffffffffffffffffffffff"},
			"X_twilio_account_sid":    {"ACffffffffffffffffffffffffffffffff"},
			"X-Twilioguard-Duplicate": {"false"},
			"X-Forwarded-Proto":       {"http"},
			"X-Forwarded-Host":        {"evil.example"},
			"Forwarded":               {"proto=http;host=evil.example"},
			"Connection":              {"X-Twilioguard-Verified"},
		}
		if got := send(t, r.client, r.public+target, "", body, forged); got.Status != http.StatusForbidden {
			t.Errorf("unsigned with forged headers: got %d; want 403", got.Status)
		}
		if ups := r.app.Take(); len(ups) != 0 {
			t.Fatalf("unsigned with forged headers reached the application: %+v", ups)
		}
		if got := send(t, r.client, r.public+target, signedURL, body, forged); got.Status != http.StatusCreated {
			t.Fatalf("signed with forged headers: got %d %q; want 201", got.Status, got.Body)
		}
		ups := r.app.Take()
		if len(ups) != 1 {
			t.Fatalf("application got %d requests; want 1", len(ups))
		}
		for name, vals := range ups[0].Header {
			n := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
			switch {
			case n == "x-twilioguard-verified" && (name != "X-Twilioguard-Verified" || !slices.Equal(vals, []string{"true"})),
				n == "x-twilio-account-sid" && (name != "X-Twilio-Account-Sid" || !slices.Equal(vals, []string{testSID})),
				n != "x-twilioguard-verified" && strings.HasPrefix(n, "x-twilioguard-"):
				t.Errorf("application got %s: %q", name, vals)
			}
		}
	})

	t.Run("the proxy's health and metrics are on their own port", func(t *testing.T) {
		if code, _ := gatewaytest.Get(r.proxy.OpsURL + "/healthz"); code != http.StatusOK {
			t.Errorf("/healthz = %d", code)
		}
		_, metrics := gatewaytest.Get(r.proxy.OpsURL + "/metrics")
		for _, want := range []string{
			`twilioguard_proxy_requests_total{action="forwarded",reason="",result="valid"} 2`,
			`twilioguard_proxy_requests_total{action="refused",reason="SIGNATURE_MISMATCH",result="invalid"} 4`,
			`twilioguard_proxy_requests_total{action="refused",reason="MISSING_SIGNATURE",result="invalid"} 1`,
		} {
			if !strings.Contains(metrics, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
		// The application's own /metrics and /healthz are the application's.
		if got := send(t, r.client, r.public+"/healthz", "", "", nil); got.Status != http.StatusForbidden {
			t.Errorf("GET /healthz through %s = %d; want 403 (an application path like any other)", gateway, got.Status)
		}
	})

	t.Run("service stopped: 503, fail closed", func(t *testing.T) {
		r.tg.Stop()
		if got := send(t, r.client, r.public+target, signedURL, body, nil); got.Status != http.StatusServiceUnavailable {
			t.Errorf("got %d %q; want 503", got.Status, got.Body)
		}
		if ups := r.app.Take(); len(ups) != 0 {
			t.Errorf("application got %d requests while the service was down", len(ups))
		}
		r.proxy.WaitOutput(t, regexp.QuoteMeta(`level=ERROR msg="twilio webhook refused: verifier unavailable"`))
		r.tg.Restart()
		if got := send(t, r.client, r.public+target, signedURL, body, nil); got.Status != http.StatusCreated {
			t.Errorf("after a restart: got %d; want 201", got.Status)
		}
		r.app.Take()
	})
}

// TestGracefulShutdown stops the proxy while the application is still
// answering a request: the request completes, /readyz says 503 meanwhile,
// and the process exits cleanly.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	tg, _ := startService(t)
	arrived, release := make(chan struct{}), make(chan struct{})
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
		_, _ = io.WriteString(w, twiml)
	}))
	t.Cleanup(app.Close)
	const public = "https://hooks.example.com"
	px := gatewaytest.StartProxy(t, "--server", tg.URL, "--upstream", app.URL, "--public-base-url", public)

	status := make(chan string, 1)
	sig := signature.Sign(testToken, public+"/sms", mustQuery(t, body))
	go func() {
		req, _ := http.NewRequest(http.MethodPost, px.URL+"/sms", strings.NewReader(body))
		req.Header.Set("Content-Type", formType)
		req.Header.Set("X-Twilio-Signature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			status <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		status <- fmt.Sprint(resp.StatusCode, " ", string(b))
	}()
	select {
	case <-arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("the request never reached the application")
	}
	px.Interrupt()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if code, _ := gatewaytest.Get(px.OpsURL + "/readyz"); code == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/readyz never said 503 while draining")
		}
	}
	if px.Exited(200 * time.Millisecond) {
		t.Fatal("the proxy exited with a request in flight")
	}
	close(release)
	if got := <-status; got != "200 "+twiml {
		t.Errorf("in-flight request: %q; want 200 with the application's answer", got)
	}
	if !px.Exited(10 * time.Second) {
		t.Fatal("the proxy did not exit after draining")
	}
	px.WaitOutput(t, "msg=stopped")
}

// send POSTs rawBody (a form) to u, or GETs u when rawBody is empty; with
// signedURL, the request carries the signature Twilio sends for body to
// that URL.
func send(t *testing.T, c *http.Client, u, signedURL, rawBody string, header http.Header) gatewaytest.Answer {
	t.Helper()
	h := http.Header{}
	method := http.MethodGet
	if rawBody != "" {
		method = http.MethodPost
		h.Set("Content-Type", formType)
	}
	if signedURL != "" {
		h.Set("X-Twilio-Signature", signature.Sign(testToken, signedURL, mustQuery(t, body)))
	}
	for k, vs := range header {
		h[k] = vs
	}
	return gatewaytest.Do(t, c, method, u, rawBody, h)
}

// BenchmarkProxyLatency measures what the proxy adds to a webhook: each
// iteration sends the same signed form POST once straight to the
// application and once through `twilioguard proxy` (default flags and log
// level, the service on loopback with --log-level info), on the same
// client, one request at a time, and reports the p50 and p99 of both and
// their difference. Keep it bounded, e.g. -benchtime 3000x.
func BenchmarkProxyLatency(b *testing.B) {
	tg := testserver.Start(b, testserver.Options{Args: []string{"--log-level", "info"}})
	tg.PutAccount(b, testSID, testToken)
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/xml")
		_, _ = io.WriteString(w, twiml)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	appAddr := ln.Addr().String()
	go func() { _ = app.Serve(ln) }()
	b.Cleanup(func() { app.Close() })
	const public = "https://hooks.example.com"
	px := gatewaytest.StartProxy(b, "--server", tg.URL, "--upstream", "http://"+appAddr, "--public-base-url", public)

	sig := signature.Sign(testToken, public+"/sms", mustQuery(b, body))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}, Timeout: 30 * time.Second}
	do := func(base string) time.Duration {
		req, _ := http.NewRequest(http.MethodPost, base+"/sms", strings.NewReader(body))
		req.Header.Set("Content-Type", formType)
		req.Header.Set("X-Twilio-Signature", sig)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("%s: %d", base, resp.StatusCode)
		}
		return d
	}
	for range 100 { // warm up connections and caches
		do("http://" + appAddr)
		do(px.URL)
	}
	sum0, n0 := verifyDuration(b, px)
	var direct, proxied []time.Duration
	for b.Loop() {
		direct = append(direct, do("http://"+appAddr))
		proxied = append(proxied, do(px.URL))
	}
	p := gatewaytest.Percentile
	b.ReportMetric(p(direct, .5), "direct-p50-us")
	b.ReportMetric(p(direct, .99), "direct-p99-us")
	b.ReportMetric(p(proxied, .5), "proxy-p50-us")
	b.ReportMetric(p(proxied, .99), "proxy-p99-us")
	b.ReportMetric(p(proxied, .5)-p(direct, .5), "added-p50-us")
	b.ReportMetric(p(proxied, .99)-p(direct, .99), "added-p99-us")
	if sum, n := verifyDuration(b, px); n > n0 {
		b.ReportMetric((sum-sum0)/(n-n0)*1e6, "verify-call-mean-us")
	}
	b.ReportMetric(0, "ns/op")
}

// verifyDuration returns the sum and count of the proxy's
// twilioguard_proxy_verify_duration_seconds: the time it waited for the
// service.
func verifyDuration(t testing.TB, px *gatewaytest.Proxy) (sum, count float64) {
	t.Helper()
	return gatewaytest.HistogramTotals(t, px.OpsURL+"/metrics", "twilioguard_proxy_verify_duration_seconds")
}
