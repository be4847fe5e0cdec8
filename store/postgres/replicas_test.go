package postgres_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twilioguard/twilioguard/internal/pgtest"
	"github.com/twilioguard/twilioguard/internal/testserver"
	"github.com/twilioguard/twilioguard/signature"
	"github.com/twilioguard/twilioguard/store/storetest"
)

// These tests run three `twilioguard serve` processes on one database, as a
// Kubernetes Deployment would, and talk to them only over HTTP.

// propagationTimeout bounds how long a change may take to reach another
// replica before a test fails. The goal is one second; the tests report the
// measured times.
const propagationTimeout = 10 * time.Second

// webhookURL is the URL the test webhooks are signed for.
const webhookURL = "https://example.com/twilio/sms"

var webhookParams = url.Values{"Body": {"hello"}, "From": {"+15005550006"}}

// cluster is three replicas of `twilioguard serve` on one database.
type cluster struct {
	replicas []*testserver.Server
	admin    string
	client   *http.Client
}

// startCluster starts three replicas on dsn. A long resync interval makes
// sure every change they see comes through LISTEN/NOTIFY.
func startCluster(t *testing.T, dsn string) *cluster {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	c := &cluster{
		admin:  rand.Text(),
		client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}},
	}
	t.Cleanup(c.client.CloseIdleConnections)
	env := []string{
		"TWILIOGUARD_SECRET_KEY=" + base64.StdEncoding.EncodeToString(key),
		"TWILIOGUARD_ADMIN_TOKEN=" + c.admin,
	}
	for range 3 {
		c.replicas = append(c.replicas, testserver.Start(t, testserver.Options{
			Args: []string{"--store", dsn, "--resync-interval", "1h", "--log-level", "warn"},
			Env:  env,
		}))
	}
	return c
}

// post sends a Connect JSON request and returns the HTTP status and body.
func (c *cluster) post(ctx context.Context, r *testserver.Server, procedure string, body any) (int, []byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL+procedure, bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.admin)
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// admin calls an AccountService procedure and fails the test unless it
// answers 200.
func (c *cluster) admin200(t *testing.T, r *testserver.Server, method string, body any) {
	t.Helper()
	code, out, err := c.post(t.Context(), r, "/twilioguard.v1.AccountService/"+method, body)
	if err != nil || code != http.StatusOK {
		t.Fatalf("%s: HTTP %d, %v: %s", method, code, err, out)
	}
}

func (c *cluster) putAccount(t *testing.T, r *testserver.Server, sid, token string) {
	t.Helper()
	c.admin200(t, r, "PutAccount", map[string]any{"account": map[string]any{"sid": sid, "authToken": token}})
}

func (c *cluster) rotate(t *testing.T, r *testserver.Server, sid, token string) {
	t.Helper()
	c.admin200(t, r, "RotateAuthToken", map[string]any{"account": sid, "newAuthToken": token, "grace": "3600s"})
}

// verdict is the part of a VerifyWebhookResponse the tests look at.
type verdict struct {
	Valid      bool   `json:"valid"`
	Credential string `json:"credential"`
	Reason     string `json:"reason"`
}

// verify asks replica r whether a webhook signed with token for account sid
// is valid.
func (c *cluster) verify(ctx context.Context, r *testserver.Server, sid, token string) (verdict, error) {
	params := make([]map[string]string, 0, len(webhookParams))
	for k, vs := range webhookParams {
		for _, v := range vs {
			params = append(params, map[string]string{"key": k, "value": v})
		}
	}
	var v verdict
	err := c.verifyJSON(ctx, r, map[string]any{
		"url":       webhookURL,
		"params":    params,
		"signature": signature.Sign(token, webhookURL, webhookParams),
		"account":   sid,
	}, &v)
	return v, err
}

// verifyJSON sends the VerifyWebhook request req (Connect JSON) to replica
// r and decodes the answer into out.
func (c *cluster) verifyJSON(ctx context.Context, r *testserver.Server, req map[string]any, out any) error {
	code, body, err := c.post(ctx, r, "/twilioguard.v1.VerifierService/VerifyWebhook", req)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("VerifyWebhook: HTTP %d: %s", code, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("VerifyWebhook: %w: %s", err, body)
	}
	return nil
}

// awaitValid polls replica r until a webhook signed with token verifies for
// sid, and returns the time since start. It returns an error after
// propagationTimeout.
func (c *cluster) awaitValid(ctx context.Context, r *testserver.Server, sid, token string, start time.Time) (time.Duration, error) {
	var last string
	for time.Since(start) < propagationTimeout {
		v, err := c.verify(ctx, r, sid, token)
		switch {
		case err != nil:
			last = err.Error()
		case v.Valid:
			return time.Since(start), nil
		default:
			last = v.Reason
		}
		time.Sleep(2 * time.Millisecond)
	}
	return 0, fmt.Errorf("%s: not valid on %s after %v (last: %s)", sid, r.Addr, propagationTimeout, last)
}

