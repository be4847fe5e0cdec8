package server_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/replay"
	"github.com/twilioguard/twilioguard/server"
)

// withMemoryReplay turns on duplicate detection in memory, on the
// harness's clock, with a one-hour window.
func withMemoryReplay(maxEntries int) func(*server.Config) {
	return func(c *server.Config) {
		c.AccountLabel = true
		c.Replay = replay.NewMemory(replay.MemoryConfig{Window: time.Hour, MaxEntries: maxEntries, Now: c.Now})
	}
}

// tokened returns req with the idempotency token tok.
func tokened(req *twilioguardv1.VerifyWebhookRequest, tok string) *twilioguardv1.VerifyWebhookRequest {
	req.IdempotencyToken = tok
	return req
}

// replayVerdict is what a response says about duplicates: "first",
// "duplicate@<first seen>", "unavailable", or "unchecked".
func replayVerdict(resp *twilioguardv1.VerifyWebhookResponse) string {
	switch {
	case resp.ReplayCheck == twilioguardv1.ReplayCheck_CHECKED && resp.Duplicate != nil && !*resp.Duplicate && resp.FirstSeenTime == nil:
		return "first"
	case resp.ReplayCheck == twilioguardv1.ReplayCheck_CHECKED && resp.GetDuplicate() && resp.FirstSeenTime != nil:
		return "duplicate@" + resp.FirstSeenTime.AsTime().Format(time.RFC3339)
	case resp.ReplayCheck == twilioguardv1.ReplayCheck_UNAVAILABLE && resp.Duplicate == nil && resp.FirstSeenTime == nil:
		return "unavailable"
	case resp.ReplayCheck == twilioguardv1.ReplayCheck_REPLAY_CHECK_UNSPECIFIED && resp.Duplicate == nil && resp.FirstSeenTime == nil:
		return "unchecked"
	}
	return fmt.Sprintf("inconsistent: check %v, duplicate %v, first seen %v", resp.ReplayCheck, resp.Duplicate, resp.FirstSeenTime)
}

// TestReplayDuplicates sends webhooks in order through each protocol (every
// protocol has its own accounts' webhooks, so they do not see each other's)
// and checks which are duplicates.
func TestReplayDuplicates(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{config: withMemoryReplay(0)})
	seen := t0.Format(time.RFC3339)
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			client := h.verifier(p)
			path := "/" + p.name
			sms := func(body string) []*twilioguardv1.Param { return params("AccountSid", sid1, "Body", body) }
			signed := func(u string, ps []*twilioguardv1.Param) *twilioguardv1.VerifyWebhookRequest {
				return signedParams(token1, u, ps)
			}
			base := hookURL + path
			steps := []struct {
				name string
				req  *twilioguardv1.VerifyWebhookRequest
				want string
			}{
				{"first with a token", tokened(signed(base, sms("a")), "tok-a"+path), "first"},
				{"same webhook, same token", tokened(signed(base, sms("a")), "tok-a"+path), "duplicate@" + seen},
				{"another webhook, same token", tokened(signed(base, sms("b")), "tok-a"+path), "duplicate@" + seen},
				{"same webhook, another token", tokened(signed(base, sms("a")), "tok-b"+path), "first"},
				{"first without a token", signed(base, sms("c")), "first"},
				{"same webhook without a token", signed(base, sms("c")), "duplicate@" + seen},
				{"same webhook at a port variant of its URL", func() *twilioguardv1.VerifyWebhookRequest {
					req := signed(base, sms("c"))
					req.Url = strings.Replace(base, ".com/", ".com:443/", 1)
					return req
				}(), "duplicate@" + seen},
				{"another webhook without a token", signed(base, sms("d")), "first"},
				{"same body at another URL", signed(base+"/other", sms("c")), "first"},
				{"another account's webhook with a used token", tokened(signedParams(token2, base,
					params("AccountSid", sid2, "Body", "a")), "tok-a"+path), "first"},
			}
			for _, st := range steps {
				got, err := client.VerifyWebhook(t.Context(), st.req)
				if err != nil {
					t.Fatalf("%s: %v", st.name, err)
				}
				if !got.Valid {
					t.Fatalf("%s: not valid: %v", st.name, got.Reason)
				}
				if v := replayVerdict(got); v != st.want {
					t.Errorf("%s: %s; want %s", st.name, v, st.want)
				}
			}
		})
	}
}

