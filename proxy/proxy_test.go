package proxy_test

import (
	"bufio"
	"errors"
	"github.com/twilioguard/twilioguard/internal/urlcases"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/twilioguard/twilioguard/internal/gatewaytest"
	"github.com/twilioguard/twilioguard/internal/testserver"
	"github.com/twilioguard/twilioguard/internal/verifiertest"
	"github.com/twilioguard/twilioguard/proxy"
	"github.com/twilioguard/twilioguard/signature"
)

const (
	testSID   = "AC0123456789abcdef0123456789abcdef"
	testToken = "12345678901234567890123456789012"
	public    = "https://hooks.example.com"
	formType  = "application/x-www-form-urlencoded"
	// body has the bytes a proxy could change: escapes, '+', an apostrophe,
	// a repeated key and an empty value.
	body = "AccountSid=" + testSID + "&Body=caf%C3%A9+%2B+it%27s&MediaUrl0=a&MediaUrl0=b&Empty="
)

func newVerifier() *verifiertest.Verifier { return verifiertest.New(testSID, testToken) }

func failing(err error) *verifiertest.Verifier {
	v := newVerifier()
	v.Fail(err)
	return v
}

func duplicating() *verifiertest.Verifier {
	v := newVerifier()
	v.Duplicate(true)
	return v
}

const twiml = gatewaytest.TwiML

func startUpstream(t *testing.T, h2c bool) *gatewaytest.App { return gatewaytest.StartApp(t, h2c) }

func newProxy(t *testing.T, v *verifiertest.Verifier, cfg proxy.Config) (*proxy.Proxy, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	p, err := proxy.New(v, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, reg
}

// post sends rawBody as a form POST to the proxy (served by srv) for
// target, with the signature Twilio sends for body to signedURL (none when
// signedURL is empty).
func post(t *testing.T, srv *httptest.Server, target, signedURL, rawBody string, header http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+target, strings.NewReader(rawBody))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", formType)
	if signedURL != "" {
		req.Header.Set("X-Twilio-Signature", signature.Sign(testToken, signedURL, mustQuery(t, body)))
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func readAll(t *testing.T, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestVerifiedRequestIsForwardedAndAnsweredUntouched(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, false)
	v := newVerifier()
	p, reg := newProxy(t, v, proxy.Config{Upstream: up.URL, PublicBaseURL: public})
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)

	target := "/sms?x=%7e&y=it's"
	resp := post(t, srv, target, public+target, body, http.Header{
		"X-Forwarded-Proto": {"https"}, "X-Forwarded-For": {"203.0.113.9"}, "I-Twilio-Idempotency-Token": {"idem-1"},
	})
	if got := readAll(t, resp.Body); resp.StatusCode != http.StatusCreated || got != twiml {
		t.Errorf("answer = %d %q; want the upstream's 201 and TwiML byte for byte", resp.StatusCode, got)
	}
	if resp.Header.Get("X-App") != "yes" || len(resp.Header.Values("Set-Cookie")) != 2 || resp.Header.Get("Content-Type") != "text/xml; charset=utf-8" {
		t.Errorf("answer headers = %v; want the upstream's", resp.Header)
	}
	ups := up.Take()
	if len(ups) != 1 {
		t.Fatalf("upstream got %d requests; want 1", len(ups))
	}
	got := ups[0]
	srvHost := strings.TrimPrefix(srv.URL, "http://")
	if got.Body != body || got.Target != target || got.Host != srvHost {
		t.Errorf("upstream got %s %s body %q; want the original target, Host %s and body", got.Host, got.Target, got.Body, srvHost)
	}
	for name, want := range map[string]string{
		"X-Twilioguard-Verified":     "true",
		"X-Twilio-Account-Sid":       testSID,
		"X-Twilio-Signature":         signature.Sign(testToken, public+target, mustQuery(t, body)),
		"X-Forwarded-Proto":          "https",
		"X-Forwarded-For":            "203.0.113.9, 127.0.0.1",
		"I-Twilio-Idempotency-Token": "idem-1",
		"X-Twilioguard-Duplicate":    "",
	} {
		if g := got.Header.Get(name); g != want {
			t.Errorf("upstream %s = %q; want %q", name, g, want)
		}
	}
	if urls := v.URLs(); len(urls) != 1 || urls[0] != public+target {
		t.Errorf("verified URLs = %q; want %q", urls, public+target)
	}
	if n := counter(t, reg, "twilioguard_proxy_requests_total", "forwarded", "valid", ""); n != 1 {
		t.Errorf("forwarded valid = %v; want 1", n)
	}
	if n := histogramCount(t, reg, "twilioguard_proxy_verify_duration_seconds"); n != 1 {
		t.Errorf("verify durations observed = %d; want 1", n)
	}
}

func mustQuery(t testing.TB, s string) url.Values {
	t.Helper()
	v, err := url.ParseQuery(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, false)
	tests := []struct {
		name       string
		verifier   *verifiertest.Verifier
		cfg        proxy.Config
		body       string
		signedFor  string
		wantStatus int
		wantResult string
		wantReason string
	}{
		{name: "tampered body", verifier: newVerifier(), body: strings.Replace(body, "caf", "cof", 1), signedFor: public + "/sms",
			wantStatus: 403, wantResult: "invalid", wantReason: "SIGNATURE_MISMATCH"},
		{name: "signed for another URL", verifier: newVerifier(), body: body, signedFor: public + "/voice",
			wantStatus: 403, wantResult: "invalid", wantReason: "SIGNATURE_MISMATCH"},
		{name: "unsigned", verifier: newVerifier(), body: body,
			wantStatus: 403, wantResult: "invalid", wantReason: "MISSING_SIGNATURE"},
		{name: "service unavailable", verifier: failing(connect.NewError(connect.CodeUnavailable, errors.New("down"))), body: body, signedFor: public + "/sms",
			wantStatus: 503, wantResult: "error"},
		{name: "service malformed", verifier: failing(connect.NewError(connect.CodeInvalidArgument, errors.New("bad"))), body: body, signedFor: public + "/sms",
			wantStatus: 400, wantResult: "malformed"},
		{name: "body over the limit", verifier: newVerifier(), cfg: proxy.Config{MaxBodyBytes: 10}, body: body, signedFor: public + "/sms",
			wantStatus: 413, wantResult: "too_large"},
		{name: "duplicate rejected", verifier: duplicating(), cfg: proxy.Config{RejectDuplicates: true}, body: body, signedFor: public + "/sms",
			wantStatus: 409, wantResult: "duplicate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := tt.cfg
			cfg.Upstream, cfg.PublicBaseURL = up.URL+"/"+strings.ReplaceAll(tt.name, " ", "-"), public
			p, reg := newProxy(t, tt.verifier, cfg)
			srv := httptest.NewServer(p)
			t.Cleanup(srv.Close)
			resp := post(t, srv, "/sms", tt.signedFor, tt.body, nil)
			want := http.StatusText(tt.wantStatus) + "\n"
			if got := readAll(t, resp.Body); resp.StatusCode != tt.wantStatus || got != want {
				t.Errorf("answer = %d %q; want %d %q", resp.StatusCode, got, tt.wantStatus, want)
			}
			for _, r := range up.Take() {
				if strings.HasPrefix(r.Target, "/"+strings.ReplaceAll(tt.name, " ", "-")) {
					t.Errorf("the upstream was called: %+v", r)
				}
			}
			if n := counter(t, reg, "twilioguard_proxy_requests_total", "refused", tt.wantResult, tt.wantReason); n != 1 {
				t.Errorf("refused %s %s = %v; want 1", tt.wantResult, tt.wantReason, n)
			}
		})
	}
}

