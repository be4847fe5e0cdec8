package twilioapi

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/server"
	"github.com/twilioguard/twilioguard/store"
	"github.com/twilioguard/twilioguard/twilioapi/twiliotest"
)

// rotateFixture is a fake Twilio family imported into an in-process
// server.
type rotateFixture struct {
	*family
	srv    *server.Server
	parent *Client
}

func newRotateFixture(t *testing.T) *rotateFixture {
	t.Helper()
	f := newFamily(t, 2)
	srv := newServer(t)
	c, _ := newTestClient(t, f.tw, tokenCreds(f.parent, f.token))
	if _, err := Import(t.Context(), c, srv, nil); err != nil {
		t.Fatal(err)
	}
	return &rotateFixture{family: f, srv: srv, parent: c}
}

func (x *rotateFixture) config() RotateConfig {
	return RotateConfig{Twilio: x.parent, Accounts: x.srv, Verifiers: []Verifier{x.srv}, PropagationDelay: time.Millisecond, ProbeTimeout: time.Second}
}

func (x *rotateFixture) held(t *testing.T, sid string) *twilioguardv1.Account {
	t.Helper()
	got, err := x.srv.GetAccount(t.Context(), &twilioguardv1.GetAccountRequest{Account: sid})
	if err != nil {
		t.Fatal(err)
	}
	return got.Account
}

func TestRotate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// creds returns the credentials to rotate with: the parent's or the
		// account's own.
		own bool
	}{{"with the parent's credentials", false}, {"with the account's own token", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			x := newRotateFixture(t)
			sid := x.subs[0]
			old := signedBy(x.tw, sid)
			oldToken := x.tw.AuthToken(sid)
			cfg := x.config()
			if tc.own {
				cfg.Twilio, _ = newTestClient(t, x.tw, tokenCreds(sid, oldToken))
			}
			var steps []string
			cfg.Progress = func(format string, args ...any) { steps = append(steps, format) }
			cfg.Grace = 2 * time.Hour

			got, err := Rotate(t.Context(), sid, cfg)
			if err != nil {
				t.Fatal(err)
			}
			newToken := x.tw.AuthToken(sid)
			if newToken == oldToken || x.tw.SecondaryAuthToken(sid) != "" {
				t.Fatal("the secondary token was not promoted at Twilio")
			}
			if got.AuthTokenFingerprint != store.Secret(newToken).Fingerprint() || got.PreviousAuthTokenFingerprint != store.Secret(oldToken).Fingerprint() {
				t.Errorf("twilioguard holds %s (previous %s) after the rotation", got.AuthTokenFingerprint, got.PreviousAuthTokenFingerprint)
			}
			if d := time.Until(got.PreviousExpireTime.AsTime()); d < time.Hour || d > 2*time.Hour {
				t.Errorf("the old token is kept for %v; want the 2h grace", d)
			}
			for _, tc := range []struct {
				w    webhook
				cred string
			}{{signedBy(x.tw, sid), "auth_token"}, {old, "previous_auth_token"}} {
				if v, err := verify(t.Context(), x.srv, tc.w); err != nil || !v.Valid || v.Credential != tc.cred {
					t.Errorf("after the rotation: %v, %v; want valid with %s", v, err, tc.cred)
				}
			}
			if len(steps) != 4 {
				t.Errorf("progress lines: %q; want 4", steps)
			}
			// The auth token endpoints were called on accounts.twilio.com, as
			// the account itself.
			var calls []string
			for _, r := range x.tw.Requests() {
				if strings.HasPrefix(r.Path, "/v1/AuthTokens/") {
					if r.Host != twiliotest.HostAccounts || r.User != sid {
						t.Errorf("%s %s sent to %s as %s", r.Method, r.Path, r.Host, r.User)
					}
					calls = append(calls, r.Method+" "+r.Path)
				}
			}
			if strings.Join(calls, ", ") != "POST /v1/AuthTokens/Secondary, POST /v1/AuthTokens/Promote" {
				t.Errorf("auth token calls: %q", calls)
			}
		})
	}
}

// flakyAccounts wraps an AccountService and makes RotateAuthToken fail,
// after doing it when done is set (an answer lost on the way).
type flakyAccounts struct {
	AccountService
	done bool
}

func (f *flakyAccounts) RotateAuthToken(ctx context.Context, req *twilioguardv1.RotateAuthTokenRequest) (*twilioguardv1.RotateAuthTokenResponse, error) {
	if f.done {
		if _, err := f.AccountService.RotateAuthToken(ctx, req); err != nil {
			return nil, err
		}
	}
	return nil, connect.NewError(connect.CodeUnavailable, errors.New("connection reset"))
}

// refusingVerifier never verifies anything.
type refusingVerifier struct{}

