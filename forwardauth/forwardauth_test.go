package forwardauth_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/twilioguard/twilioguard/forwardauth"
	"github.com/twilioguard/twilioguard/internal/testserver"
	"github.com/twilioguard/twilioguard/internal/verifiertest"
	"github.com/twilioguard/twilioguard/signature"
)

const (
	testSID   = "AC0123456789abcdef0123456789abcdef"
	testToken = "12345678901234567890123456789012"
	public    = "https://hooks.example.com"
	formType  = "application/x-www-form-urlencoded"
	body      = "AccountSid=" + testSID + "&Body=caf%C3%A9+%2B+it%27s&MediaUrl0=a&MediaUrl0=b&Empty="
)

func sign(t testing.TB, u string) string {
	t.Helper()
	v, err := url.ParseQuery(body)
	if err != nil {
		t.Fatal(err)
	}
	return signature.Sign(testToken, u, v)
}

// authRequest is one forward-auth request as a gateway sends it.
type authRequest struct {
	method  string // of the auth request
	target  string // path and query of the auth URL
	host    string // Host header; the server's when empty
	header  http.Header
	body    string
	chunked bool // send the body with Transfer-Encoding: chunked (Traefik)
}

// rig is the handler behind a real HTTP server.
type rig struct {
	v    *verifiertest.Verifier
	reg  *prometheus.Registry
	logs *testserver.Buffer
	srv  *httptest.Server
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{v: verifiertest.New(testSID, testToken), reg: prometheus.NewRegistry(), logs: &testserver.Buffer{}}
	h, err := forwardauth.New(r.v, forwardauth.WithRegisterer(r.reg), forwardauth.WithMaxBodyBytes(1024),
		forwardauth.WithLogger(slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux() // mounted as the service mounts it
	mux.Handle(forwardauth.Path, h)
	mux.Handle(forwardauth.Path+"/", h)
	r.srv = httptest.NewServer(mux)
	t.Cleanup(r.srv.Close)
	return r
}

// do sends ar and returns the answer's status and headers.
func (r *rig) do(t *testing.T, ar authRequest) (int, http.Header) {
	t.Helper()
	var b io.Reader = http.NoBody
	if ar.body != "" {
		b = strings.NewReader(ar.body)
		if ar.chunked {
			b = io.MultiReader(b) // unknown length: chunked
		}
	}
	req, err := http.NewRequestWithContext(t.Context(), ar.method, r.srv.URL+ar.target, b)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range ar.header {
		req.Header[k] = vs
	}
	if ar.host != "" {
		req.Host = ar.host
	}
	resp, err := r.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header
}

// traefik returns the auth request Traefik's forwardAuth sends for a POST
// of body to https://hooks.example.com+target with forwardBody (GET,
// X-Forwarded-*, the client's headers, the body chunked).
func traefik(t testing.TB, target, signedURL string, query string) authRequest {
	h := http.Header{
		"X-Forwarded-Method": {"POST"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"hooks.example.com"},
		"X-Forwarded-Uri": {target}, "X-Forwarded-For": {"203.0.113.9"}, "Content-Type": {formType},
	}
	if signedURL != "" {
		h.Set("X-Twilio-Signature", sign(t, signedURL))
	}
	return authRequest{method: http.MethodGet, target: forwardauth.Path + query, header: h, body: body, chunked: true}
}

// envoy returns the auth request Envoy's HTTP ext_authz sends for a POST of
// body to target (path_prefix /forward-auth, Host and the allowed headers,
// the body with its Content-Length).
func envoy(t testing.TB, target, signedURL string, settings http.Header) authRequest {
	h := http.Header{"Content-Type": {formType}, "X-Forwarded-Proto": {"https"}}
	if signedURL != "" {
		h.Set("X-Twilio-Signature", sign(t, signedURL))
	}
	for k, v := range settings {
		h[k] = v
	}
	return authRequest{method: http.MethodPost, target: forwardauth.Path + target, host: "hooks.example.com", header: h, body: body}
}

func TestGatewayShapes(t *testing.T) {
	t.Parallel()
	target := "/sms?x=%7e&y=it's"
	apisix := traefik(t, target, public+target, "")
	apisix.method, apisix.chunked = http.MethodPost, false // request_method: POST, the body with its length
	tests := []struct {
		name    string
		req     authRequest
		wantURL string
	}{
		{"Traefik forwardAuth with forwardBody", traefik(t, target, public+target, ""), public + target},
		{"APISIX forward-auth with request_method POST", apisix, public + target},
		{"Envoy HTTP ext_authz (path_prefix)", envoy(t, target, public+target, nil), public + target},
		{"Traefik with public_base_url in the address", traefik(t, target, "https://other.example:8443"+target, "?public_base_url=https://other.example:8443"),
			"https://other.example:8443" + target},
		{"Envoy with X-Twilioguard-Public-Base-Url", envoy(t, target, "https://other.example:8443"+target,
			http.Header{"X-Twilioguard-Public-Base-Url": {"https://other.example:8443"}}), "https://other.example:8443" + target},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			code, h := r.do(t, tt.req)
			if code != http.StatusOK || h.Get("X-Twilioguard-Verified") != "true" || h.Get("X-Twilio-Account-Sid") != testSID || h.Get("X-Twilioguard-Reason") != "" {
				t.Errorf("signed: %d %v; want 200 with the verified headers", code, h)
			}
			if urls := r.v.URLs(); len(urls) != 1 || urls[0] != tt.wantURL {
				t.Errorf("URL sent to the service = %q; want %q", urls, tt.wantURL)
			}
			if reqs := r.v.Requests(); len(reqs) == 1 && string(reqs[0].GetBody()) != body {
				t.Errorf("body sent to the service = %q; want the original", reqs[0].GetBody())
			}

			tampered := tt.req
			tampered.body = strings.Replace(body, "caf", "cof", 1)
			code, h = r.do(t, tampered)
			if code != http.StatusForbidden || h.Get("X-Twilioguard-Reason") != "SIGNATURE_MISMATCH" || h.Get("X-Twilioguard-Verified") != "" {
				t.Errorf("tampered: %d %v; want 403 with X-Twilioguard-Reason: SIGNATURE_MISMATCH", code, h)
			}
		})
	}
}

