package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/twilioguard/twilioguard/client"
	"github.com/twilioguard/twilioguard/internal/gatewaytest"
	"github.com/twilioguard/twilioguard/internal/testserver"
	"github.com/twilioguard/twilioguard/signature"
)

const (
	testSID   = "AC0123456789abcdef0123456789abcdef"
	testToken = "f00dfacef00dfacef00dfacef00dface"
	// proxyAddr is the source address nginx connects to the apps from, so
	// the proxy is a different peer from the test's own direct requests
	// (127.0.0.1). Linux routes all of 127.0.0.0/8 to loopback.
	proxyAddr = "127.0.0.2"
)

// smsBody has the bytes a proxy or a form parser could change: escapes,
// '+', an apostrophe, a repeated key, an empty value and a '<' that the
// TwiML answer must escape.
const smsBody = "AccountSid=" + testSID + "&Body=caf%C3%A9+%2B+it%27s+%3Cb%3E&MediaUrl0=a&MediaUrl0=b&Empty=&From=%2B15005550006"

// TestBehindNginx runs the example app behind a real TLS-terminating nginx,
// against the real twilioguard service, with requests signed for the public
// https:// URL as Twilio signs them.
func TestBehindNginx(t *testing.T) {
	t.Parallel()
	_, certFile, keyFile := gatewaytest.Nginx(t)

	tg := testserver.Start(t, testserver.Options{})
	tg.PutAccount(t, testSID, testToken)
	c, err := client.New(tg.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)

	// Three copies of the app, each behind its own nginx listener: one that
	// trusts nginx, one that trusts nobody, one with the public base URL.
	addrs := []string{testserver.FreeAddr(t), testserver.FreeAddr(t), testserver.FreeAddr(t)}
	public := func(i int) string { return "https://" + addrs[i] }
	configs := []map[string]string{
		{"TWILIOGUARD_TRUSTED_PROXIES": proxyAddr + "/32"},
		{"TWILIOGUARD_TRUSTED_PROXIES": "10.0.0.0/8"},
		{"TWILIOGUARD_PUBLIC_BASE_URL": public(2)},
	}
	apps := make([]*testApp, len(configs))
	for i, env := range configs {
		apps[i] = startApp(t, c, env)
	}
	trusting, untrusting, pinned := apps[0], apps[1], apps[2]
	startNginx(t, certFile, keyFile, [][2]string{
		{addrs[0], trusting.addr},
		{addrs[1], untrusting.addr},
		{addrs[2], pinned.addr},
	})
	https := gatewaytest.TLSClient(t, certFile)

	t.Run("trusted proxy: signed public URL passes", func(t *testing.T) {
		target := public(0) + "/sms?x=%7e&y=it's"
		got := post(t, https, target, target, smsBody, nil)
		want := "<Message>Twilio's always there when you text! You said: café + it&#39;s &lt;b&gt;</Message>"
		if got.status != 200 || !strings.Contains(got.body, want) {
			t.Errorf("got %d %q; want 200 with %q", got.status, got.body, want)
		}
		voice := public(0) + "/voice"
		got = post(t, https, voice, voice, "AccountSid="+testSID+"&CallSid=CA1&Caller=%2B15005550006", nil)
		if got.status != 200 || !strings.Contains(got.body, "<Say>Twilio's always there when you call!</Say>") {
			t.Errorf("voice: got %d %q; want 200 with <Say>", got.status, got.body)
		}
	})

	t.Run("base URL: signed public URL passes", func(t *testing.T) {
		target := public(2) + "/sms"
		if got := post(t, https, target, target, smsBody, nil); got.status != 200 {
			t.Errorf("got %d %q; want 200", got.status, got.body)
		}
	})

	t.Run("untrusted proxy: refused with a near-miss hint", func(t *testing.T) {
		target := public(1) + "/sms"
		got := post(t, https, target, target, smsBody, nil)
		if got.status != 403 || got.body != "Forbidden\n" {
			t.Fatalf("got %d %q; want 403 with a short body", got.status, got.body)
		}
		line := untrusting.logs.last(t)
		t.Logf("refusal logged: %v", line)
		if line["reason"] != "SIGNATURE_MISMATCH" {
			t.Errorf("log reason = %v; want SIGNATURE_MISMATCH (line %v)", line["reason"], line)
		}
		if hint, _ := line["hint"].(string); !strings.Contains(hint, "https") {
			t.Errorf("log hint = %q; want the service's near-miss hint naming https", hint)
		}
		hint, _ := line["proxy_hint"].(string)
		for _, want := range []string{"X-Forwarded-Proto", "X-Forwarded-Host", "peer " + proxyAddr, "not a trusted proxy"} {
			if !strings.Contains(hint, want) {
				t.Errorf("log proxy_hint = %q; want it to mention %q", hint, want)
			}
		}
		if u := line["url"]; u != "http://"+addrs[1]+"/sms" {
			t.Errorf("log url = %v; want the URL rebuilt from the connection", u)
		}
		if strings.Contains(fmt.Sprint(line), testToken) {
			t.Errorf("log line contains the auth token")
		}
	})

	spoof := http.Header{
		"X-Forwarded-Proto": {"http"},
		"X-Forwarded-Host":  {"evil.example"},
		"X-Forwarded-Port":  {"8443"},
		"Forwarded":         {`for=10.1.1.1;proto=https;host="evil.example:8443"`},
		"X-Original-Host":   {"evil.example"},
	}
	t.Run("spoofed headers through the trusted proxy change nothing", func(t *testing.T) {
		target := public(0) + "/sms"
		for _, evil := range []string{"https://evil.example:8443/sms", "http://evil.example/sms", "http://evil.example:8443/sms"} {
			if got := post(t, https, target, evil, smsBody, spoof); got.status != 403 {
				t.Errorf("signed for %s: got %d; want 403", evil, got.status)
			}
		}
		if got := post(t, https, target, target, smsBody, spoof); got.status != 200 {
			t.Errorf("signed for the public URL: got %d %q; want 200", got.status, got.body)
		}
	})

	t.Run("spoofed headers sent directly to the app change nothing", func(t *testing.T) {
		direct := "http://" + trusting.addr + "/sms" // peer 127.0.0.1: not trusted
		for _, evil := range []string{"https://evil.example:8443/sms", "http://evil.example:8443/sms", public(0) + "/sms"} {
			if got := post(t, http.DefaultClient, direct, evil, smsBody, spoof); got.status != 403 {
				t.Errorf("signed for %s: got %d; want 403", evil, got.status)
			}
		}
		if got := post(t, http.DefaultClient, direct, direct, smsBody, spoof); got.status != 200 {
			t.Errorf("signed for the direct URL: got %d %q; want 200", got.status, got.body)
		}
	})

	t.Run("verifier down: 503", func(t *testing.T) {
		tg.Stop()
		target := public(0) + "/sms"
		got := post(t, https, target, target, smsBody, nil)
		if got.status != 503 || got.body != "Service Unavailable\n" {
			t.Errorf("got %d %q; want 503 with a short body", got.status, got.body)
		}
		if line := trusting.logs.last(t); line["level"] != "ERROR" || line["error"] == nil {
			t.Errorf("log = %v; want an ERROR line with the error", line)
		}
	})
}