// TestReplayRecordsOnlyValidRequests checks that a refused request neither
// records its key nor says anything about duplicates.
func TestReplayRecordsOnlyValidRequests(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{config: withMemoryReplay(0)})
	client := h.verifier(protocols[0])
	good := tokened(signedParams(token1, hookURL, smsParams(sid1)), "tok-1")
	forged := tokened(signedParams(token2, hookURL, smsParams(sid1)), "tok-1")
	unsigned := tokened(signedParams(token1, hookURL, smsParams(sid1)), "tok-1")
	unsigned.Signature = ""
	for _, bad := range []*twilioguardv1.VerifyWebhookRequest{forged, unsigned, forged} {
		got, err := client.VerifyWebhook(t.Context(), bad)
		if err != nil || got.Valid {
			t.Fatalf("bad request: %v, %v; want a refusal", got, err)
		}
		if v := replayVerdict(got); v != "unchecked" {
			t.Errorf("refused request: %s; want unchecked", v)
		}
	}
	got, err := client.VerifyWebhook(t.Context(), good)
	if err != nil || !got.Valid {
		t.Fatalf("good request: %v, %v", got, err)
	}
	if v := replayVerdict(got); v != "first" {
		t.Errorf("genuine webhook after forged copies with its token: %s; want first", v)
	}
}

func TestReplayWindowExpiry(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{config: withMemoryReplay(0)})
	client := h.verifier(protocols[0])
	req := signedParams(token1, hookURL, smsParams(sid1))
	want := func(step, verdict string) {
		t.Helper()
		got, err := client.VerifyWebhook(t.Context(), req)
		if err != nil || !got.Valid {
			t.Fatalf("%s: %v, %v", step, got, err)
		}
		if v := replayVerdict(got); v != verdict {
			t.Errorf("%s: %s; want %s", step, v, verdict)
		}
	}
	want("first", "first")
	h.clock.Advance(time.Hour - time.Second)
	want("inside the window", "duplicate@"+t0.Format(time.RFC3339))
	h.clock.Advance(time.Second)
	want("at the end of the window", "first")
	h.clock.Advance(time.Minute)
	want("in the new window", "duplicate@"+t0.Add(time.Hour).Format(time.RFC3339))
}

func TestReplayOff(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{})
	client := h.verifier(protocols[0])
	req := tokened(signedParams(token1, hookURL, smsParams(sid1)), "tok-1")
	for range 2 {
		got, err := client.VerifyWebhook(t.Context(), req)
		if err != nil || !got.Valid {
			t.Fatalf("VerifyWebhook = %v, %v", got, err)
		}
		if v := replayVerdict(got); v != "unchecked" {
			t.Errorf("without duplicate detection: %s; want unchecked", v)
		}
	}
	_, page := h.get(t, "/metrics")
	if strings.Contains(page, "twilioguard_replay_") {
		t.Error("/metrics has replay metrics with duplicate detection off")
	}
}

// TestReplayTokenLength checks the bound on the caller-chosen token, for
// valid and refused requests alike.
func TestReplayTokenLength(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{config: withMemoryReplay(0)})
	client := h.verifier(protocols[0])
	for _, secret := range []string{token1, token2} {
		req := tokened(signedParams(secret, hookURL, smsParams(sid1)), strings.Repeat("t", replay.MaxTokenBytes+1))
		_, err := client.VerifyWebhook(t.Context(), req)
		if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "idempotencyToken too long") {
			t.Errorf("token of %d bytes: error %v; want InvalidArgument saying the token is too long", replay.MaxTokenBytes+1, err)
		}
		req.IdempotencyToken = strings.Repeat("t", replay.MaxTokenBytes)
		if _, err := client.VerifyWebhook(t.Context(), req); err != nil {
			t.Errorf("token of %d bytes: %v; want an answer", replay.MaxTokenBytes, err)
		}
	}
}

// TestReplayFull fills a record of two keys: new webhooks then answer
// UNAVAILABLE (never "not a duplicate"), while the held ones stay
// duplicates; the log says so once and the metrics count it.
func TestReplayFull(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{config: withMemoryReplay(2)})
	client := h.verifier(protocols[0])
	check := func(tok, want string) {
		t.Helper()
		got, err := client.VerifyWebhook(t.Context(), tokened(signedParams(token1, hookURL, smsParams(sid1)), tok))
		if err != nil || !got.Valid {
			t.Fatalf("token %s: %v, %v; want valid", tok, got, err)
		}
		if v := replayVerdict(got); v != want {
			t.Errorf("token %s: %s; want %s", tok, v, want)
		}
	}
	check("a", "first")
	check("b", "first")
	check("c", "unavailable")
	check("d", "unavailable")
	check("a", "duplicate@"+t0.Format(time.RFC3339))
	h.clock.Advance(time.Hour)
	check("c", "first")
	if n := strings.Count(h.logs.String(), `level=ERROR msg="replay record full`); n != 1 {
		t.Errorf("log has %d lines about the full record; want 1:\n%s", n, h.logs)
	}
	if !strings.Contains(h.logs.String(), "duplicate check available again") {
		t.Errorf("log does not say the check is available again:\n%s", h.logs)
	}
	_, page := h.get(t, "/metrics")
	if got := counters(t, page, "twilioguard_replay_unavailable_total")["cause=full"]; got != 2 {
		t.Errorf("unavailable{cause=full} = %v; want 2", got)
	}
	checks := counters(t, page, "twilioguard_replay_checks_total")
	if checks["result=first"] != 3 || checks["result=duplicate"] != 1 || checks["result=unavailable"] != 2 {
		t.Errorf("replay checks = %v; want first 3, duplicate 1, unavailable 2", checks)
	}
}

