package postgres_test

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/twilioguard/twilioguard/store/postgres"
	"github.com/twilioguard/twilioguard/store/seal"
)

// The environment that scripts/setup.d/40-postgres.sh exports.
const (
	// envDSN names a server that stays up; tests create databases on it.
	envDSN = "TWILIOGUARD_TEST_POSTGRES_DSN"
	// envCtlDSN names a second server, which envCtl stops and starts.
	envCtlDSN = "TWILIOGUARD_TEST_POSTGRES_CTL_DSN"
	// envCtl is a command running pg_ctl on the envCtlDSN server.
	envCtl = "TWILIOGUARD_TEST_POSTGRES_CTL"
)

// requireEnv returns the values of the named variables. When one is unset it
// skips the test with a hint how to get a server, or fails it under CI=true.
func requireEnv(t *testing.T, names ...string) []string {
	t.Helper()
	vals := make([]string, len(names))
	for i, name := range names {
		vals[i] = os.Getenv(name)
		if vals[i] != "" {
			continue
		}
		msg := fmt.Sprintf("%s is not set: run scripts/test.sh, which installs PostgreSQL "+
			"(apt-get install postgresql) and starts private servers", name)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return vals
}

// newKeyring returns a keyring with a fresh random key.
func newKeyring(t *testing.T) *seal.Keyring {
	t.Helper()
	key := make([]byte, seal.KeySize)
	rand.Read(key)
	k, err := seal.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// openStore opens a store on dsn, closed when the test ends.
func openStore(t *testing.T, dsn string, keys *seal.Keyring) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), postgres.Config{DSN: dsn, Keyring: keys, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// pgctl runs the envCtl command with args (for example "stop", "-m", "fast").
func pgctl(t *testing.T, ctl string, args ...string) {
	t.Helper()
	fields := strings.Fields(ctl)
	cmd := exec.Command(fields[0], append(fields[1:], args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", ctl, strings.Join(args, " "), err, out)
	}
}

// ensureRunning makes sure the envCtl server runs again when the test ends,
// whatever happened to it.
func ensureRunning(t *testing.T, ctl string) {
	t.Helper()
	t.Cleanup(func() {
		fields := strings.Fields(ctl)
		status := exec.Command(fields[0], append(fields[1:], "status")...)
		if status.Run() == nil {
			return
		}
		start := exec.Command(fields[0], append(fields[1:], "start", "-w", "-t", "60")...)
		if out, err := start.CombinedOutput(); err != nil {
			t.Errorf("restart the test server: %v\n%s", err, out)
		}
	})
}
