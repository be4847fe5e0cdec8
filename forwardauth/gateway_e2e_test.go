package forwardauth_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/twilioguard/twilioguard/internal/gatewaytest"
	"github.com/twilioguard/twilioguard/internal/testserver"
	"github.com/twilioguard/twilioguard/signature"
)

// The end-to-end tests ask the real twilioguard service's /forward-auth
// through real gateways (Envoy's HTTP ext_authz, Caddy's forward_auth,
// nginx's auth_request) and through requests shaped exactly as Traefik's
// forwardAuth sends them, with the configurations shipped in deploy/.

func startService(t *testing.T) (*testserver.Server, *gatewaytest.App) {
	t.Helper()
	// Duplicate detection is off: these tests send one signed webhook several
	// times to check what each gateway does with it.
	tg := testserver.Start(t, testserver.Options{Args: []string{"--replay-window", "0"}})
	tg.PutAccount(t, testSID, testToken)
	return tg, gatewaytest.StartApp(t, false)
}

// post sends rawBody as a form POST to u, with the signature Twilio sends
// for body to signedURL (none when empty).
func post(t *testing.T, c *http.Client, u, signedURL, rawBody string, header http.Header) gatewaytest.Answer {
	t.Helper()
	h := http.Header{"Content-Type": {formType}}
	if signedURL != "" {
		h.Set("X-Twilio-Signature", sign(t, signedURL))
	}
	for k, vs := range header {
		h[k] = vs
	}
	return gatewaytest.Do(t, c, http.MethodPost, u, rawBody, h)
}

// forged are client-sent copies of the headers twilioguard's answer sets.
var forged = http.Header{
	"X-Twilioguard-Verified":  {"true"},
	"X-TWILIOGUARD-VERIFIED":  {"true"},
	"X-Twilio-Account-Sid":    {"ACffffffffffffffffffffffffffffffff"},
	"X-Twilioguard-Duplicate": {"false"},
	"X-Twilioguard-Reason":    {"none"},
}

// onlyOurs reports the headers of an application request that claim to
// come from twilioguard but are not exactly its verdict.
func onlyOurs(h http.Header) []string {
	var bad []string
	for name, vals := range h {
		n := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
		switch {
		case n == "x-twilioguard-verified" && (name != "X-Twilioguard-Verified" || !slices.Equal(vals, []string{"true"})),
			n == "x-twilio-account-sid" && (name != "X-Twilio-Account-Sid" || !slices.Equal(vals, []string{testSID})),
			n != "x-twilioguard-verified" && strings.HasPrefix(n, "x-twilioguard-"):
			bad = append(bad, fmt.Sprintf("%s: %q", name, vals))
		}
	}
	return bad
}

// metric returns the line of twilioguard_forward_auth_requests_total with
// the given labels from the service's /metrics, or "".
func metric(t *testing.T, tg *testserver.Server, labels string) string {
	t.Helper()
	_, body := gatewaytest.Get(tg.URL + "/metrics")
	return regexp.MustCompile(`(?m)^twilioguard_forward_auth_requests_total\{` + regexp.QuoteMeta(labels) + `\} \S+$`).FindString(body)
}