// failingReplay is a ReplayStore that fails while err is set, can hold
// claims until released, and counts calls.
type failingReplay struct {
	inner   server.ReplayStore
	mu      sync.Mutex
	err     error         // returned while not nil
	hold    chan struct{} // when not nil, claims wait until it is closed
	calls   int
	entered chan struct{} // signalled (if empty) as each claim starts
}

func (f *failingReplay) Claim(ctx context.Context, k replay.Key) (time.Time, bool, error) {
	f.mu.Lock()
	f.calls++
	err, hold := f.err, f.hold
	f.mu.Unlock()
	select {
	case f.entered <- struct{}{}:
	default:
	}
	if hold != nil {
		<-hold
	}
	if err != nil {
		return time.Time{}, false, err
	}
	return f.inner.Claim(ctx, k)
}

// set makes claims fail with err (nil: succeed) and hold until hold is
// closed (nil: not at all), and returns the number of calls so far.
func (f *failingReplay) set(err error, hold chan struct{}) (calls int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err, f.hold = err, hold
	return f.calls
}

// TestReplayStoreDown checks that a replay store that fails or times out
// never fails verification: the answer is valid and UNAVAILABLE, one call
// at a time probes the store while the others answer at once, and the
// logs and metrics say so.
func TestReplayStoreDown(t *testing.T) {
	t.Parallel()
	f := &failingReplay{entered: make(chan struct{}, 1)}
	h := newHarness(t, setup{config: func(c *server.Config) {
		f.inner = replay.NewMemory(replay.MemoryConfig{Window: time.Hour, Now: c.Now})
		c.Replay = f
	}})
	client := h.verifier(protocols[1])
	req := signedParams(token1, hookURL, smsParams(sid1))
	verify := func(step string) string {
		got, err := client.VerifyWebhook(t.Context(), req)
		if err != nil || !got.Valid {
			return fmt.Sprintf("%s: %v, %v; want valid", step, got, err)
		}
		return replayVerdict(got)
	}
	want := func(step, verdict string) {
		t.Helper()
		if v := verify(step); v != verdict {
			t.Errorf("%s: %s; want %s", step, v, verdict)
		}
	}

	want("up", "first")
	f.set(fmt.Errorf("claim replay key: %w", context.DeadlineExceeded), nil)
	want("timeout", "unavailable")
	f.set(errors.New("claim replay key: database unreachable"), nil)
	want("down, probing", "unavailable")

	// While one call probes the store (and waits for it), another answers
	// at once without asking it.
	hold := make(chan struct{})
	<-f.entered // the claims so far
	calls := f.set(errors.New("claim replay key: database unreachable"), hold)
	probe := make(chan string)
	go func() { probe <- verify("probe") }()
	<-f.entered
	want("while another call probes", "unavailable")
	if n := f.set(errors.New("claim replay key: database unreachable"), hold); n != calls+1 {
		t.Errorf("store called %d times with a probe running; want only the probe", n-calls)
	}
	close(hold)
	if v := <-probe; v != "unavailable" {
		t.Errorf("failed probe: %s; want unavailable", v)
	}

	f.set(nil, nil)
	want("back", "duplicate@"+t0.Format(time.RFC3339))
	want("up again", "duplicate@"+t0.Format(time.RFC3339))

	logs := h.logs.String()
	if n := strings.Count(logs, "duplicate check unavailable"); n != 1 {
		t.Errorf("log has %d lines saying the check is unavailable; want 1 per outage:\n%s", n, logs)
	}
	if !strings.Contains(logs, "level=ERROR msg=\"duplicate check unavailable") || !strings.Contains(logs, "duplicate check available again") {
		t.Errorf("log lacks the outage (at error) or the recovery:\n%s", logs)
	}
	_, page := h.get(t, "/metrics")
	causes := counters(t, page, "twilioguard_replay_unavailable_total")
	if causes["cause=timeout"] != 1 || causes["cause=backoff"] != 1 || causes["cause=error"] != 2 {
		t.Errorf("unavailable by cause = %v; want timeout 1, backoff 1, error 2", causes)
	}
	if !strings.Contains(page, "twilioguard_replay_store_up 1") {
		t.Error("twilioguard_replay_store_up is not 1 after the recovery")
	}
}

