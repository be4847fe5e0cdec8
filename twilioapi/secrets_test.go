package twilioapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/twilioguard/twilioguard/store"
	"github.com/twilioguard/twilioguard/twilioapi/twiliotest"
)

// TestNoCredentialInOutput runs imports, syncs, rotations and audits, good
// and failing, and checks that no Twilio credential the fake ever handed
// out appears in a log line, an error, a metric or a report.
func TestNoCredentialInOutput(t *testing.T) {
	t.Parallel()
	f := newFamily(t, 2)
	tw := f.tw
	key, keySecret := tw.NewAPIKey(f.parent)
	secrets := []string{f.token, keySecret}
	remember := func() {
		for _, sid := range append([]string{f.parent}, f.subs...) {
			secrets = append(secrets, tw.AuthToken(sid))
			if s := tw.SecondaryAuthToken(sid); s != "" {
				secrets = append(secrets, s)
			}
		}
	}
	remember()

	var out bytes.Buffer // everything a user or operator could see
	log := slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	record := func(err error) {
		if err != nil {
			fmt.Fprintln(&out, err)
		}
	}
	srv := newServer(t)
	reg := prometheus.NewRegistry()
	c, _ := newTestClient(t, tw, Credentials{AccountSID: f.parent, APIKey: key, Secret: store.Secret(keySecret)})
	fmt.Fprintf(&out, "%v %+v %#v\n", c.creds, c.creds, c.creds)
	log.Info("credentials", "creds", c.creds)
	_ = json.NewEncoder(&out).Encode(c.creds)

	s, err := NewSyncer(SyncConfig{Twilio: c, Accounts: srv, Interval: time.Hour, Logger: log, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.SyncOnce(t.Context())
	record(err)
	tw.ChangeAuthToken(f.subs[0])
	remember()
	_, err = s.SyncOnce(t.Context())
	record(err)
	tw.Inject(twiliotest.Fault{Status: http.StatusInternalServerError, Times: 100})
	_, err = s.SyncOnce(t.Context())
	record(err)
	tw.ClearFaults()

	bad, _ := newTestClient(t, tw, tokenCreds(f.parent, strings.Repeat("b", 32)))
	secrets = append(secrets, strings.Repeat("b", 32))
	_, err = Import(t.Context(), bad, srv, log)
	record(err)

	cfg := RotateConfig{Twilio: c, Accounts: srv, Verifiers: []Verifier{srv}, PropagationDelay: time.Millisecond,
		Progress: func(format string, args ...any) { fmt.Fprintf(&out, format+"\n", args...) }}
	_, err = Rotate(t.Context(), f.subs[1], cfg)
	record(err)
	remember()
	tw.Inject(twiliotest.Fault{Path: "/v1/AuthTokens/Promote", Status: http.StatusBadGateway})
	_, err = Rotate(t.Context(), f.subs[1], cfg)
	record(err)
	remember()

	rep, err := Audit(t.Context(), c, srv, nil)
	record(err)
	_ = json.NewEncoder(&out).Encode(rep)
	_, err = Audit(t.Context(), bad, srv, nil)
	record(err)
	out.WriteString(gather(t, reg))

	text := out.String()
	if !strings.Contains(text, "twilio import: account added") || !strings.Contains(text, "promote the new token at Twilio") {
		t.Fatalf("the scenario did not run as planned:\n%s", text)
	}
	for _, s := range secrets {
		if i := strings.Index(text, s); i >= 0 {
			t.Errorf("a credential (%s) appears in the output after: %s", store.Secret(s).Fingerprint(), text[max(0, i-200):i])
		}
	}
}