// propagate runs change (an admin call on replica from) and returns the
// time until every other replica verifies a webhook signed with token.
func (c *cluster) propagate(t *testing.T, from int, sid, token string, change func()) time.Duration {
	t.Helper()
	start := time.Now()
	change()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		slowest time.Duration
		errs    []error
	)
	for i, r := range c.replicas {
		if i == from {
			continue
		}
		wg.Go(func() {
			d, err := c.awaitValid(t.Context(), r, sid, token, start)
			mu.Lock()
			defer mu.Unlock()
			slowest = max(slowest, d)
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	return slowest
}

// summary formats durations as "median m, max x (n samples)".
func summary(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	return fmt.Sprintf("median %v, max %v (%d samples)", s[len(s)/2].Round(time.Microsecond), s[len(s)-1].Round(time.Microsecond), len(s))
}

func goal(ds []time.Duration) string {
	if slices.Max(ds) <= time.Second {
		return "goal <= 1s met"
	}
	return "goal <= 1s NOT met"
}

// TestReplicasPropagation changes accounts on one replica and measures how
// long the others take to verify with the new token.
func TestReplicasPropagation(t *testing.T) {
	t.Parallel()
	c := startCluster(t, pgtest.NewDatabase(t, requireEnv(t, envDSN)[0]))

	var puts, rotations []time.Duration
	const rounds = 6
	for i := range rounds {
		sid := storetest.SID(1000 + i)
		first, second := fmt.Sprintf("first-token-%d-%s", i, rand.Text()), fmt.Sprintf("second-token-%d-%s", i, rand.Text())
		from := i % 3
		puts = append(puts, c.propagate(t, from, sid, first, func() { c.putAccount(t, c.replicas[from], sid, first) }))

		from = (i + 1) % 3
		rotations = append(rotations, c.propagate(t, from, sid, second, func() { c.rotate(t, c.replicas[from], sid, second) }))

		// Inside the grace window the old token still verifies everywhere,
		// as the previous token.
		for _, r := range c.replicas {
			v, err := c.verify(t.Context(), r, sid, first)
			if err != nil {
				t.Fatal(err)
			}
			if !v.Valid || v.Credential != "previous_auth_token" {
				t.Errorf("%s on %s: old token after rotation: %+v; want valid with previous_auth_token", sid, r.Addr, v)
			}
		}
	}
	if t.Failed() {
		return
	}
	t.Logf("PutAccount -> verified on the other replicas: %s; %s", summary(puts), goal(puts))
	t.Logf("RotateAuthToken -> new token verified on the other replicas: %s; %s", summary(rotations), goal(rotations))

	// A deleted account stops verifying everywhere.
	sid := storetest.SID(1000)
	c.admin200(t, c.replicas[2], "DeleteAccount", map[string]any{"account": sid})
	start := time.Now()
	for _, r := range c.replicas[:2] {
		for {
			v, err := c.verify(t.Context(), r, sid, "anything")
			if err == nil && v.Reason == "UNKNOWN_ACCOUNT" {
				break
			}
			if time.Since(start) > propagationTimeout {
				t.Fatalf("%s still known on %s %v after DeleteAccount: %+v, %v", sid, r.Addr, propagationTimeout, v, err)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	t.Logf("DeleteAccount -> unknown on the other replicas after %v", time.Since(start).Round(time.Microsecond))
}

// traffic verifies known accounts on every replica, round robin, until
// stopped, and counts the results.
type traffic struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	failures   []string
	stop       context.CancelFunc
	done       sync.WaitGroup
}

func (c *cluster) startTraffic(ctx context.Context, workers int, sids, tokens []string) *traffic {
	ctx, cancel := context.WithCancel(ctx)
	tr := &traffic{stop: cancel}
	for w := range workers {
		tr.done.Go(func() {
			for n := w; ctx.Err() == nil; n++ {
				i := n % len(sids)
				r := c.replicas[n%len(c.replicas)]
				v, err := c.verify(ctx, r, sids[i], tokens[i])
				if ctx.Err() != nil {
					return
				}
				if err == nil && v.Valid {
					tr.ok.Add(1)
					continue
				}
				tr.failed.Add(1)
				tr.mu.Lock()
				if len(tr.failures) < 10 {
					tr.failures = append(tr.failures, fmt.Sprintf("%s on %s: %+v %v", sids[i], r.Addr, v, err))
				}
				tr.mu.Unlock()
			}
		})
	}
	return tr
}

func (tr *traffic) finish() (ok, failed int64, failures []string) {
	tr.stop()
	tr.done.Wait()
	return tr.ok.Load(), tr.failed.Load(), tr.failures
}

// get fetches path from replica r and returns its status and body.
func (c *cluster) get(t *testing.T, r *testserver.Server, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, r.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// awaitReadyz polls /readyz on every replica until its body starts with
// prefix (for example "degraded" or "ready").
func (c *cluster) awaitReadyz(t *testing.T, prefix string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for _, r := range c.replicas {
		for {
			code, body := c.get(t, r, "/readyz")
			if code == http.StatusOK && strings.HasPrefix(body, prefix) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s /readyz = %d %q; want 200 %q... within %v", r.Addr, code, body, prefix, timeout)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// metric returns the value of an unlabelled metric line on /metrics.
func (c *cluster) metric(t *testing.T, r *testserver.Server, name string) string {
	t.Helper()
	_, body := c.get(t, r, "/metrics")
	for line := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			return v
		}
	}
	return ""
}

// TestReplicasSurviveDatabaseOutage stops PostgreSQL for 10 s under
// continuous verification traffic on three replicas. It is not parallel: it
// owns the envCtl server while it runs.
func TestReplicasSurviveDatabaseOutage(t *testing.T) {
	env := requireEnv(t, envCtlDSN, envCtl)
	ctl := env[1]
	c := startCluster(t, pgtest.NewDatabase(t, env[0]))

	const accounts = 30
	sids, tokens := make([]string, accounts), make([]string, accounts)
	for i := range accounts {
		sids[i], tokens[i] = storetest.SID(2000+i), "token-"+rand.Text()
		c.putAccount(t, c.replicas[i%3], sids[i], tokens[i])
	}
	for i := range accounts {
		for _, r := range c.replicas {
			if _, err := c.awaitValid(t.Context(), r, sids[i], tokens[i], time.Now()); err != nil {
				t.Fatal(err)
			}
		}
	}

	tr := c.startTraffic(t.Context(), 6, sids, tokens)
	time.Sleep(time.Second)
	before := tr.ok.Load()

	ensureRunning(t, ctl)
	pgctl(t, ctl, "stop", "-m", "fast", "-w")
	down := time.Now()
	t.Log("PostgreSQL stopped")

	// While it is down: readiness says degraded, metrics say the store is
	// down, and admin writes answer Unavailable with a clear message.
	c.awaitReadyz(t, "degraded", 8*time.Second)
	for _, r := range c.replicas {
		if v := c.metric(t, r, "twilioguard_store_up"); v != "0" {
			t.Errorf("%s twilioguard_store_up = %q during the outage; want 0", r.Addr, v)
		}
	}
	code, out, err := c.post(t.Context(), c.replicas[1], "/twilioguard.v1.AccountService/PutAccount",
		map[string]any{"account": map[string]any{"sid": storetest.SID(2999), "authToken": "x-token"}})
	if err != nil {
		t.Fatal(err)
	}
	var connectErr struct{ Code, Message string }
	_ = json.Unmarshal(out, &connectErr)
	if code != http.StatusServiceUnavailable || connectErr.Code != "unavailable" || !strings.Contains(connectErr.Message, "unavailable") {
		t.Errorf("PutAccount during the outage: HTTP %d %s; want 503 with code unavailable and a message saying so", code, out)
	}
	t.Logf("PutAccount during the outage answered HTTP %d: %s", code, out)

	time.Sleep(time.Until(down.Add(10 * time.Second)))
	during := tr.ok.Load() - before
	pgctl(t, ctl, "start", "-w", "-t", "60")
	up := time.Now()
	t.Logf("PostgreSQL started again after %v down", up.Sub(down).Round(time.Millisecond))

	// After recovery: ready again, and new changes propagate.
	c.awaitReadyz(t, "ready", 30*time.Second)
	t.Logf("all replicas ready %v after the restart", time.Since(up).Round(time.Millisecond))
	ok, failed, failures := tr.finish()
	t.Logf("verification traffic: %d valid (%d while the database was down), %d failed", ok, during, failed)
	if failed != 0 {
		t.Errorf("%d verifications of known accounts failed; first: %q", failed, failures)
	}
	if during == 0 {
		t.Error("no verification succeeded while the database was down")
	}
	for _, r := range c.replicas {
		if v := c.metric(t, r, "twilioguard_store_up"); v != "1" {
			t.Errorf("%s twilioguard_store_up = %q after the restart; want 1", r.Addr, v)
		}
	}

	sid, token := storetest.SID(3000), "after-restart-"+rand.Text()
	d := c.propagate(t, 1, sid, token, func() { c.putAccount(t, c.replicas[1], sid, token) })
	t.Logf("PutAccount after the restart -> verified on the other replicas after %v", d.Round(time.Microsecond))
	newToken := "rotated-after-restart-" + rand.Text()
	d = c.propagate(t, 2, sids[0], newToken, func() { c.rotate(t, c.replicas[2], sids[0], newToken) })
	t.Logf("RotateAuthToken after the restart -> verified on the other replicas after %v", d.Round(time.Microsecond))
}
