package twilioapi

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/server"
	"github.com/twilioguard/twilioguard/store"
	"github.com/twilioguard/twilioguard/store/seal"
	"github.com/twilioguard/twilioguard/store/sqlite"
	"github.com/twilioguard/twilioguard/twilioapi/twiliotest"
)

// The in-process server is what `serve` passes to a Syncer.
var (
	_ AccountService = (*server.Server)(nil)
	_ Verifier       = (*server.Server)(nil)
)

// newServer returns an in-process twilioguard server on a fresh SQLite
// store, loaded and ready.
func newServer(t *testing.T) *server.Server {
	t.Helper()
	key, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := seal.ParseKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := seal.NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "twilioguard.db"), Keyring: keys})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := server.New(server.Config{Store: st, AdminToken: store.Secret("admin-token-0123456789")})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	return srv
}

// webhook is a webhook Twilio sends for an account, signed by tw now.
type webhook struct {
	sid       string
	signature string
}

var webhookParams = url.Values{"Body": {"hello"}, "From": {"+15005550006"}}

const webhookURL = "https://hooks.example.com/twilio/sms"

func signedBy(tw *twiliotest.Server, sid string) webhook {
	p := url.Values{"AccountSid": {sid}}
	for k, v := range webhookParams {
		p[k] = v
	}
	return webhook{sid: sid, signature: tw.Sign(sid, webhookURL, p)}
}

// verify asks v about w and returns the verdict.
func verify(ctx context.Context, v Verifier, w webhook) (*twilioguardv1.VerifyWebhookResponse, error) {
	req := &twilioguardv1.VerifyWebhookRequest{Url: webhookURL, Signature: w.signature, Account: w.sid,
		Params: []*twilioguardv1.Param{{Key: "AccountSid", Value: w.sid}}}
	for k, vs := range webhookParams {
		req.Params = append(req.Params, &twilioguardv1.Param{Key: k, Value: vs[0]})
	}
	return v.VerifyWebhook(ctx, req)
}

func TestSyncerIntoServer(t *testing.T) {
	t.Parallel()
	f := newFamily(t, 3)
	srv := newServer(t)
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	c, _ := newTestClient(t, f.tw, tokenCreds(f.parent, f.token))
	s, err := NewSyncer(SyncConfig{Twilio: c, Accounts: srv, Interval: time.Hour, Registerer: reg,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}

	if sum, err := s.SyncOnce(t.Context()); err != nil || sum.Added != 4 {
		t.Fatalf("first sync = %v, %v; want 4 added", sum, err)
	}
	old := signedBy(f.tw, f.subs[0])
	if v, err := verify(t.Context(), srv, old); err != nil || !v.Valid {
		t.Fatalf("a webhook of an imported account: %v, %v", v, err)
	}

	// A token promoted at Twilio: rotated in, the old one still accepted.
	f.tw.ChangeAuthToken(f.subs[0])
	if sum, err := s.SyncOnce(t.Context()); err != nil || sum != (Summary{Updated: 1, Unchanged: 3}) {
		t.Fatalf("sync after a token change = %v, %v; want 1 updated", sum, err)
	}
	for _, tc := range []struct {
		w    webhook
		cred string
	}{{signedBy(f.tw, f.subs[0]), "auth_token"}, {old, "previous_auth_token"}} {
		if v, err := verify(t.Context(), srv, tc.w); err != nil || !v.Valid || v.Credential != tc.cred {
			t.Errorf("after the rotation: %v, %v; want valid with %s", v, err, tc.cred)
		}
	}

	// A failed run changes nothing and is counted.
	before, err := srv.GetAccount(t.Context(), &twilioguardv1.GetAccountRequest{Account: f.subs[1]})
	if err != nil {
		t.Fatal(err)
	}
	f.tw.ChangeAuthToken(f.subs[1])
	f.tw.Inject(twiliotest.Fault{Status: http.StatusInternalServerError})
	if _, err := s.SyncOnce(t.Context()); err == nil {
		t.Fatal("sync with Twilio failing succeeded")
	}
	after, err := srv.GetAccount(t.Context(), &twilioguardv1.GetAccountRequest{Account: f.subs[1]})
	if err != nil || after.Account.Version != before.Account.Version {
		t.Errorf("a failed sync changed the account: version %d -> %d (%v)", before.Account.Version, after.Account.GetVersion(), err)
	}
	f.tw.ClearFaults()

	metrics := gather(t, reg)
	for _, want := range []string{
		`twilioguard_twilio_sync_runs_total{result="success"} 2`,
		`twilioguard_twilio_sync_runs_total{result="error"} 1`,
		`twilioguard_twilio_sync_changes_total{kind="added"} 4`,
		`twilioguard_twilio_sync_changes_total{kind="updated"} 1`,
		`twilioguard_twilio_sync_changes_total{kind="removed"} 0`,
	} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, metrics)
		}
	}
	if !strings.Contains(metrics, "twilioguard_twilio_sync_last_success_timestamp_seconds 1.") {
		t.Errorf("no last success time:\n%s", metrics)
	}
	if !strings.Contains(logs.String(), "twilio sync failed; retried at the next interval") {
		t.Errorf("the failed run was not logged:\n%s", logs.String())
	}

	// Run syncs at once and then every interval, until its context ends;
	// the failed run's change comes in now.
	s.cfg.Interval = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(gather(t, reg), `twilioguard_twilio_sync_runs_total{result="success"} 4`) {
		if time.Now().After(deadline) {
			t.Fatalf("Run did not sync twice:\n%s", gather(t, reg))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v; want context.Canceled", err)
	}
	if v, err := verify(t.Context(), srv, signedBy(f.tw, f.subs[1])); err != nil || !v.Valid {
		t.Errorf("the token change missed by the failed run was not synced: %v, %v", v, err)
	}
}

func TestNewSyncerChecksConfig(t *testing.T) {
	t.Parallel()
	f := newFamily(t, 0)
	c, _ := newTestClient(t, f.tw, tokenCreds(f.parent, f.token))
	for _, cfg := range []SyncConfig{
		{Accounts: newMemAccounts(), Interval: time.Minute},
		{Twilio: c, Interval: time.Minute},
		{Twilio: c, Accounts: newMemAccounts()},
	} {
		if _, err := NewSyncer(cfg); err == nil {
			t.Errorf("NewSyncer(%+v) accepted an incomplete configuration", cfg)
		}
	}
}

// gather returns the registry's metrics in the Prometheus text format.
func gather(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}