func TestForgedHeadersNeverReachTheUpstream(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, false)
	for _, shadow := range []bool{false, true} {
		p, _ := newProxy(t, newVerifier(), proxy.Config{Upstream: up.URL, PublicBaseURL: public, Shadow: shadow})
		srv := httptest.NewServer(p)
		t.Cleanup(srv.Close)
		forged := http.Header{
			"X-Twilioguard-Verified":  {"true", "true"},
			"X_twilioguard_verified":  {"true"},
			"X-TWILIOGUARD-VERIFIED":  {"true"},
			"X-Twilio-Account-Sid":    {"ACffffffffffffffffffffffffffffffff"},
			"X_Twilio_Account_Sid":    {"ACffffffffffffffffffffffffffffffff"},
			"X-Twilioguard-Duplicate": {"false"},
			// A hop-by-hop trick: ask the proxy to drop the headers it sets.
			"Connection": {"X-Twilioguard-Verified, X-Twilio-Account-Sid"},
		}
		for _, signed := range []bool{true, false} {
			signedFor := ""
			if signed {
				signedFor = public + "/sms"
			}
			resp := post(t, srv, "/sms", signedFor, body, forged)
			_, _ = io.Copy(io.Discard, resp.Body)
			ups := up.Take()
			if !signed && !shadow {
				if resp.StatusCode != 403 || len(ups) != 0 {
					t.Errorf("unsigned, enforce: %d with %d upstream requests; want 403 and none", resp.StatusCode, len(ups))
				}
				continue
			}
			if len(ups) != 1 {
				t.Fatalf("shadow=%v signed=%v: upstream got %d requests; want 1", shadow, signed, len(ups))
			}
			wantVerified, wantSID := []string{"false"}, []string(nil)
			if signed {
				wantVerified, wantSID = []string{"true"}, []string{testSID}
			}
			for name, vals := range ups[0].Header {
				n := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
				switch {
				case n == "x-twilioguard-verified":
					if name != "X-Twilioguard-Verified" || !slices.Equal(vals, wantVerified) {
						t.Errorf("shadow=%v signed=%v: upstream %s = %q; want only X-Twilioguard-Verified %q", shadow, signed, name, vals, wantVerified)
					}
				case n == "x-twilio-account-sid":
					if name != "X-Twilio-Account-Sid" || !slices.Equal(vals, wantSID) {
						t.Errorf("shadow=%v signed=%v: upstream %s = %q; want %q", shadow, signed, name, vals, wantSID)
					}
				case strings.HasPrefix(n, "x-twilioguard-"):
					t.Errorf("shadow=%v signed=%v: upstream got forged %s: %q", shadow, signed, name, vals)
				}
			}
			if !signed && ups[0].Header.Get("X-Twilio-Account-Sid") != "" {
				t.Errorf("shadow, unsigned: upstream got an account SID")
			}
		}
	}
}

