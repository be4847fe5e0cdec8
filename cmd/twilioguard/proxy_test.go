package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twilioguard/twilioguard/internal/testserver"
)

func TestProxyFlagErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"proxy"}, nil, "no upstream"},
		{[]string{"proxy", "--upstream", "ftp://app"}, nil, "want http://host:port"},
		{[]string{"proxy", "--upstream", "http://app", "--mode", "off"}, nil, `--mode "off"`},
		{[]string{"proxy", "--upstream", "http://app"}, map[string]string{"TWILIOGUARD_MODE": "off"}, `--mode "off"`},
		{[]string{"proxy", "--upstream", "http://app", "--duplicates", "drop"}, nil, `--duplicates "drop"`},
		{[]string{"proxy", "--upstream", "http://app", "--trusted-proxies", "10.0.0.0/8,nope"}, nil, "trusted proxy"},
		{[]string{"proxy", "--upstream", "http://app", "--proxy-headers", "X-Forwarded-Proto,X-Real-Ip"}, nil, `proxy header "X-Real-Ip"`},
		{[]string{"proxy", "--upstream", "http://app", "extra"}, nil, "unexpected arguments"},
		{[]string{"proxy", "--upstream", "http://app", "--log-level", "loud"}, nil, "--log-level"},
	} {
		_, err := cli(t, tt.env, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v %v: err = %v; want one containing %q", tt.args, tt.env, err, tt.want)
		}
	}
}

// TestProxyFromEnvironment runs `proxy` in-process, configured only
// through the environment twins of its flags, in shadow mode in front of a
// recording application, against a real service.
func TestProxyFromEnvironment(t *testing.T) {
	t.Parallel()
	tgAddr := testserver.FreeAddr(t)
	stopServe := startServe(t, tgAddr, t.TempDir(), io.Discard)
	defer stopServe()
	seen := make(chan string, 1)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("X-Twilioguard-Verified")
	}))
	defer app.Close()

	addr, ops := testserver.FreeAddr(t), testserver.FreeAddr(t)
	env := map[string]string{
		"TWILIOGUARD_URL":             "http://" + tgAddr,
		"TWILIOGUARD_UPSTREAM":        app.URL,
		"TWILIOGUARD_ADDR":            addr,
		"TWILIOGUARD_METRICS_ADDR":    ops,
		"TWILIOGUARD_MODE":            "shadow",
		"TWILIOGUARD_PUBLIC_BASE_URL": "https://hooks.example.com",
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	var logs testserver.Buffer
	go func() { done <- run(ctx, []string{"proxy"}, envFunc(env), strings.NewReader(""), io.Discard, &logs) }()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get("http://" + ops + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy not ready:\n%s", logs.String())
		}
	}
	resp, err := http.Post("http://"+addr+"/sms", "application/x-www-form-urlencoded", strings.NewReader("AccountSid="+testSID))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || <-seen != "false" {
		t.Errorf("unsigned in shadow mode: %d; want it forwarded marked X-Twilioguard-Verified: false", resp.StatusCode)
	}
	for _, want := range []string{"twilioguard proxy serving", "mode=shadow", "upstream=" + app.URL} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("proxy returned %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("proxy did not stop")
	}
}
