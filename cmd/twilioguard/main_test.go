package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twilioguard/twilioguard/internal/app"
	"github.com/twilioguard/twilioguard/internal/testserver"
)

const (
	testSID   = "AC0123456789abcdef0123456789abcdef"
	testToken = "s3cr3t-auth-token-0123456789abcdef"
	newToken  = "n3w-auth-token-fedcba9876543210fedc"
)

func envFunc(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// startServe runs `serve` in-process until the returned stop is called.
func startServe(t *testing.T, addr, dataDir string, logs io.Writer) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", addr, "--data-dir", dataDir, "--log-level", "debug", "--log-format", "json"},
			envFunc(nil), strings.NewReader(""), io.Discard, logs)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("serve not ready after 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve returned %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("serve did not stop within 15s")
		}
	}
}

// cli runs one CLI command and returns its stdout and error.
func cli(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(t.Context(), args, envFunc(env), strings.NewReader(""), &out, &errOut)
	if err != nil && !errors.As(err, new(exitError)) {
		t.Logf("stderr of %v: %s", args, errOut.String())
	}
	return out.String(), err
}

func TestServeEndToEnd(t *testing.T) {
	dataDir := t.TempDir()
	addr := testserver.FreeAddr(t)
	server := "http://" + addr
	logs := &testserver.Buffer{}
	stop := startServe(t, addr, dataDir, logs)

	// The admin token was generated into the data directory, private to us.
	fi, err := os.Stat(filepath.Join(dataDir, app.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("admin token mode = %v, want 0600", fi.Mode().Perm())
	}
	common := []string{"--server", server, "--data-dir", dataDir}

	// No admin token -> refused.
	if _, err := cli(t, nil, "accounts", "list", "--server", server, "--data-dir", t.TempDir()); err == nil {
		t.Error("accounts list without an admin token succeeded")
	}

	out, err := cli(t, map[string]string{"TWILIOGUARD_AUTH_TOKEN": testToken},
		append([]string{"accounts", "put", "--sid", testSID, "--alias", "shop"}, common...)...)
	if err != nil {
		t.Fatalf("accounts put: %v", err)
	}
	if strings.Contains(out, testToken) || !strings.Contains(out, "authTokenFingerprint") {
		t.Errorf("accounts put output shows the secret or no fingerprint:\n%s", out)
	}

	signArgs := []string{"--url", "https://example.com/sms?x=1", "-d", "AccountSid=" + testSID, "-d", "Body=hello world", "-d", "Empty="}
	sig, err := cli(t, map[string]string{"TWILIOGUARD_AUTH_TOKEN": testToken}, append([]string{"sign"}, signArgs...)...)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	sig = strings.TrimSpace(sig)

	verifyArgs := append(append([]string{"verify"}, common...), signArgs...)
	if out, err := cli(t, nil, append(verifyArgs, "--signature", sig)...); err != nil || !strings.Contains(out, `"valid": true`) {
		t.Fatalf("verify genuine request: err=%v\n%s", err, out)
	}
	// A tampered field is refused with exit status 1.
	tampered := append(append([]string{"verify"}, common...), "--url", "https://example.com/sms?x=1",
		"-d", "AccountSid="+testSID, "-d", "Body=hello world!", "-d", "Empty=", "--signature", sig)
	out, err = cli(t, nil, tampered...)
	if code, ok := errors.AsType[exitError](err); !ok || code != 1 || !strings.Contains(out, "SIGNATURE_MISMATCH") {
		t.Fatalf("verify tampered request: err=%v\n%s", err, out)
	}

	// Restart on the same data directory: the account is still there.
	stop()
	stop = startServe(t, addr, dataDir, logs)
	if out, err := cli(t, nil, append(verifyArgs, "--signature", sig, "--account", "shop")...); err != nil {
		t.Fatalf("verify after restart: err=%v\n%s", err, out)
	}

	// Rotation: the new token signs; the old one still verifies in the grace window.
	if _, err := cli(t, map[string]string{"TWILIOGUARD_NEW_AUTH_TOKEN": newToken},
		append([]string{"accounts", "rotate", "shop", "--grace", "1h"}, common...)...); err != nil {
		t.Fatalf("accounts rotate: %v", err)
	}
	newSig, _ := cli(t, map[string]string{"TWILIOGUARD_AUTH_TOKEN": newToken}, append([]string{"sign"}, signArgs...)...)
	if out, err := cli(t, nil, append(verifyArgs, "--signature", strings.TrimSpace(newSig))...); err != nil || !strings.Contains(out, `"auth_token"`) {
		t.Fatalf("verify with rotated token: err=%v\n%s", err, out)
	}
	if out, err := cli(t, nil, append(verifyArgs, "--signature", sig)...); err != nil || !strings.Contains(out, "previous_auth_token") {
		t.Fatalf("verify with previous token: err=%v\n%s", err, out)
	}
	out, err = cli(t, nil, append([]string{"accounts", "list"}, common...)...)
	if err != nil || !strings.Contains(out, testSID) || !strings.Contains(out, "previousAuthTokenFingerprint") {
		t.Fatalf("accounts list: err=%v\n%s", err, out)
	}
	stop()

	// No secret in plaintext anywhere in the data directory, nor in the logs.
	secrets := []string{testToken, newToken}
	files, _ := os.ReadDir(dataDir)
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dataDir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s contains a secret in plaintext", f.Name())
			}
		}
	}
	for _, s := range secrets {
		if strings.Contains(logs.String(), s) {
			t.Errorf("logs contain a secret")
		}
	}
	adminTok, _ := os.ReadFile(filepath.Join(dataDir, app.AdminTokenFile))
	if strings.Contains(logs.String(), strings.TrimSpace(string(adminTok))) {
		t.Error("logs contain the admin token")
	}
	if !strings.Contains(logs.String(), `"msg":"webhook verified"`) || !strings.Contains(logs.String(), `"msg":"webhook refused"`) {
		t.Error("no decision lines (verified at debug, refused at info) in the logs")
	}
}

