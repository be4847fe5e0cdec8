package postgres_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/twilioguard/twilioguard/internal/pgtest"
	"github.com/twilioguard/twilioguard/internal/testserver"
	"github.com/twilioguard/twilioguard/signature"
	"github.com/twilioguard/twilioguard/store/storetest"
)

// replayVerdict is the part of a VerifyWebhookResponse about duplicates.
type replayVerdict struct {
	Valid         bool   `json:"valid"`
	Duplicate     *bool  `json:"duplicate"`
	FirstSeenTime string `json:"firstSeenTime"`
	ReplayCheck   string `json:"replayCheck"`
}

// String is "first", "duplicate", "unavailable" or what else the verdict
// says.
func (v replayVerdict) String() string {
	switch {
	case !v.Valid:
		return "invalid"
	case v.ReplayCheck == "CHECKED" && v.Duplicate != nil && !*v.Duplicate && v.FirstSeenTime == "":
		return "first"
	case v.ReplayCheck == "CHECKED" && v.Duplicate != nil && *v.Duplicate && v.FirstSeenTime != "":
		return "duplicate"
	case v.ReplayCheck == "UNAVAILABLE" && v.Duplicate == nil && v.FirstSeenTime == "":
		return "unavailable"
	}
	return fmt.Sprintf("inconsistent: check %q, duplicate %v, first seen %q", v.ReplayCheck, v.Duplicate, v.FirstSeenTime)
}

// verifyCopy asks replica r about the webhook of account sid with the
// given body, signed with token, and the idempotency token tok ("" for
// none).
func (c *cluster) verifyCopy(ctx context.Context, r *testserver.Server, sid, token, body, tok string) (replayVerdict, error) {
	params := url.Values{"AccountSid": {sid}, "Body": {body}}
	var v replayVerdict
	err := c.verifyJSON(ctx, r, map[string]any{
		"url": webhookURL,
		"params": []map[string]string{
			{"key": "AccountSid", "value": sid}, {"key": "Body", "value": body},
		},
		"signature":        signature.Sign(token, webhookURL, params),
		"idempotencyToken": tok,
		"route":            "sms",
	}, &v)
	return v, err
}

// TestReplicasDuplicates sends 50 copies of a webhook at once, spread over
// three replicas on one database: exactly one is first, every other is a
// duplicate with the first copy's time. It does so for webhooks with and
// without an idempotency token, several times.
func TestReplicasDuplicates(t *testing.T) {
	t.Parallel()
	c := startCluster(t, pgtest.NewDatabase(t, requireEnv(t, envDSN)[0]))
	sid, token := storetest.SID(4000), "token-"+rand.Text()
	c.putAccount(t, c.replicas[0], sid, token)
	for _, r := range c.replicas {
		if _, err := c.awaitValid(t.Context(), r, sid, token, time.Now()); err != nil {
			t.Fatal(err)
		}
	}

	for round := range 4 {
		tok := ""
		if round%2 == 0 {
			tok = "idem-" + rand.Text()
		}
		body := fmt.Sprintf("round %d %s", round, rand.Text())
		verdicts := make([]replayVerdict, 50)
		errs := make([]error, 50)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range verdicts {
			wg.Go(func() {
				<-start
				verdicts[i], errs[i] = c.verifyCopy(t.Context(), c.replicas[i%3], sid, token, body, tok)
			})
		}
		close(start)
		wg.Wait()
		firsts, onReplica := 0, -1
		for i, v := range verdicts {
			if errs[i] != nil {
				t.Fatalf("round %d, copy %d: %v", round, i, errs[i])
			}
			switch v.String() {
			case "first":
				firsts, onReplica = firsts+1, i%3
			case "duplicate":
			default:
				t.Errorf("round %d, copy %d: %s; want first or duplicate", round, i, v)
			}
		}
		if firsts != 1 {
			t.Fatalf("round %d (token %q): %d of 50 concurrent copies over 3 replicas were first; want exactly 1", round, tok, firsts)
		}
		seen := ""
		for i, v := range verdicts {
			if v.FirstSeenTime != "" && seen != "" && v.FirstSeenTime != seen {
				t.Errorf("round %d: copy %d was first seen at %s, another copy at %s; want one time", round, i, v.FirstSeenTime, seen)
			}
			if v.FirstSeenTime != "" {
				seen = v.FirstSeenTime
			}
		}
		t.Logf("round %d (token %v): 1 first (on replica %d), 49 duplicates first seen at %s", round, tok != "", onReplica, seen)
	}
}

// TestReplicasReplayDatabaseOutage stops PostgreSQL under two replicas:
// webhooks still verify, each answer saying the duplicate check is
// unavailable (never "not a duplicate"), quickly; once PostgreSQL is back,
// duplicates are recognised again, including copies of webhooks verified
// before the outage. It is not parallel: it owns the envCtl server while it
// runs.
func TestReplicasReplayDatabaseOutage(t *testing.T) {
	env := requireEnv(t, envCtlDSN, envCtl)
	ctl := env[1]
	c := startCluster(t, pgtest.NewDatabase(t, env[0]))
	sid, token := storetest.SID(5000), "token-"+rand.Text()
	c.putAccount(t, c.replicas[0], sid, token)
	for _, r := range c.replicas {
		if _, err := c.awaitValid(t.Context(), r, sid, token, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	send := func(step string, r *testserver.Server, body, tok, want string) {
		t.Helper()
		start := time.Now()
		v, err := c.verifyCopy(t.Context(), r, sid, token, body, tok)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if v.String() != want {
			t.Errorf("%s on %s: %s; want %s", step, r.Addr, v, want)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s took %v; want the duplicate check bounded by its timeout", step, d)
		}
	}
	send("before the outage", c.replicas[0], "before", "tok-before", "first")

	ensureRunning(t, ctl)
	pgctl(t, ctl, "stop", "-m", "fast", "-w")
	t.Log("PostgreSQL stopped")
	start := time.Now()
	const n = 30
	for i := range n {
		r := c.replicas[i%3]
		send("during the outage", r, "before", "tok-before", "unavailable")
		send("a new webhook during the outage", r, fmt.Sprint("during ", i), "", "unavailable")
	}
	t.Logf("%d verifications while PostgreSQL was down: all valid with replayCheck UNAVAILABLE, %v on average",
		2*n, (time.Since(start) / (2 * n)).Round(time.Microsecond))
	for _, r := range c.replicas {
		if v := c.metric(t, r, "twilioguard_replay_store_up"); v != "0" {
			t.Errorf("%s twilioguard_replay_store_up = %q during the outage; want 0", r.Addr, v)
		}
	}

	pgctl(t, ctl, "start", "-w", "-t", "60")
	t.Log("PostgreSQL started again")
	for i, r := range c.replicas {
		deadline := time.Now().Add(30 * time.Second)
		for {
			v, err := c.verifyCopy(t.Context(), r, sid, token, "before", "tok-before")
			if err == nil && v.String() == "duplicate" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %d: a webhook verified before the outage is %v, %v 30s after the restart; want a duplicate", i, v, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	send("a new webhook after the outage", c.replicas[1], "after", "", "first")
	send("its copy on another replica", c.replicas[2], "after", "", "duplicate")
	for _, r := range c.replicas {
		if v := c.metric(t, r, "twilioguard_replay_store_up"); v != "1" {
			t.Errorf("%s twilioguard_replay_store_up = %q after the restart; want 1", r.Addr, v)
		}
	}
}
