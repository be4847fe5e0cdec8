package sqlite_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twilioguard/twilioguard/store/sqlite"
	"github.com/twilioguard/twilioguard/store/storetest"
)

// TestSecondOpenInProcess opens a database twice in one process: the second
// Open fails until the first store is closed.
func TestSecondOpenInProcess(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "accounts.db")
	first, err := sqlite.Open(t.Context(), sqlite.Config{Path: path, Keyring: storetest.Keyring(t, 1)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path + ".lock")
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("lock file holds %q, %v; want this process's pid %d", b, err, os.Getpid())
	}
	if fi, err := os.Stat(path + ".lock"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("lock file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}

	second, err := sqlite.Open(t.Context(), sqlite.Config{Path: path, Keyring: storetest.Keyring(t, 1)})
	if err == nil {
		second.Close()
		t.Fatal("second Open of an open database succeeded; want ErrInUse")
	}
	if !errors.Is(err, sqlite.ErrInUse) {
		t.Errorf("second Open error = %v; want ErrInUse", err)
	}
	wantHolder(t, err.Error(), path, os.Getpid())
	if !strings.Contains(err.Error(), "this process") {
		t.Errorf("error %q does not say the holder is this process", err)
	}

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Errorf("second Close error = %v; want nil", err)
	}
	open(t, path, storetest.Keyring(t, 1)) // the lock is free again
}

// wantHolder fails the test unless msg names the database and the holder.
func wantHolder(t *testing.T, msg, path string, pid int) {
	t.Helper()
	if !strings.Contains(msg, path) || !strings.Contains(msg, fmt.Sprintf("process %d ", pid)) {
		t.Errorf("Open of a database in use: error %q; want it to name %s and process %d", msg, path, pid)
	}
}

// envHolder tells the test binary, run again as a child process, to hold
// the database at this path open until its standard input closes.
const envHolder = "TWILIOGUARD_SQLITE_TEST_HOLD"

// TestHoldDatabase is the child process of TestSecondProcess; it does
// nothing in a normal run.
func TestHoldDatabase(t *testing.T) {
	path := os.Getenv(envHolder)
	if path == "" {
		t.Skip("runs only as the child process of TestSecondProcess")
	}
	s, err := sqlite.Open(t.Context(), sqlite.Config{Path: path, Keyring: storetest.Keyring(t, 1)})
	if err != nil {
		fmt.Printf("error: %v\n", err)
		return
	}
	defer s.Close()
	fmt.Println("holding")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until the parent closes stdin or kills us
}

// startHolder runs the test binary again as a process that opens the
// database at path (TestHoldDatabase) and returns it with the first line it
// printed: "holding", or "error: " and why it could not open the database.
func startHolder(t *testing.T, path string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHoldDatabase$", "-test.count=1")
	cmd.Env = append(os.Environ(), envHolder+"="+path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- strings.TrimSpace(line)
	}()
	select {
	case line := <-lines:
		return cmd, line
	case <-time.After(30 * time.Second):
		t.Fatal("the child process printed nothing within 30s")
		return nil, ""
	}
}

// TestSecondProcess runs a second process on one database: it may not open
// it while this process holds it, this process may not while it holds it,
// and once it is killed, with no chance to clean up, the database opens.
func TestSecondProcess(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "accounts.db")

	s, err := sqlite.Open(t.Context(), sqlite.Config{Path: path, Keyring: storetest.Keyring(t, 1)})
	if err != nil {
		t.Fatal(err)
	}
	_, line := startHolder(t, path)
	if !strings.HasPrefix(line, "error: ") {
		t.Fatalf("second process on a database this one holds: %q; want an error", line)
	}
	wantHolder(t, line, path, os.Getpid())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	holder, line := startHolder(t, path)
	if line != "holding" {
		t.Fatalf("second process on a free database: %q; want it to open it", line)
	}
	if s, err := sqlite.Open(t.Context(), sqlite.Config{Path: path, Keyring: storetest.Keyring(t, 1)}); err == nil {
		s.Close()
		t.Fatal("Open of a database another process holds succeeded; want ErrInUse")
	} else {
		if !errors.Is(err, sqlite.ErrInUse) {
			t.Errorf("Open of a database another process holds: error = %v; want ErrInUse", err)
		}
		wantHolder(t, err.Error(), path, holder.Process.Pid)
	}

	if err := holder.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	holder.Wait()
	open(t, path, storetest.Keyring(t, 1)) // the kernel released the dead holder's lock
}