func TestBodyNotForwarded(t *testing.T) {
	t.Parallel()
	caddy := traefik(t, "/sms", public+"/sms", "") // Caddy's forward_auth: GET, no body, no Content-Length
	caddy.body = ""
	envoyNoBody := envoy(t, "/sms", public+"/sms", nil) // without with_request_body: POST, Content-Length: 0
	envoyNoBody.body = ""
	noType := caddy
	noType.header = caddy.header.Clone()
	noType.header.Del("Content-Type")
	shadow := caddy
	shadow.target += "?mode=shadow"
	jsonPost := caddy
	jsonPost.header = caddy.header.Clone()
	jsonPost.header.Set("Content-Type", "application/json")
	getHook := caddy
	getHook.header = http.Header{"X-Forwarded-Method": {"GET"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"hooks.example.com"},
		"X-Forwarded-Uri": {"/status?CallSid=CA1"}, "X-Twilio-Signature": {signature.Sign(testToken, public+"/status?CallSid=CA1", nil)}}

	tests := []struct {
		name         string
		req          authRequest
		wantCode     int
		wantVerified string
		wantReason   string
		wantAsked    bool
	}{
		{"Caddy forward_auth", caddy, 403, "", "BODY_NOT_FORWARDED", false},
		{"Envoy without with_request_body", envoyNoBody, 403, "", "BODY_NOT_FORWARDED", false},
		{"a POST without a content type", noType, 403, "", "BODY_NOT_FORWARDED", false},
		{"shadow mode: let through, marked", shadow, 200, "false", "BODY_NOT_FORWARDED", false},
		{"a JSON POST is the service's to judge (bodySHA256)", jsonPost, 403, "", "SIGNATURE_MISMATCH", true},
		{"a GET webhook has no body to forward", getHook, 200, "true", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			code, h := r.do(t, tt.req)
			if code != tt.wantCode || h.Get("X-Twilioguard-Verified") != tt.wantVerified || h.Get("X-Twilioguard-Reason") != tt.wantReason {
				t.Errorf("got %d verified=%q reason=%q; want %d %q %q", code, h.Get("X-Twilioguard-Verified"), h.Get("X-Twilioguard-Reason"),
					tt.wantCode, tt.wantVerified, tt.wantReason)
			}
			if asked := len(r.v.Requests()) > 0; asked != tt.wantAsked {
				t.Errorf("service asked: %v; want %v", asked, tt.wantAsked)
			}
			if tt.wantReason == "BODY_NOT_FORWARDED" && !strings.Contains(r.logs.String(), "did not forward the body") {
				t.Errorf("log lacks the explanation:\n%s", r.logs.String())
			}
		})
	}
}