// TestReplayCallerGone checks that a claim failing because the caller went
// away does not make the server leave the store alone.
func TestReplayCallerGone(t *testing.T) {
	t.Parallel()
	f := &failingReplay{}
	h := newHarness(t, setup{config: func(c *server.Config) {
		f.inner = replay.NewMemory(replay.MemoryConfig{Now: c.Now})
		c.Replay = f
	}})
	req := signedParams(token1, hookURL, smsParams(sid1))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	f.set(context.Canceled, nil)
	got, err := h.srv.VerifyWebhook(ctx, req)
	if err != nil || replayVerdict(got) != "unavailable" {
		t.Fatalf("VerifyWebhook with a cancelled context = %v, %v; want valid and unavailable", got, err)
	}
	f.set(nil, nil)
	got, err = h.srv.VerifyWebhook(t.Context(), req)
	if err != nil || replayVerdict(got) != "first" {
		t.Errorf("next VerifyWebhook = %v, %v; want a checked first claim", got, err)
	}
	if strings.Contains(h.logs.String(), "duplicate check unavailable") {
		t.Errorf("a cancelled call was logged as an outage:\n%s", h.logs)
	}
}

// TestReplayMetricsAndLogs checks the duplicate counter by route and
// account, and the debug line of a duplicate.
func TestReplayMetricsAndLogs(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{config: withMemoryReplay(0)})
	client := h.verifier(protocols[0])
	req := signedParams(token1, hookURL, smsParams(sid1))
	req.Route = "sms"
	for range 3 {
		if _, err := client.VerifyWebhook(t.Context(), req); err != nil {
			t.Fatal(err)
		}
	}
	_, page := h.get(t, "/metrics")
	dups := counters(t, page, "twilioguard_replay_duplicates_total")
	if want := "account=" + sid1 + ",route=sms"; dups[want] != 2 || len(dups) != 1 {
		t.Errorf("duplicates = %v; want {%s: 2}", dups, want)
	}
	if !strings.Contains(h.logs.String(), "replay_check=CHECKED duplicate=true first_seen=") {
		t.Errorf("debug line of a duplicate lacks its replay check:\n%s", h.logs)
	}
}

// TestReplayConcurrentCopies sends 50 copies of one webhook at once over
// every protocol: exactly one is first.
func TestReplayConcurrentCopies(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{config: withMemoryReplay(0)})
	req := tokened(signedParams(token1, hookURL, smsParams(sid1)), "concurrent")
	verdicts := make([]string, 50)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range verdicts {
		client := h.verifier(protocols[i%len(protocols)])
		wg.Go(func() {
			<-start
			got, err := client.VerifyWebhook(context.Background(), req)
			if err != nil {
				verdicts[i] = err.Error()
				return
			}
			verdicts[i] = replayVerdict(got)
		})
	}
	close(start)
	wg.Wait()
	firsts := 0
	for _, v := range verdicts {
		switch {
		case v == "first":
			firsts++
		case v != "duplicate@"+t0.Format(time.RFC3339):
			t.Errorf("copy: %s; want first or a duplicate of the first", v)
		}
	}
	if firsts != 1 {
		t.Errorf("%d of 50 concurrent copies were first; want exactly 1", firsts)
	}
}

// BenchmarkVerifyWebhookReplay measures one in-process VerifyWebhook call
// (no RPC) of a signed SMS webhook with duplicate detection off and in
// memory, each call with a new idempotency token: the cost the duplicate
// check adds to deciding a request.
func BenchmarkVerifyWebhookReplay(b *testing.B) {
	for _, mode := range []string{"off", "memory"} {
		b.Run(mode, func(b *testing.B) {
			cfg := server.Config{Store: newFakeStore(time.Now, defaultAccounts()...), AdminToken: adminToken}
			if mode == "memory" {
				cfg.Replay = replay.NewMemory(replay.MemoryConfig{MaxEntries: 1 << 30})
			}
			srv, err := server.New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			if err := srv.Load(b.Context()); err != nil {
				b.Fatal(err)
			}
			base := signedParams(token1, hookURL, smsParams(sid1))
			var next atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req := proto.CloneOf(base)
				for pb.Next() {
					req.IdempotencyToken = strconv.FormatInt(next.Add(1), 36)
					resp, err := srv.VerifyWebhook(context.Background(), req)
					if err != nil || !resp.Valid || resp.GetDuplicate() {
						b.Fatalf("VerifyWebhook = %v, %v; want valid, not a duplicate", resp, err)
					}
				}
			})
		})
	}
}
