// Package testserver starts the real twilioguard binary for end-to-end tests:
// it builds cmd/twilioguard once per test binary, runs `twilioguard serve` on
// a free loopback port with a private data directory, and stops it when the
// test ends.
package testserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary returns the path of the twilioguard binary: $TWILIOGUARD_TEST_BIN
// when set (scripts/test.sh builds it once for every test package and
// language), else cmd/twilioguard built once per test binary.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("TWILIOGUARD_TEST_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "twilioguard-bin-") //nolint:usetesting // built once per test binary and shared by all its tests
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "twilioguard")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/twilioguard")
		cmd.Dir = repoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/twilioguard: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Options configure a server started by [Start].
type Options struct {
	// Args are extra arguments after `serve` (for example --store).
	Args []string
	// Env are extra KEY=value environment entries.
	Env []string
	// DataDir is the data directory; a fresh temporary one when empty.
	DataDir string
	// Addr is the listen address; a free loopback port when empty.
	Addr string
}

// Server is a running `twilioguard serve` process.
type Server struct {
	// URL is the base URL, for example http://127.0.0.1:41234.
	URL string
	// Addr is the host:port the server listens on.
	Addr string
	// AdminToken is the bearer token of the AccountService.
	AdminToken string
	// DataDir is the server's data directory.
	DataDir string

	t    testing.TB
	opts Options
	mu   sync.Mutex
	cmd  *exec.Cmd
	logs *Buffer
	done chan struct{}
}

// FreeAddr returns a loopback address with a port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Start builds the binary if needed, starts `twilioguard serve` and waits
// until /readyz answers 200. The server is stopped when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	if opts.Addr == "" {
		opts.Addr = FreeAddr(t)
	}
	token := make([]byte, 16)
	_, _ = rand.Read(token)
	s := &Server{
		URL:        "http://" + opts.Addr,
		Addr:       opts.Addr,
		AdminToken: hex.EncodeToString(token),
		DataDir:    opts.DataDir,
		t:          t,
		opts:       opts,
	}
	for _, e := range opts.Env {
		if v, ok := strings.CutPrefix(e, "TWILIOGUARD_ADMIN_TOKEN="); ok {
			s.AdminToken = v
		}
	}
	s.Restart()
	t.Cleanup(s.Stop)
	return s
}

// Restart starts the server process again (after [Server.Stop]) with the
// same options, data directory and address, and waits until it is ready.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.t.Fatal("testserver: Restart while running")
	}
	args := append([]string{"serve", "--addr", s.Addr, "--data-dir", s.DataDir, "--log-level", "debug"}, s.opts.Args...)
	cmd := exec.Command(Binary(s.t), args...)
	cmd.Env = append(os.Environ(), "TWILIOGUARD_ADMIN_TOKEN="+s.AdminToken)
	cmd.Env = append(cmd.Env, s.opts.Env...)
	s.logs = &Buffer{}
	cmd.Stdout = s.logs
	cmd.Stderr = s.logs
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(s.done)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-s.done:
			s.t.Fatalf("twilioguard serve exited early:\n%s", s.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("twilioguard serve not ready after 30s:\n%s", s.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop sends SIGTERM and waits for the process to exit (killing it after
// 10 s). It is safe to call more than once.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Logs returns what the server has written to stdout and stderr so far.
func (s *Server) Logs() string { return s.logs.String() }

// Call posts a Connect JSON request to procedure (for example
// "/twilioguard.v1.AccountService/PutAccount") with the admin token and
// returns the status code and body.
func (s *Server) Call(t testing.TB, procedure, jsonBody string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+procedure, strings.NewReader(jsonBody))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes()
}

// PutAccount stores an account with the given SID and auth token.
func (s *Server) PutAccount(t testing.TB, sid, authToken string) {
	t.Helper()
	body := fmt.Sprintf(`{"account":{"sid":%q,"authToken":%q}}`, sid, authToken)
	if code, out := s.Call(t, "/twilioguard.v1.AccountService/PutAccount", body); code != http.StatusOK {
		t.Fatalf("PutAccount %s: HTTP %d: %s", sid, code, out)
	}
}

// Buffer is a bytes.Buffer safe for concurrent writers and readers, for
// capturing the logs of servers under test.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p to the buffer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