// TestEnvoyHTTPExtAuthz runs deploy/envoy-http/envoy.yaml (only its
// addresses and account changed): Envoy asks /forward-auth with the
// original method, path and body.
func TestEnvoyHTTPExtAuthz(t *testing.T) {
	t.Parallel()
	gatewaytest.Envoy(t)
	tg, app := startService(t)
	cfg := gatewaytest.Shipped(t, "envoy-http/envoy.yaml",
		[2]string{"port_value: 9901", "port_value: 0"},
		[2]string{"address: 0.0.0.0, port_value: 10000", "address: 127.0.0.1, port_value: 0"},
		[2]string{"port_value: 8080", "port_value: " + gatewaytest.Port(t, tg.URL)},
		[2]string{"port_value: 3000", "port_value: " + gatewaytest.Port(t, app.URL)},
		[2]string{`value: "AC00000000000000000000000000000000"`, `value: "` + testSID + `"`},
	)
	e := gatewaytest.StartEnvoy(t, cfg)
	c := &http.Client{}
	const public = "https://hooks.example.com" // the shipped x-twilioguard-public-base-url
	target := "/twilio/sms?x=%7e&y=it's"

	got := post(t, c, e.URL+target, public+target, body, nil)
	if got.Status != http.StatusCreated || got.Body != gatewaytest.TwiML {
		t.Errorf("signed: %d %q; want the application's 201", got.Status, got.Body)
	}
	ups := app.Take()
	if len(ups) != 1 || ups[0].Body != body || ups[0].Target != target || ups[0].Header.Get("X-Twilioguard-Verified") != "true" ||
		ups[0].Header.Get("X-Twilio-Account-Sid") != testSID {
		t.Errorf("application got %+v; want the original with the verified headers", ups)
	}

	got = post(t, c, e.URL+target, public+target, strings.Replace(body, "caf", "cof", 1), nil)
	if got.Status != http.StatusForbidden || got.Header.Get("X-Twilioguard-Reason") != "SIGNATURE_MISMATCH" {
		t.Errorf("tampered: %d %v; want 403 with X-Twilioguard-Reason: SIGNATURE_MISMATCH", got.Status, got.Header)
	}
	if got = post(t, c, e.URL+target, "", body, forged); got.Status != http.StatusForbidden {
		t.Errorf("unsigned with forged headers: %d; want 403", got.Status)
	}
	if ups := app.Take(); len(ups) != 0 {
		t.Errorf("refused requests reached the application: %+v", ups)
	}

	if got = post(t, c, e.URL+target, public+target, body, forged); got.Status != http.StatusCreated {
		t.Errorf("signed with forged headers: %d; want 201", got.Status)
	}
	if ups := app.Take(); len(ups) != 1 || len(onlyOurs(ups[0].Header)) > 0 {
		t.Errorf("application got forged headers: %v", onlyOurs(ups[0].Header))
	}
	if got = post(t, c, e.URL+target, public+target, body, http.Header{"X_twilioguard_verified": {"true"}}); got.Status != http.StatusBadRequest {
		t.Errorf("underscore spelling: %d; want 400 from Envoy", got.Status)
	}

	tg.Stop()
	if got = post(t, c, e.URL+target, public+target, body, nil); got.Status != http.StatusServiceUnavailable {
		t.Errorf("service stopped: %d; want 503 (status_on_error)", got.Status)
	}
	if ups := app.Take(); len(ups) != 0 {
		t.Errorf("the application was called while the service was down: %+v", ups)
	}
}

// traefikConfig reads the forwardAuth middleware of
// deploy/traefik/dynamic.yml and points it at tg, for the public URL
// public and the test account.
func traefikConfig(t *testing.T, tg *testserver.Server, public string) *traefikForwardAuth {
	t.Helper()
	var cfg struct {
		HTTP struct {
			Middlewares map[string]struct {
				ForwardAuth *traefikForwardAuth `yaml:"forwardAuth"`
			} `yaml:"middlewares"`
		} `yaml:"http"`
	}
	if err := yaml.Unmarshal([]byte(gatewaytest.Shipped(t, "traefik/dynamic.yml")), &cfg); err != nil {
		t.Fatal(err)
	}
	fa := cfg.HTTP.Middlewares["twilioguard"].ForwardAuth
	if fa == nil {
		t.Fatal("deploy/traefik/dynamic.yml: no twilioguard forwardAuth middleware")
	}
	u, err := url.Parse(fa.Address)
	if err != nil || u.Path != "/forward-auth" {
		t.Fatalf("forwardAuth address %q: want …/forward-auth?…", fa.Address)
	}
	q := u.Query()
	for _, k := range []string{"public_base_url", "accounts"} {
		if !q.Has(k) {
			t.Fatalf("forwardAuth address %q: no %s", fa.Address, k)
		}
	}
	q.Set("public_base_url", public)
	q.Set("accounts", testSID)
	u.Host, u.RawQuery = strings.TrimPrefix(tg.URL, "http://"), q.Encode()
	fa.Address = u.String()
	return fa
}