func TestEnvTwins(t *testing.T) {
	t.Parallel()
	_, err := cli(t, map[string]string{"TWILIOGUARD_LOG_LEVEL": "loud"}, "serve", "--data-dir", t.TempDir(), "--addr", "127.0.0.1:0")
	if err == nil || !strings.Contains(err.Error(), "log-level") {
		t.Errorf("serve with TWILIOGUARD_LOG_LEVEL=loud: err = %v, want a --log-level error", err)
	}
	// TWILIOGUARD_URL names the service everywhere: sign does not read it
	// as the URL to sign, and its own twin is TWILIOGUARD_SIGN_URL.
	vars := map[string]string{"TWILIOGUARD_AUTH_TOKEN": "tok", "TWILIOGUARD_URL": "http://twilioguard:8080"}
	if out, err := cli(t, vars, "sign", "-d", "Body=hi"); err == nil || !strings.Contains(err.Error(), "--url is required") {
		t.Errorf("sign with only TWILIOGUARD_URL set: %q, %v; want --url is required", out, err)
	}
	vars["TWILIOGUARD_SIGN_URL"] = "https://a.example/x"
	fromEnv, err := cli(t, vars, "sign", "-d", "Body=hi")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := cli(t, map[string]string{"TWILIOGUARD_AUTH_TOKEN": "tok"}, "sign", "--url", "https://a.example/x", "-d", "Body=hi")
	if fromEnv != want || want == "" {
		t.Errorf("sign with TWILIOGUARD_SIGN_URL = %q; want %q", fromEnv, want)
	}
	// The command line wins over the environment.
	out, err := cli(t, vars, "sign", "--url", "https://b.example/y", "-d", "Body=hi")
	if err != nil {
		t.Fatal(err)
	}
	want, _ = cli(t, map[string]string{"TWILIOGUARD_AUTH_TOKEN": "tok"}, "sign", "--url", "https://b.example/y", "-d", "Body=hi")
	if out != want || out == "" {
		t.Errorf("sign used the env URL over the flag: %q vs %q", out, want)
	}
	// Flags of other commands are scoped the same way; a variable named
	// after a flag of another command sets nothing.
	if _, err := cli(t, map[string]string{"TWILIOGUARD_SID": "not-a-sid", "TWILIOGUARD_VERSION": "7"}, "version"); err != nil {
		t.Errorf("version with TWILIOGUARD_SID and TWILIOGUARD_VERSION set: %v", err)
	}
}