func TestShadowMode(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, false)
	tests := []struct {
		name         string
		verifier     *verifiertest.Verifier
		cfg          proxy.Config
		signedFor    string
		wantVerified string
		wantDup      string
		wantResult   string
		wantReason   string
	}{
		{name: "valid", verifier: newVerifier(), signedFor: public + "/sms", wantVerified: "true", wantResult: "valid"},
		{name: "invalid", verifier: newVerifier(), signedFor: public + "/other", wantVerified: "false", wantResult: "invalid", wantReason: "SIGNATURE_MISMATCH"},
		{name: "service down", verifier: failing(errors.New("connection refused")), signedFor: public + "/sms", wantVerified: "false", wantResult: "undecided"},
		{name: "too large", verifier: newVerifier(), cfg: proxy.Config{MaxBodyBytes: 5}, signedFor: public + "/sms", wantVerified: "false", wantResult: "undecided"},
		{name: "duplicate, allowed", verifier: duplicating(), signedFor: public + "/sms", wantVerified: "true", wantDup: "true", wantResult: "duplicate"},
		{name: "duplicate, rejected", verifier: duplicating(), cfg: proxy.Config{RejectDuplicates: true}, signedFor: public + "/sms",
			wantVerified: "false", wantDup: "true", wantResult: "duplicate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Upstream, cfg.PublicBaseURL, cfg.Shadow = up.URL, public, true
			p, reg := newProxy(t, tt.verifier, cfg)
			srv := httptest.NewServer(p)
			t.Cleanup(srv.Close)
			resp := post(t, srv, "/sms", tt.signedFor, body, nil)
			if got := readAll(t, resp.Body); resp.StatusCode != http.StatusCreated || got != twiml {
				t.Errorf("answer = %d %q; want the upstream's", resp.StatusCode, got)
			}
			ups := up.Take()
			if len(ups) != 1 {
				t.Fatalf("upstream got %d requests; want 1", len(ups))
			}
			h := ups[0].Header
			if h.Get("X-Twilioguard-Verified") != tt.wantVerified || h.Get("X-Twilioguard-Duplicate") != tt.wantDup || ups[0].Body != body {
				t.Errorf("upstream verified=%q duplicate=%q body=%q; want %q, %q and the whole body",
					h.Get("X-Twilioguard-Verified"), h.Get("X-Twilioguard-Duplicate"), ups[0].Body, tt.wantVerified, tt.wantDup)
			}
			if n := counter(t, reg, "twilioguard_proxy_requests_total", "forwarded", tt.wantResult, tt.wantReason); n != 1 {
				t.Errorf("forwarded %s %s = %v; want 1", tt.wantResult, tt.wantReason, n)
			}
		})
	}
}

func TestDuplicateAllowedCarriesTheFlag(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, false)
	p, _ := newProxy(t, duplicating(), proxy.Config{Upstream: up.URL, PublicBaseURL: public})
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	resp := post(t, srv, "/sms", public+"/sms", body, nil)
	_, _ = io.Copy(io.Discard, resp.Body)
	ups := up.Take()
	if resp.StatusCode != 201 || len(ups) != 1 || ups[0].Header.Get("X-Twilioguard-Duplicate") != "true" || ups[0].Header.Get("X-Twilioguard-Verified") != "true" {
		t.Errorf("got %d, upstream %+v; want a verified request marked duplicate", resp.StatusCode, ups)
	}
}