// TestTraefikForwardAuth sends the requests Traefik's forwardAuth sends
// with deploy/traefik/dynamic.yml (see traefikForwardAuth) to the service.
func TestTraefikForwardAuth(t *testing.T) {
	t.Parallel()
	tg, app := startService(t)
	var fa *traefikForwardAuth
	traefik := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fa.ServeHTTP(w, r) }))
	traefik.StartTLS() // Traefik's websecure entry point
	t.Cleanup(traefik.Close)
	fa = traefikConfig(t, tg, traefik.URL)
	if !fa.ForwardBody || fa.TrustForwardHeader {
		t.Fatalf("deploy/traefik/dynamic.yml: forwardBody %v, trustForwardHeader %v; want true, false", fa.ForwardBody, fa.TrustForwardHeader)
	}
	if err := fa.start(app); err != nil {
		t.Fatal(err)
	}
	c := traefik.Client()
	target := "/twilio/sms?x=%7e&y=it's"
	public := traefik.URL

	t.Run("signed: the application gets the body and the verified headers", func(t *testing.T) {
		got := post(t, c, public+target, public+target, body, nil)
		if got.Status != http.StatusCreated || got.Body != gatewaytest.TwiML {
			t.Errorf("got %d %q; want the application's answer", got.Status, got.Body)
		}
		ups := app.Take()
		if len(ups) != 1 || ups[0].Body != body || ups[0].Header.Get("X-Twilioguard-Verified") != "true" || ups[0].Header.Get("X-Twilio-Account-Sid") != testSID {
			t.Errorf("application got %+v; want the body and the verified headers", ups)
		}
	})

	t.Run("tampered, or a client choosing the route's settings: 403", func(t *testing.T) {
		got := post(t, c, public+target, public+target, strings.Replace(body, "caf", "cof", 1), nil)
		if got.Status != http.StatusForbidden || got.Header.Get("X-Twilioguard-Reason") != "SIGNATURE_MISMATCH" {
			t.Errorf("tampered: %d %v; want 403 with the reason", got.Status, got.Header)
		}
		got = post(t, c, public+target, public+"/other", body, http.Header{"X-Twilioguard-Mode": {"shadow"}, "X-Twilioguard-Accounts": {"shop"}})
		if got.Status != http.StatusForbidden {
			t.Errorf("client-sent settings: %d; want 403 (authRequestHeaders keeps them from twilioguard)", got.Status)
		}
		if ups := app.Take(); len(ups) != 0 {
			t.Errorf("refused requests reached the application: %+v", ups)
		}
	})

	t.Run("forged headers in any spelling never reach the application", func(t *testing.T) {
		h := forged.Clone()
		h["X_twilioguard_verified"] = []string{"true"}
		h["X_Twilio_Account_Sid"] = []string{"ACffffffffffffffffffffffffffffffff"}
		if got := post(t, c, public+target, "", body, h); got.Status != http.StatusForbidden {
			t.Errorf("unsigned: %d; want 403", got.Status)
		}
		if got := post(t, c, public+target, public+target, body, h); got.Status != http.StatusCreated {
			t.Errorf("signed: %d; want 201", got.Status)
		}
		ups := app.Take()
		if len(ups) != 1 {
			t.Fatalf("application got %d requests; want 1", len(ups))
		}
		if bad := onlyOurs(ups[0].Header); len(bad) > 0 {
			t.Errorf("application got %v", bad)
		}
	})

	t.Run("a GET status callback", func(t *testing.T) {
		u := public + "/twilio/status?CallSid=CA1&CallStatus=completed"
		got := gatewaytest.Do(t, c, http.MethodGet, u, "", http.Header{"X-Twilio-Signature": {signature.Sign(testToken, u, nil)}})
		if ups := app.Take(); got.Status != http.StatusCreated || len(ups) != 1 || ups[0].Header.Get("X-Twilioguard-Verified") != "true" {
			t.Errorf("got %d, application %+v; want it verified", got.Status, ups)
		}
	})

	t.Run("without forwardBody: 403 BODY_NOT_FORWARDED", func(t *testing.T) {
		noBody := *fa
		noBody.ForwardBody = false
		srv := httptest.NewTLSServer(&noBody)
		t.Cleanup(srv.Close)
		got := post(t, srv.Client(), srv.URL+target, srv.URL+target, body, nil)
		if got.Status != http.StatusForbidden || got.Header.Get("X-Twilioguard-Reason") != "BODY_NOT_FORWARDED" {
			t.Errorf("got %d %v; want 403 BODY_NOT_FORWARDED", got.Status, got.Header)
		}
		if ups := app.Take(); len(ups) != 0 {
			t.Errorf("application got %+v", ups)
		}
	})

	t.Run("service stopped: fail closed", func(t *testing.T) {
		tg.Stop()
		if got := post(t, c, public+target, public+target, body, nil); got.Status < 500 {
			t.Errorf("got %d; want a 5xx", got.Status)
		}
		if ups := app.Take(); len(ups) != 0 {
			t.Errorf("the application was called while the service was down: %+v", ups)
		}
	})
}