func TestSignRefusesJSONWithoutBodyHash(t *testing.T) {
	t.Parallel()
	body := filepath.Join(t.TempDir(), "event.json")
	if err := os.WriteFile(body, []byte(`{"a":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := cli(t, map[string]string{"TWILIOGUARD_AUTH_TOKEN": "tok"},
		"sign", "--url", "https://example.com/events", "--body-file", body, "--content-type", "application/json")
	if err == nil || !strings.Contains(err.Error(), "bodySHA256=") {
		t.Errorf("err = %v, want advice to add bodySHA256", err)
	}
}

func TestUnknownCommand(t *testing.T) {
	t.Parallel()
	if _, err := cli(t, nil, "frobnicate"); err == nil {
		t.Error("unknown command accepted")
	}
	out, err := cli(t, nil, "version")
	if err != nil || !strings.HasPrefix(out, "twilioguard ") {
		t.Errorf("version: %q, %v", out, err)
	}
}

// TestStrayArguments checks that every command refuses positional
// arguments it does not take, before doing anything (a SID given without
// --sid must not become an empty one).
func TestStrayArguments(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"serve", "now"},
		{"proxy", "--upstream", "http://app", "extra"},
		{"sign", "--url", "https://example.com/", "AC0123456789abcdef0123456789abcdef"},
		{"verify", "--url", "https://example.com/", "--signature", "x", "extra"},
		{"accounts", "put", "AC0123456789abcdef0123456789abcdef"},
		{"accounts", "list", "all"},
		{"accounts", "get", "main", "other"},
		{"accounts", "rm", "main", "other"},
		{"accounts", "import", "now"},
		{"audit", "now"},
	} {
		_, err := cli(t, map[string]string{"TWILIOGUARD_AUTH_TOKEN": "t"}, args...)
		if err == nil || !strings.Contains(err.Error(), "unexpected arguments") {
			t.Errorf("%v: err = %v; want unexpected arguments", args, err)
		}
	}
}

func TestCommandLineBeatsEnvironment(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"TWILIOGUARD_AUTH_TOKEN": "tok", "TWILIOGUARD_SIGN_D": "Body=from-env"}
	both, err := cli(t, vars, "sign", "--url", "https://x.example/sms", "-d", "Body=from-flag")
	if err != nil {
		t.Fatal(err)
	}
	flagOnly, _ := cli(t, map[string]string{"TWILIOGUARD_AUTH_TOKEN": "tok"}, "sign", "--url", "https://x.example/sms", "-d", "Body=from-flag")
	if both != flagOnly {
		t.Errorf("the env twin of -d was added to the command line's values")
	}
	envOnly, _ := cli(t, vars, "sign", "--url", "https://x.example/sms")
	if envOnly == flagOnly {
		t.Errorf("the env twin of -d was ignored without -d on the command line")
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "admin")
	if err := os.WriteFile(file, []byte("from-file-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tok, err := app.LoadAdminToken(file, "from-env-0123456789", dir, false)
	if err != nil || tok != "from-file-0123456789" {
		t.Errorf("admin token = %q, %v; want the --admin-token-file one", tok, err)
	}
}

func TestServeRefusesNewKeyOverExistingDatabase(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	addr := testserver.FreeAddr(t)
	stop := startServe(t, addr, dataDir, io.Discard)
	stop()
	if err := os.Remove(filepath.Join(dataDir, app.SecretKeyFile)); err != nil {
		t.Fatal(err)
	}
	_, err := cli(t, nil, "serve", "--addr", testserver.FreeAddr(t), "--data-dir", dataDir)
	if err == nil || !strings.Contains(err.Error(), "secret key") || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("serve without its key over an existing database: err = %v; want a refusal naming the key", err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, app.SecretKeyFile)); err == nil {
		t.Error("a new secret key was written over an existing database")
	}
}

func TestSignSniffsJSONBodies(t *testing.T) {
	t.Parallel()
	body := filepath.Join(t.TempDir(), "event.json")
	if err := os.WriteFile(body, []byte(` [{"a":1}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := cli(t, map[string]string{"TWILIOGUARD_AUTH_TOKEN": "tok"}, "sign", "--url", "https://example.com/events", "--body-file", body)
	if err == nil || !strings.Contains(err.Error(), "bodySHA256=") {
		t.Errorf("err = %v; want the JSON body treated as JSON", err)
	}
}