// TestPublicURLCases runs the shared URL case file through the proxy: the
// URL sent to the service is the one every adapter rebuilds.
func TestPublicURLCases(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, false)
	for _, tt := range urlcases.Load(t) {
		t.Run(tt.Name, func(t *testing.T) {
			t.Parallel()
			cfg := proxy.Config{Upstream: up.URL, PublicBaseURL: tt.PublicBaseURL, ProxyHeaders: tt.ProxyHeaders}
			if tt.PublicBaseURL == "" {
				cfg.TrustedProxies = tt.TrustedProxies
			}
			v := newVerifier()
			p, _ := newProxy(t, v, cfg)
			p.ServeHTTP(httptest.NewRecorder(), tt.Request(body))
			if urls := v.URLs(); len(urls) != 1 || urls[0] != tt.Want {
				t.Errorf("URL sent to the service = %q; want %q", urls, tt.Want)
			}
		})
	}
}

func TestH2CUpstream(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, true)
	p, _ := newProxy(t, newVerifier(), proxy.Config{Upstream: up.URL, UpstreamH2C: true, PublicBaseURL: public})
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	resp := post(t, srv, "/sms", public+"/sms", body, nil)
	if got := readAll(t, resp.Body); resp.StatusCode != 201 || got != twiml {
		t.Errorf("answer = %d %q; want the upstream's", resp.StatusCode, got)
	}
	if ups := up.Take(); len(ups) != 1 || ups[0].Proto != 2 || ups[0].Body != body {
		t.Errorf("upstream got %+v; want one HTTP/2 request with the body", ups)
	}
}

// TestStreamsTheAnswer checks that the upstream's answer reaches the client
// while the upstream is still writing it.
func TestStreamsTheAnswer(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		_, _ = io.WriteString(w, "second\n")
	}))
	t.Cleanup(up.Close)
	t.Cleanup(func() { close(release) })
	p, _ := newProxy(t, newVerifier(), proxy.Config{Upstream: up.URL, PublicBaseURL: public})
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	resp := post(t, srv, "/sms", public+"/sms", body, nil)
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(resp.Body).ReadString('\n')
		line <- l
	}()
	select {
	case l := <-line:
		if l != "first\n" {
			t.Errorf("first line = %q", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first part of the answer did not arrive while the upstream was still writing")
	}
}

func TestUpstreamDown(t *testing.T) {
	t.Parallel()
	var logs testserver.Buffer
	reg := prometheus.NewRegistry()
	p, err := proxy.New(newVerifier(), proxy.Config{Upstream: "http://" + testserver.FreeAddr(t), PublicBaseURL: public,
		Registerer: reg, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	resp := post(t, srv, "/sms", public+"/sms", body, nil)
	if got := readAll(t, resp.Body); resp.StatusCode != http.StatusBadGateway || got != "Bad Gateway\n" {
		t.Errorf("answer = %d %q; want 502", resp.StatusCode, got)
	}
	if !strings.Contains(logs.String(), "level=ERROR msg=\"upstream request failed\"") {
		t.Errorf("logs = %q; want an error line", logs.String())
	}
	if n := counter(t, reg, "twilioguard_proxy_upstream_errors_total"); n != 1 {
		t.Errorf("upstream errors = %v; want 1", n)
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		cfg  proxy.Config
		want string
	}{
		{proxy.Config{}, "no upstream"},
		{proxy.Config{Upstream: "ftp://x"}, "want http://host:port"},
		{proxy.Config{Upstream: "http://"}, "no host"},
		{proxy.Config{Upstream: "http://u:secret@x"}, "user info"},
		{proxy.Config{Upstream: "http://x?a=1"}, "query"},
		{proxy.Config{Upstream: "https://x", UpstreamH2C: true}, "h2c"},
		{proxy.Config{Upstream: "http://x", PublicBaseURL: "example.com"}, "public base URL"},
		{proxy.Config{Upstream: "http://x", TrustedProxies: []string{"nope"}}, "trusted proxy"},
		{proxy.Config{Upstream: "http://x", MaxBodyBytes: -1}, "must be positive"},
	} {
		_, err := proxy.New(newVerifier(), tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v; want an error containing %q", tt.cfg, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("error %q repeats a password", err)
		}
	}
	if _, err := proxy.New(nil, proxy.Config{Upstream: "http://x"}); err == nil {
		t.Error("New(nil) succeeded")
	}
}

// counter returns the value of the counter name, or of
// twilioguard_proxy_requests_total with labels action, result and reason;
// 0 when there is none.
func counter(t *testing.T, g prometheus.Gatherer, name string, actionResultReason ...string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for i, k := range []string{"action", "result", "reason"}[:len(actionResultReason)] {
		want[k] = actionResultReason[i]
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want[lp.GetName()] != lp.GetValue() {
					continue metric
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func histogramCount(t *testing.T, g prometheus.Gatherer, name string) uint64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}
