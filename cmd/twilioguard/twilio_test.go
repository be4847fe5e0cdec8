package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twilioguard/twilioguard/internal/testserver"
	"github.com/twilioguard/twilioguard/store"
	"github.com/twilioguard/twilioguard/twilioapi"
	"github.com/twilioguard/twilioguard/twilioapi/twiliotest"
)

// twilioCLI runs CLI commands against an in-process `serve` and a fake
// Twilio API, keeping everything they print.
type twilioCLI struct {
	t       *testing.T
	tw      *twiliotest.Server
	env     map[string]string
	common  []string
	printed bytes.Buffer
	logs    *testserver.Buffer
	server  string
}

func newTwilioCLI(t *testing.T) *twilioCLI {
	t.Helper()
	dataDir := t.TempDir()
	addr := testserver.FreeAddr(t)
	c := &twilioCLI{t: t, tw: twiliotest.NewServer(t), logs: &testserver.Buffer{}, server: "http://" + addr}
	t.Cleanup(startServe(t, addr, dataDir, c.logs))
	c.common = []string{"--server", c.server, "--data-dir", dataDir, "--twilio-api-url", c.tw.URL}
	return c
}

// run runs a command with the Twilio credentials in c.env and returns its
// standard output.
func (c *twilioCLI) run(args ...string) (string, error) {
	c.t.Helper()
	var out, errOut bytes.Buffer
	err := run(c.t.Context(), append(args, c.common...), envFunc(c.env), strings.NewReader(""), &out, &errOut)
	c.printed.Write(out.Bytes())
	c.printed.Write(errOut.Bytes())
	if err != nil {
		c.printed.WriteString(err.Error())
	}
	return out.String(), err
}

func (c *twilioCLI) mustRun(args ...string) string {
	c.t.Helper()
	out, err := c.run(args...)
	if err != nil {
		c.t.Fatalf("%v: %v", args, err)
	}
	return out
}

func TestTwilioCommands(t *testing.T) {
	c := newTwilioCLI(t)
	tw := c.tw
	parent, parentToken := tw.NewAccount("ISV")
	shop, _ := tw.NewSubaccount(parent, "shop")
	clinic, _ := tw.NewSubaccount(parent, "clinic")
	gone, _ := tw.NewSubaccount(parent, "gone")
	tw.SetStatus(gone, twiliotest.Closed)
	c.env = map[string]string{twilioapi.EnvAccountSID: parent, twilioapi.EnvAuthToken: parentToken}
	secrets := []string{parentToken, tw.AuthToken(shop), tw.AuthToken(clinic), tw.AuthToken(gone)}

	// Import, then again as JSON: idempotent.
	if out := c.mustRun("accounts", "import"); out != "added 3, updated 0, removed 0, unchanged 0\n" {
		t.Errorf("accounts import printed %q", out)
	}
	var sum map[string]int
	if err := json.Unmarshal([]byte(c.mustRun("accounts", "import", "--format", "json")), &sum); err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"added": 0, "updated": 0, "removed": 0, "unchanged": 3}; !maps.Equal(sum, want) {
		t.Errorf("accounts import --format json = %v; want %v", sum, want)
	}

	// A token changed at Twilio is rotated in.
	secrets = append(secrets, tw.ChangeAuthToken(clinic))
	if out := c.mustRun("accounts", "import"); out != "added 0, updated 1, removed 0, unchanged 2\n" {
		t.Errorf("accounts import after a token change printed %q", out)
	}

	// Rotation through Twilio, authenticated with the parent's credentials.
	out := c.mustRun("accounts", "rotate", shop, "--via-twilio", "--grace", "1h", "--propagation-delay", "10ms")
	secrets = append(secrets, tw.AuthToken(shop))
	var rotated struct {
		Account struct {
			AuthTokenFingerprint string `json:"authTokenFingerprint"`
		} `json:"account"`
	}
	if err := json.Unmarshal([]byte(out), &rotated); err != nil {
		t.Fatalf("accounts rotate --via-twilio printed %q: %v", out, err)
	}
	if want := store.Secret(tw.AuthToken(shop)).Fingerprint(); rotated.Account.AuthTokenFingerprint != want {
		t.Errorf("after the rotation twilioguard holds %s; Twilio signs with %s", rotated.Account.AuthTokenFingerprint, want)
	}
	if !strings.Contains(c.printed.String(), "promoted the new token at Twilio") {
		t.Errorf("no progress lines:\n%s", c.printed.String())
	}

	// Audit.
	tw.AddPhoneNumber(shop, twiliotest.PhoneNumber{Number: "+15005550006", SMSURL: "https://hooks.example.com/twilio/sms", VoiceURL: "http://hooks.example.com/twilio/voice"})
	tw.AddMessagingService(clinic, twiliotest.MessagingService{FriendlyName: "reminders", InboundRequestURL: "https://hooks.example.com/twilio-evil/in"})
	text := c.mustRun("audit", "--protected-base-url", "https://hooks.example.com/twilio")
	for _, want := range []string{
		"ACCOUNT", "sms_url", "protected", "voice_url", "insecure", "inbound_request_url", "unprotected",
		"3 webhook URLs: 1 protected, 1 unprotected, 1 insecure, 0 unknown-account",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("audit output lacks %q:\n%s", want, text)
		}
	}
	var rep twilioapi.Report
	if err := json.Unmarshal([]byte(c.mustRun("audit", "--protected-base-url", "https://hooks.example.com/twilio", "--format", "json")), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 3 || rep.Counts[twilioapi.Insecure] != 1 {
		t.Errorf("audit --format json = %+v", rep)
	}

	// Errors: clear, and nothing changed.
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{twilioapi.EnvAccountSID: parent, twilioapi.EnvAuthToken: strings.Repeat("0", 32)}, []string{"accounts", "import"}, "the credentials were refused"},
		{nil, []string{"accounts", "import"}, "--twilio-credentials-file"},
		{c.env, []string{"accounts", "import", "--format", "yaml"}, `--format "yaml"`},
		{c.env, []string{"audit", "--protected-base-url", "hooks.example.com"}, "protected base URL"},
		{c.env, []string{"accounts", "rotate", "--via-twilio"}, "want exactly one account"},
		{c.env, []string{"accounts", "rotate", "AC" + strings.Repeat("9", 32), "--via-twilio"}, "not_found"},
	} {
		c.env = tc.env
		if _, err := c.run(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v; want %q", tc.args, err, tc.want)
		}
	}

	// No Twilio credential in anything printed, logged or exported.
	resp, err := http.Get(c.server + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, s := range secrets {
		for name, text := range map[string]string{"CLI output": c.printed.String(), "server log": c.logs.String(), "metrics": string(metrics)} {
			if strings.Contains(text, s) {
				t.Errorf("a Twilio credential (%s) appears in the %s", store.Secret(s).Fingerprint(), name)
			}
		}
	}
}

