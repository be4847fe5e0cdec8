package app_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twilioguard/twilioguard/client"
	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/internal/app"
	"github.com/twilioguard/twilioguard/internal/pgtest"
	"github.com/twilioguard/twilioguard/signature"
	"github.com/twilioguard/twilioguard/store/seal"
)

// signedSMS returns a signed SMS webhook of the test account with the
// idempotency token tok.
func signedSMS(tok string) *twilioguardv1.VerifyWebhookRequest {
	const hook = "https://example.com/sms"
	body := "AccountSid=" + testSID + "&Body=hello&From=%2B15551234567&To=%2B15557654321"
	params, _ := signature.ParseForm([]byte(body))
	return &twilioguardv1.VerifyWebhookRequest{Url: hook, Body: []byte(body), ContentType: "application/x-www-form-urlencoded",
		Signature: signature.Sign(testToken, hook, params), IdempotencyToken: tok, Route: "sms"}
}

// putTestAccount stores the test account through the admin API of url.
func putTestAccount(t testing.TB, url string) *client.Client {
	t.Helper()
	c, err := client.New(url, client.WithAdminToken(adminToken))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Accounts.PutAccount(t.Context(), &twilioguardv1.PutAccountRequest{Account: &twilioguardv1.Account{Sid: testSID, AuthToken: testToken}}); err != nil {
		t.Fatalf("PutAccount: %v", err)
	}
	return c
}

// TestReplayWiring checks that the SQLite process keeps its replay record
// in memory with the configured bound, and that window 0 turns it off.
func TestReplayWiring(t *testing.T) {
	t.Parallel()
	s := start(t, func(c *app.Config) { c.ReplayWindow, c.ReplayMaxEntries = time.Hour, 5 })
	c := putTestAccount(t, s.url)
	var got []string
	for _, tok := range []string{"a", "a", "b"} {
		resp, err := c.VerifyWebhook(t.Context(), signedSMS(tok))
		if err != nil || !resp.GetValid() {
			t.Fatalf("VerifyWebhook = %v, %v; want valid", resp, err)
		}
		got = append(got, fmt.Sprintf("%v/%v", resp.GetReplayCheck(), resp.GetDuplicate()))
	}
	if want := []string{"CHECKED/false", "CHECKED/true", "CHECKED/false"}; !slices.Equal(got, want) {
		t.Errorf("replay checks = %v; want %v", got, want)
	}
	_, page := get(t, s.url+"/metrics")
	for _, want := range []string{"twilioguard_replay_memory_entries 2\n", "twilioguard_replay_memory_capacity 5\n",
		`twilioguard_replay_duplicates_total{route="sms"} 1`} {
		if !strings.Contains(page, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	off := start(t, nil)
	resp, err := putTestAccount(t, off.url).VerifyWebhook(t.Context(), signedSMS("a"))
	if err != nil || resp.ReplayCheck != twilioguardv1.ReplayCheck_REPLAY_CHECK_UNSPECIFIED || resp.Duplicate != nil {
		t.Errorf("with ReplayWindow 0: %v, %v; want valid and unchecked", resp, err)
	}
}

func TestReplayConfigRefused(t *testing.T) {
	t.Parallel()
	for _, mutate := range []func(*app.Config){
		func(c *app.Config) { c.ReplayWindow = -time.Second },
		func(c *app.Config) { c.ReplayMaxEntries = -1 },
		func(c *app.Config) { c.ReplayTimeout = -time.Second },
	} {
		cfg := app.Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), AdminToken: adminToken}
		mutate(&cfg)
		if _, err := app.Open(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "must not be negative") {
			t.Errorf("Open(%+v): %v; want a refusal", cfg, err)
		}
	}
}