// TestBodyNotForwardedByCaddyAndNginx asks /forward-auth through Caddy's
// forward_auth and nginx's auth_request, which never send the body: a form
// POST gets 403 BODY_NOT_FORWARDED (not a signature mismatch), a GET
// webhook passes.
func TestBodyNotForwardedByCaddyAndNginx(t *testing.T) {
	t.Parallel()
	gatewaytest.Caddy(t)
	gatewaytest.Nginx(t)
	tg, app := startService(t)
	tgHost, appHost := strings.TrimPrefix(tg.URL, "http://"), strings.TrimPrefix(app.URL, "http://")

	caddy := testserver.FreeAddr(t)
	gatewaytest.StartCaddy(t, fmt.Sprintf(`{
	admin off
	auto_https off
}
http://%s {
	forward_auth %s {
		uri /forward-auth
		copy_headers X-Twilioguard-Verified X-Twilio-Account-Sid
	}
	reverse_proxy %s
}
`, caddy, tgHost, appHost), caddy)

	nginx := testserver.FreeAddr(t)
	gatewaytest.StartNginx(t, fmt.Sprintf(`
  server {
    listen %s;
    location / {
      auth_request /_twilioguard;
      auth_request_set $tg_verified $upstream_http_x_twilioguard_verified;
      proxy_set_header X-Twilioguard-Verified $tg_verified;
      proxy_pass http://%s;
    }
    location = /_twilioguard {
      internal;
      proxy_pass http://%s/forward-auth;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Forwarded-Method $request_method;
      proxy_set_header X-Forwarded-Uri $request_uri;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $http_host;
    }
  }
`, nginx, appHost, tgHost), nginx)

	c := &http.Client{}
	for name, base := range map[string]string{"caddy": "http://" + caddy, "nginx": "http://" + nginx} {
		got := post(t, c, base+"/sms", base+"/sms", body, nil)
		if got.Status != http.StatusForbidden {
			t.Errorf("%s: form POST: %d; want 403", name, got.Status)
		}
		if name == "caddy" && got.Header.Get("X-Twilioguard-Reason") != "BODY_NOT_FORWARDED" {
			t.Errorf("caddy: X-Twilioguard-Reason = %q; want BODY_NOT_FORWARDED", got.Header.Get("X-Twilioguard-Reason"))
		}
		u := base + "/status?CallSid=CA1&AccountSid=" + testSID
		got = gatewaytest.Do(t, c, http.MethodGet, u, "", http.Header{"X-Twilio-Signature": {signature.Sign(testToken, u, nil)}})
		ups := app.Take()
		if got.Status != http.StatusCreated || len(ups) != 1 || ups[0].Header.Get("X-Twilioguard-Verified") != "true" {
			t.Errorf("%s: GET webhook: %d, application %+v; want it verified", name, got.Status, ups)
		}
	}
	for name, base := range map[string]string{"caddy": "http://" + caddy, "nginx": "http://" + nginx} {
		u := base + "/status?CallSid=CA1&AccountSid=" + testSID
		h := forged.Clone()
		h.Set("X-Twilio-Signature", signature.Sign(testToken, u, nil))
		if got := gatewaytest.Do(t, c, http.MethodGet, u, "", h); got.Status < 400 {
			t.Errorf("%s: signed GET with forged headers: %d; want a refusal", name, got.Status)
		}
		if ups := app.Take(); len(ups) != 0 {
			t.Errorf("%s: a request with forged headers reached the application: %+v", name, ups)
		}
	}
	if line := metric(t, tg, `reason="BODY_NOT_FORWARDED",route="",status="403"`); !strings.HasSuffix(line, " 2") {
		t.Errorf("metric = %q; want 2 BODY_NOT_FORWARDED answers", line)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		// The log arrives through a pipe, a little after the answer.
		n := strings.Count(tg.Logs(), "did not forward the body of a form POST")
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the service logged %d BODY_NOT_FORWARDED lines; want 2:\n%s", n, tg.Logs())
		}
	}

	tg.Stop()
	for name, base := range map[string]string{"caddy": "http://" + caddy, "nginx": "http://" + nginx} {
		u := base + "/status?CallSid=CA1&AccountSid=" + testSID
		if got := gatewaytest.Do(t, c, http.MethodGet, u, "", http.Header{"X-Twilio-Signature": {signature.Sign(testToken, u, nil)}}); got.Status < 500 {
			t.Errorf("%s: service stopped: %d; want a 5xx", name, got.Status)
		}
	}
	if ups := app.Take(); len(ups) != 0 {
		t.Errorf("the application was called while the service was down: %+v", ups)
	}
}