func (refusingVerifier) VerifyWebhook(context.Context, *twilioguardv1.VerifyWebhookRequest) (*twilioguardv1.VerifyWebhookResponse, error) {
	return &twilioguardv1.VerifyWebhookResponse{Reason: twilioguardv1.Reason_SIGNATURE_MISMATCH}, nil
}

func TestRotateFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(t *testing.T, x *rotateFixture, cfg *RotateConfig)
		// step, state and finish are parts of the error; "" for success.
		step, state, finish string
		// twilioguard holds the new token; Twilio promoted it.
		accepted, promoted bool
	}{
		{
			name: "twilioguard holds another token",
			setup: func(t *testing.T, x *rotateFixture, _ *RotateConfig) {
				x.tw.ChangeAuthToken(x.subs[0])
			},
			step: "check the current auth token", state: "nothing was changed",
			finish: "twilioguard accounts import",
		},
		{
			name: "an unfinished rotation",
			setup: func(t *testing.T, x *rotateFixture, _ *RotateConfig) {
				_, err := x.srv.RotateAuthToken(t.Context(), &twilioguardv1.RotateAuthTokenRequest{Account: x.subs[0], NewAuthToken: "abc123"})
				if err != nil {
					t.Fatal(err)
				}
			},
			step: "check the current auth token", state: "a rotation was started and not finished",
			finish: "promote the secondary token at Twilio",
		},
		{
			name: "Twilio refuses the secondary token",
			setup: func(t *testing.T, x *rotateFixture, _ *RotateConfig) {
				x.tw.Inject(twiliotest.Fault{Method: http.MethodPost, Path: "/v1/AuthTokens/Secondary", Status: http.StatusInternalServerError})
			},
			step: "create a secondary auth token at Twilio", state: "twilioguard was not changed",
			finish: "run this command again",
		},
		{
			name: "twilioguard refuses the new token",
			setup: func(t *testing.T, x *rotateFixture, cfg *RotateConfig) {
				cfg.Accounts = &flakyAccounts{AccountService: x.srv}
			},
			step: "make twilioguard accept the new token", state: "Twilio has an unused secondary auth token",
			finish: "run this command again",
		},
		{
			name: "twilioguard's answer is lost",
			setup: func(t *testing.T, x *rotateFixture, cfg *RotateConfig) {
				cfg.Accounts = &flakyAccounts{AccountService: x.srv, done: true}
			},
			accepted: true, promoted: true,
		},
		{
			name: "a replica does not accept the new token",
			setup: func(t *testing.T, x *rotateFixture, cfg *RotateConfig) {
				cfg.Verifiers = append(cfg.Verifiers, refusingVerifier{})
				cfg.ProbeTimeout = 300 * time.Millisecond
			},
			step: "confirm that verifier 2 accepts the new token", state: "Twilio still signs webhooks with the old token",
			finish: "promote the secondary token at Twilio", accepted: true,
		},
		{
			name: "Twilio fails to promote",
			setup: func(t *testing.T, x *rotateFixture, _ *RotateConfig) {
				x.tw.Inject(twiliotest.Fault{Path: "/v1/AuthTokens/Promote", Status: http.StatusServiceUnavailable})
			},
			step: "promote the new token at Twilio", state: "if Twilio shows the new token promoted, nothing is left to do",
			finish: "/v1/AuthTokens/Promote", accepted: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			x := newRotateFixture(t)
			sid := x.subs[0]
			cfg := x.config()
			tt.setup(t, x, &cfg)
			before := x.held(t, sid)
			twilioBefore := x.tw.AuthToken(sid)

			_, err := Rotate(t.Context(), sid, cfg)
			if tt.step == "" {
				if err != nil {
					t.Fatal(err)
				}
			} else {
				var re *RotateError
				if !errors.As(err, &re) {
					t.Fatalf("Rotate error = %v; want a *RotateError", err)
				}
				for _, want := range []string{tt.step, tt.state, tt.finish} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error lacks %q:\n%v", want, err)
					}
				}
				if x.tw.SecondaryAuthToken(sid) != "" && strings.Contains(err.Error(), x.tw.SecondaryAuthToken(sid)) ||
					strings.Contains(err.Error(), twilioBefore) {
					t.Error("the error shows a token")
				}
			}
			after := x.held(t, sid)
			if accepted := after.AuthTokenFingerprint != before.AuthTokenFingerprint; accepted != tt.accepted {
				t.Errorf("twilioguard accepted a new token: %v; want %v", accepted, tt.accepted)
			}
			if promoted := x.tw.AuthToken(sid) != twilioBefore; promoted != tt.promoted {
				t.Errorf("Twilio promoted a new token: %v; want %v", promoted, tt.promoted)
			}
			// Whatever happened, a webhook Twilio signs now verifies.
			if v, err := verify(t.Context(), x.srv, signedBy(x.tw, sid)); err != nil || !v.Valid {
				if tt.name != "twilioguard holds another token" {
					t.Errorf("a webhook signed by Twilio now: %v, %v", v, err)
				}
			}
		})
	}
}