// BenchmarkVerifyReplay measures VerifyWebhook throughput of a whole
// process (App: Connect over h2c, the default log level, so no line per
// verified webhook) with duplicate detection off, in memory, and in
// PostgreSQL (when TWILIOGUARD_TEST_POSTGRES_DSN names a server), side by
// side. 16 concurrent callers send a signed SMS webhook, each with a new
// idempotency token, so every call records a new key: the costly case.
// It reports req/s, the p99 latency, and the share of answers whose
// duplicate check was UNAVAILABLE (a PostgreSQL claim past its timeout).
// Run it bounded, e.g. -benchtime=20000x.
func BenchmarkVerifyReplay(b *testing.B) {
	pgDSN := os.Getenv("TWILIOGUARD_TEST_POSTGRES_DSN")
	modes := []struct {
		name   string
		config func(b *testing.B, c *app.Config)
	}{
		{"off", func(*testing.B, *app.Config) {}},
		{"memory", func(_ *testing.B, c *app.Config) { c.ReplayWindow = 24 * time.Hour }},
		{"postgres", func(b *testing.B, c *app.Config) {
			if pgDSN == "" {
				b.Skip("TWILIOGUARD_TEST_POSTGRES_DSN is not set: run under scripts/test.sh's setup for the PostgreSQL figures")
			}
			key, _ := seal.GenerateKey()
			c.Store, c.SecretKey, c.ReplayWindow = pgtest.NewDatabase(b, pgDSN), key, 24*time.Hour
		}},
	}
	for _, mode := range modes {
		b.Run(mode.name, func(b *testing.B) {
			cfg := app.Config{
				Addr: "127.0.0.1:0", DataDir: b.TempDir(), AdminToken: adminToken,
				// Verified webhooks log at debug, which the default level
				// (info) leaves out, as this handler does.
				Logger: slog.New(slog.DiscardHandler),
			}
			mode.config(b, &cfg)
			a, err := app.Open(b.Context(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- a.Run(ctx) }()
			b.Cleanup(func() {
				cancel()
				if err := <-done; err != nil {
					b.Error(err)
				}
				_ = a.Close()
			})
			waitReady(b, "http://"+a.Addr())
			c := putTestAccount(b, "http://"+a.Addr())
			benchVerify(b, c, mode.name != "off")
		})
	}
}

// benchVerify runs b.N VerifyWebhook calls from 16 goroutines and reports
// their rate, p99 latency and share of unchecked answers.
func benchVerify(b *testing.B, c *client.Client, checked bool) {
	const callers = 16
	var next, unavailable atomic.Int64
	prefix := base64.RawURLEncoding.EncodeToString([]byte(b.Name()))
	call := func() (time.Duration, error) {
		req := signedSMS(fmt.Sprintf("%s-%d", prefix, next.Add(1)))
		start := time.Now()
		resp, err := c.VerifyWebhook(context.Background(), req)
		d := time.Since(start)
		switch {
		case err != nil:
			return d, err
		case !resp.GetValid():
			return d, fmt.Errorf("not valid: %v", resp.GetReason())
		case checked && resp.GetReplayCheck() == twilioguardv1.ReplayCheck_UNAVAILABLE:
			unavailable.Add(1)
		case checked && (resp.GetReplayCheck() != twilioguardv1.ReplayCheck_CHECKED || resp.GetDuplicate()):
			return d, fmt.Errorf("replay check %v, duplicate %v; want a first claim", resp.GetReplayCheck(), resp.GetDuplicate())
		}
		return d, nil
	}
	for range 200 { // warm up connections and caches
		if _, err := call(); err != nil {
			b.Fatal(err)
		}
	}
	var mu sync.Mutex
	var latencies []time.Duration
	b.SetParallelism((callers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	unavailable.Store(0)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 4096)
		for pb.Next() {
			d, err := call()
			if err != nil {
				b.Error(err)
				return
			}
			local = append(local, d)
		}
		mu.Lock()
		latencies = append(latencies, local...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if len(latencies) == 0 {
		return
	}
	slices.Sort(latencies)
	b.ReportMetric(float64(len(latencies))/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds()), "p99-µs")
	if checked {
		b.ReportMetric(float64(unavailable.Load())/float64(len(latencies)), "unavailable/op")
	}
}