// TestHandlerRejectsBadConfig checks that a bad setting stops the app at
// start-up instead of failing later.
func TestHandlerRejectsBadConfig(t *testing.T) {
	t.Parallel()
	c, err := client.New("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	for _, env := range []map[string]string{
		{"TWILIOGUARD_TRUSTED_PROXIES": "127.0.0.1,not-a-cidr"},
		{"TWILIOGUARD_PUBLIC_BASE_URL": "example.com"},
	} {
		_, err := newHandler(c, slog.New(slog.DiscardHandler), func(k string) string { return env[k] })
		if err == nil {
			t.Errorf("newHandler(%v): nil error", env)
		}
	}
	if _, err := newHandler(c, slog.New(slog.DiscardHandler), func(string) string { return "" }); err != nil {
		t.Errorf("newHandler with no settings: %v", err)
	}
}

type testApp struct {
	addr string
	logs *jsonLog
}

func startApp(t *testing.T, c *client.Client, env map[string]string) *testApp {
	t.Helper()
	logs := &jsonLog{}
	h, err := newHandler(c, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &testApp{addr: srv.Listener.Addr().String(), logs: logs}
}

// jsonLog collects JSON log lines.
type jsonLog struct{ testserver.Buffer }

// last returns the last line logged, decoded.
func (l *jsonLog) last(t *testing.T) map[string]any {
	t.Helper()
	var last map[string]any
	sc := bufio.NewScanner(strings.NewReader(l.String()))
	for sc.Scan() {
		last = nil
		if err := json.Unmarshal(sc.Bytes(), &last); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
	}
	if last == nil {
		t.Fatal("nothing logged")
	}
	return last
}

type response struct {
	status int
	body   string
}

// post sends rawBody to target, signed as Twilio signs a request to signedURL.
func post(t *testing.T, hc *http.Client, target, signedURL, rawBody string, header http.Header) response {
	t.Helper()
	params, err := url.ParseQuery(rawBody)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, target, strings.NewReader(rawBody))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", signature.Sign(testToken, signedURL, params))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, string(b)}
}

// nginxServer is a TLS-terminating reverse proxy as one would deploy it in
// front of the app: it sets X-Forwarded-Proto/Host/Port/For itself and
// removes the forwarded headers it does not set, so a client cannot choose
// them. It connects to the app from proxyAddr.
const nginxServer = `
  server {
    listen %s ssl;
    ssl_certificate %s;
    ssl_certificate_key %s;
    location / {
      proxy_pass http://%s;
      proxy_bind ` + proxyAddr + `;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $http_host;
      proxy_set_header X-Forwarded-Port $server_port;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header Forwarded "";
      proxy_set_header X-Original-Host "";
    }
  }
`

// startNginx runs nginx with one nginxServer per {listen address, app
// address} pair and waits until every listener accepts connections.
func startNginx(t *testing.T, cert, key string, servers [][2]string) {
	t.Helper()
	var conf strings.Builder
	listen := make([]string, 0, len(servers))
	for _, s := range servers {
		fmt.Fprintf(&conf, nginxServer, s[0], cert, key, s[1])
		listen = append(listen, s[0])
	}
	gatewaytest.StartNginx(t, conf.String(), listen...)
}