func TestViaTwilio(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		env  string
		want bool
	}{
		{[]string{"AC1", "--via-twilio"}, "", true},
		{[]string{"-via-twilio", "AC1"}, "", true},
		{[]string{"AC1", "--via-twilio=true"}, "", true},
		{[]string{"AC1", "--via-twilio=false"}, "", false},
		{[]string{"AC1"}, "true", true},
		{[]string{"AC1", "--grace", "1h"}, "", false},
		{[]string{"--", "--via-twilio"}, "", false},
	}
	for _, tt := range tests {
		e := env{getenv: envFunc(map[string]string{"TWILIOGUARD_ACCOUNTS_ROTATE_VIA_TWILIO": tt.env})}
		if got := viaTwilio(e, tt.args); got != tt.want {
			t.Errorf("viaTwilio(%q, env %q) = %v; want %v", tt.args, tt.env, got, tt.want)
		}
	}
}

// TestServeTwilioSync runs `serve --twilio-sync-interval` against a fake
// Twilio: the parent account is imported at start, the sync metrics are
// served, and without credentials serve refuses to start.
func TestServeTwilioSync(t *testing.T) {
	t.Parallel()
	tw := twiliotest.NewServer(t)
	parent, token := tw.NewAccount("ISV")
	file := t.TempDir() + "/twilio.env"
	if err := os.WriteFile(file, []byte("TWILIO_ACCOUNT_SID="+parent+"\nTWILIO_AUTH_TOKEN="+token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir, addr := t.TempDir(), testserver.FreeAddr(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", addr, "--data-dir", dataDir, "--twilio-sync-interval", "1h",
			"--twilio-api-url", tw.URL, "--twilio-credentials-file", file}, envFunc(nil), strings.NewReader(""), io.Discard, io.Discard)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	var out string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var err error
		if out, err = cli(t, nil, "accounts", "get", parent, "--server", "http://"+addr, "--data-dir", dataDir); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(out, parent) {
		t.Fatalf("the parent account was not imported at start: %q", out)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), `twilioguard_twilio_sync_runs_total{result="success"} 1`) || strings.Contains(string(page), token) {
		t.Errorf("/metrics lacks one successful sync run, or shows the token")
	}
	_, err = cli(t, nil, "serve", "--addr", testserver.FreeAddr(t), "--data-dir", t.TempDir(), "--twilio-sync-interval", "1h", "--twilio-api-url", tw.URL)
	if err == nil || !strings.Contains(err.Error(), "--twilio-sync-interval: no Twilio credentials") {
		t.Errorf("serve --twilio-sync-interval without credentials: %v", err)
	}
}