func TestSettings(t *testing.T) {
	t.Parallel()
	other := "AC" + strings.Repeat("f", 32)
	withHeader := func(ar authRequest, kv ...string) authRequest {
		ar.header = ar.header.Clone()
		for i := 0; i < len(kv); i += 2 {
			ar.header.Set(kv[i], kv[i+1])
		}
		return ar
	}
	tests := []struct {
		name         string
		req          authRequest
		wantCode     int
		wantVerified string
		wantAsked    bool
		wantAccounts string
		wantRoute    string
	}{
		{name: "accounts and route from the query", req: traefik(t, "/sms", public+"/sms", "?accounts=shop,"+testSID+"&route=sms"),
			wantCode: 200, wantVerified: "true", wantAsked: true, wantAccounts: "shop " + testSID, wantRoute: "sms"},
		{name: "accounts from a header", req: withHeader(envoy(t, "/sms", public+"/sms", nil), "X-Twilioguard-Accounts", other),
			wantCode: 403, wantAsked: true, wantAccounts: other},
		{name: "the query wins over a header", req: withHeader(traefik(t, "/sms", public+"/sms", "?mode=enforce"), "X-Twilioguard-Mode", "shadow"),
			wantCode: 200, wantVerified: "true", wantAsked: true},
		{name: "the query wins over a header (invalid request stays refused)",
			req:      withHeader(traefik(t, "/sms", public+"/other", "?mode=enforce"), "X-Twilioguard-Mode", "shadow"),
			wantCode: 403, wantAsked: true},
		{name: "shadow from a header", req: withHeader(envoy(t, "/sms", public+"/other", nil), "X-Twilioguard-Mode", "shadow"),
			wantCode: 200, wantVerified: "false", wantAsked: true},
		{name: "in Envoy's mode the query is the original request's", req: envoy(t, "/sms?mode=shadow", public+"/sms", nil),
			wantCode: 403, wantAsked: true},
		{name: "bad mode", req: traefik(t, "/sms", public+"/sms", "?mode=off"), wantCode: 503},
		{name: "bad duplicates", req: withHeader(envoy(t, "/sms", public+"/sms", nil), "X-Twilioguard-Duplicates", "maybe"), wantCode: 503},
		{name: "bad public base URL", req: traefik(t, "/sms", public+"/sms", "?public_base_url=hooks.example.com"), wantCode: 503},
		{name: "empty accounts", req: traefik(t, "/sms", public+"/sms", "?accounts=,"), wantCode: 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			code, h := r.do(t, tt.req)
			if code != tt.wantCode || h.Get("X-Twilioguard-Verified") != tt.wantVerified {
				t.Errorf("got %d verified=%q; want %d %q", code, h.Get("X-Twilioguard-Verified"), tt.wantCode, tt.wantVerified)
			}
			reqs := r.v.Requests()
			if (len(reqs) > 0) != tt.wantAsked {
				t.Fatalf("service asked %d times; want asked=%v", len(reqs), tt.wantAsked)
			}
			if len(reqs) > 0 {
				if got := strings.Join(reqs[0].GetAllowedAccounts(), " "); got != tt.wantAccounts || reqs[0].GetRoute() != tt.wantRoute {
					t.Errorf("allowed accounts %q, route %q; want %q, %q", got, reqs[0].GetRoute(), tt.wantAccounts, tt.wantRoute)
				}
			}
			if code == 503 && !strings.Contains(r.logs.String(), "level=ERROR") {
				t.Errorf("a misconfigured route is not logged at error:\n%s", r.logs.String())
			}
		})
	}
}

func TestForgedHeadersAreRefused(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"X-Twilioguard-Verified", "X_twilioguard_verified", "X-TWILIO-ACCOUNT-SID", "X_Twilio_Account_Sid",
		"X-Twilioguard-Duplicate", "X-Twilioguard-Reason", "X_twilioguard_mode"} {
		r := newRig(t)
		req := envoy(t, "/sms", public+"/sms", nil)
		req.header[name] = []string{"true"}
		if code, h := r.do(t, req); code != http.StatusBadRequest || h.Get("X-Twilioguard-Verified") != "" {
			t.Errorf("%s: got %d %v; want 400", name, code, h)
		}
		if n := len(r.v.Requests()); n != 0 {
			t.Errorf("%s: the service was asked", name)
		}
	}
}

func TestAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		setup    func(*verifiertest.Verifier)
		query    string
		body     string
		wantCode int
		wantHdr  map[string]string
	}{
		{name: "service unavailable", setup: func(v *verifiertest.Verifier) { v.Fail(connect.NewError(connect.CodeUnavailable, errors.New("down"))) },
			wantCode: 503, wantHdr: map[string]string{"Retry-After": "1"}},
		{name: "service unreachable", setup: func(v *verifiertest.Verifier) { v.Fail(errors.New("connection refused")) }, wantCode: 503},
		{name: "malformed", setup: func(v *verifiertest.Verifier) {
			v.Fail(connect.NewError(connect.CodeInvalidArgument, errors.New("bad")))
		}, wantCode: 400},
		{name: "body over the limit", body: body + strings.Repeat("&x=y", 300), wantCode: 413},
		{name: "duplicate, allowed", setup: func(v *verifiertest.Verifier) { v.Duplicate(true) },
			wantCode: 200, wantHdr: map[string]string{"X-Twilioguard-Verified": "true", "X-Twilioguard-Duplicate": "true"}},
		{name: "duplicate, rejected", setup: func(v *verifiertest.Verifier) { v.Duplicate(true) }, query: "?duplicates=reject",
			wantCode: 409, wantHdr: map[string]string{"X-Twilioguard-Duplicate": "true", "X-Twilioguard-Verified": ""}},
		{name: "duplicate, rejected, shadow", setup: func(v *verifiertest.Verifier) { v.Duplicate(true) }, query: "?duplicates=reject&mode=shadow",
			wantCode: 200, wantHdr: map[string]string{"X-Twilioguard-Duplicate": "true", "X-Twilioguard-Verified": "false"}},
		{name: "service unavailable, shadow", setup: func(v *verifiertest.Verifier) { v.Fail(errors.New("down")) }, query: "?mode=shadow",
			wantCode: 200, wantHdr: map[string]string{"X-Twilioguard-Verified": "false"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			if tt.setup != nil {
				tt.setup(r.v)
			}
			req := traefik(t, "/sms", public+"/sms", tt.query)
			if tt.body != "" {
				req.body = tt.body
			}
			code, h := r.do(t, req)
			if code != tt.wantCode {
				t.Errorf("status %d; want %d", code, tt.wantCode)
			}
			for k, want := range tt.wantHdr {
				if got := h.Get(k); got != want {
					t.Errorf("%s = %q; want %q", k, got, want)
				}
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.do(t, traefik(t, "/sms", public+"/sms", "?route=sms"))
	r.do(t, traefik(t, "/sms", public+"/other", "?route=sms"))
	caddy := traefik(t, "/sms", public+"/sms", "?route="+strings.Repeat("x", 100))
	caddy.body = ""
	r.do(t, caddy)
	var out bytes.Buffer
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				out.WriteString(lp.GetName() + "=" + lp.GetValue() + " ")
			}
			fmt.Fprintf(&out, "%g\n", m.GetCounter().GetValue())
		}
	}
	for _, want := range []string{
		"reason= route=sms status=200 1\n",
		"reason=SIGNATURE_MISMATCH route=sms status=403 1\n",
		"reason=BODY_NOT_FORWARDED route=other status=403 1\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, out.String())
		}
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	v := verifiertest.New(testSID, testToken)
	if _, err := forwardauth.New(nil); err == nil {
		t.Error("New(nil) succeeded")
	}
	if _, err := forwardauth.New(v, nil); err == nil {
		t.Error("New with a nil option succeeded")
	}
	if _, err := forwardauth.New(v, forwardauth.WithMaxBodyBytes(0)); err == nil {
		t.Error("New with a zero body limit succeeded")
	}
	reg := prometheus.NewRegistry()
	if _, err := forwardauth.New(v, forwardauth.WithRegisterer(reg)); err != nil {
		t.Fatal(err)
	}
	if _, err := forwardauth.New(v, forwardauth.WithRegisterer(reg)); err == nil {
		t.Error("a second registration on the same registry succeeded")
	}
}
