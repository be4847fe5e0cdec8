package twilioapi

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/store"
	"github.com/twilioguard/twilioguard/twilioapi/twiliotest"
)

func TestImport(t *testing.T) {
	t.Parallel()
	// A parent with 7 subaccounts: 8 accounts, 3 pages of 3.
	f := newFamily(t, 7)
	tw := f.tw
	suspended, closedHeld, closedNew, withAlias := f.subs[0], f.subs[1], f.subs[2], f.subs[3]
	tw.SetStatus(suspended, twiliotest.Suspended)
	tw.SetStatus(closedHeld, twiliotest.Closed)
	tw.SetStatus(closedNew, twiliotest.Closed)

	svc := newMemAccounts()
	// Held before: an account with an alias and a SharedKey (kept), a
	// closed one (removed), and one Twilio does not list (left alone).
	svc.put(&twilioguardv1.Account{Sid: withAlias, Aliases: []string{"shop"}, FriendlyName: "customer D",
		SharedKeys: []*twilioguardv1.SharedKey{{Id: "key1", Secret: "sharedsecret"}}}, tw.AuthToken(withAlias), "", time.Time{})
	svc.put(&twilioguardv1.Account{Sid: closedHeld}, "oldtoken", "", time.Time{})
	elsewhere := "AC" + strings.Repeat("e", 32)
	svc.put(&twilioguardv1.Account{Sid: elsewhere}, "othertoken", "", time.Time{})

	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	c, _ := newTestClient(t, tw, tokenCreds(f.parent, f.token))

	sum, err := Import(t.Context(), c, svc, log)
	if err != nil {
		t.Fatal(err)
	}
	// Added: the parent, 3 active and 1 suspended subaccounts; unchanged:
	// withAlias, already held as Twilio has it; removed: closedHeld.
	if want := (Summary{Added: 5, Removed: 1, Unchanged: 1}); sum != want {
		t.Errorf("first import = %v; want %v", sum, want)
	}
	if got := sum.String(); got != "added 5, updated 0, removed 1, unchanged 1" {
		t.Errorf("Summary.String() = %q", got)
	}

	// Every page was read: Page=0, 1, 2 of Accounts.json.
	var pages []string
	for _, r := range tw.Requests() {
		if r.Path == "/2010-04-01/Accounts.json" {
			if r.Host != twiliotest.HostAPI {
				t.Errorf("Accounts.json requested with Host %q", r.Host)
			}
			pages = append(pages, r.Query)
		}
	}
	if len(pages) != 3 || !strings.Contains(pages[2], "Page=2") || !strings.Contains(pages[2], "PageToken=PA") {
		t.Errorf("Accounts.json pages requested: %q; want 3, the last with Page=2 and a PageToken", pages)
	}

	for _, sid := range append([]string{f.parent}, f.subs...) {
		got := svc.get(sid)
		switch sid {
		case closedHeld, closedNew:
			if got != nil {
				t.Errorf("%s is closed at Twilio but twilioguard holds it", sid)
			}
			continue
		}
		if got == nil {
			t.Errorf("%s not imported", sid)
			continue
		}
		if want := store.Secret(tw.AuthToken(sid)).Fingerprint(); got.AuthTokenFingerprint != want {
			t.Errorf("%s: token %s; want Twilio's %s", sid, got.AuthTokenFingerprint, want)
		}
		if got.Suspended != (sid == suspended) {
			t.Errorf("%s: suspended = %v", sid, got.Suspended)
		}
	}
	if got := svc.get(withAlias); !slices.Equal(got.Aliases, []string{"shop"}) || len(got.SharedKeys) != 1 {
		t.Errorf("held account lost its alias or SharedKey: %v", got)
	}
	if svc.get(elsewhere) == nil {
		t.Error("an account Twilio does not list was removed")
	}
	if strings.Count(logs.String(), "account added") != 5 || strings.Count(logs.String(), "account removed") != 1 {
		t.Errorf("want one log line per change, got:\n%s", logs.String())
	}

	// Idempotent: nothing to do the second time.
	writes := len(svc.writeLog())
	sum, err = Import(t.Context(), c, svc, log)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Summary{Unchanged: 6}); sum != want {
		t.Errorf("second import = %v; want %v", sum, want)
	}
	if w := svc.writeLog(); len(w) != writes {
		t.Errorf("second import wrote %q", w[writes:])
	}

	// A token promoted at Twilio is rotated in, with the default grace; a
	// reactivated account loses its mark; a renamed one is renamed.
	oldFP := svc.get(f.subs[4]).AuthTokenFingerprint
	newToken := tw.ChangeAuthToken(f.subs[4])
	tw.SetStatus(suspended, twiliotest.Active)
	tw.SetFriendlyName(f.subs[5], "customer F renamed")
	sum, err = Import(t.Context(), c, svc, log)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Summary{Updated: 3, Unchanged: 3}); sum != want {
		t.Errorf("third import = %v; want %v", sum, want)
	}
	got := svc.get(f.subs[4])
	if got.AuthTokenFingerprint != store.Secret(newToken).Fingerprint() || got.PreviousAuthTokenFingerprint != oldFP {
		t.Errorf("rotated account: token %s previous %s; want %s and %s", got.AuthTokenFingerprint,
			got.PreviousAuthTokenFingerprint, store.Secret(newToken).Fingerprint(), oldFP)
	}
	if d := time.Until(got.PreviousExpireTime.AsTime()); d < 23*time.Hour || d > 24*time.Hour {
		t.Errorf("grace of the rotated-in token ends in %v; want the default 24h", d)
	}
	if svc.get(suspended).Suspended || svc.get(f.subs[5]).FriendlyName != "customer F renamed" {
		t.Error("status or friendly name change not imported")
	}
	if strings.Contains(logs.String(), newToken) || strings.Contains(logs.String(), f.token) {
		t.Error("a token appears in the log")
	}

	// While a rotation waits for its promotion at Twilio, twilioguard is
	// ahead: Twilio's token is twilioguard's previous one. Left alone.
	svc.put(&twilioguardv1.Account{Sid: f.subs[6], FriendlyName: "customer G"}, "newsecondary", tw.AuthToken(f.subs[6]), time.Now().Add(time.Hour))
	if sum, err = Import(t.Context(), c, svc, log); err != nil || sum.Updated != 0 {
		t.Errorf("import during a rotation = %v, %v; want nothing updated", sum, err)
	}
}

func TestImportWithAPIKey(t *testing.T) {
	t.Parallel()
	f := newFamily(t, 2)
	key, secret := f.tw.NewAPIKey(f.parent)
	c, _ := newTestClient(t, f.tw, Credentials{AccountSID: f.parent, APIKey: key, Secret: store.Secret(secret)})
	svc := newMemAccounts()
	sum, err := Import(t.Context(), c, svc, nil)
	if err != nil || sum.Added != 3 {
		t.Fatalf("import with an API key = %v, %v; want 3 added", sum, err)
	}
	if got := svc.get(f.parent); got.AuthTokenFingerprint != store.Secret(f.token).Fingerprint() {
		t.Error("the parent's auth token was not imported")
	}
}

// TestImportTwilioErrors checks that an error from Twilio ends the import
// with a clear message and changes nothing, and that a 429 is retried.
func TestImportTwilioErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		fault  twiliotest.Fault
		creds  func(f *family) Credentials
		want   string // in the error; "" for success
		waits  []time.Duration
		status int
	}{
		{
			name:   "wrong credentials",
			creds:  func(f *family) Credentials { return tokenCreds(f.parent, strings.Repeat("0", 32)) },
			want:   "the credentials were refused",
			status: http.StatusUnauthorized,
		},
		{
			name:  "429 then success",
			fault: twiliotest.Fault{Status: http.StatusTooManyRequests, RetryAfter: "3", Times: 2},
			waits: []time.Duration{3 * time.Second, 3 * time.Second},
		},
		{
			name:   "429 for too long",
			fault:  twiliotest.Fault{Status: http.StatusTooManyRequests, RetryAfter: "600"},
			want:   "rate limited; try again in 10m0s",
			status: http.StatusTooManyRequests,
		},
		{
			name:   "500",
			fault:  twiliotest.Fault{Status: http.StatusInternalServerError, Path: "/2010-04-01/Accounts.json"},
			want:   "after 4 attempts: Twilio had a problem",
			waits:  []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second},
			status: http.StatusInternalServerError,
		},
		{
			name:   "503 page from a proxy",
			fault:  twiliotest.Fault{Status: http.StatusServiceUnavailable, Body: "<html>down</html>", Times: 10},
			want:   "Twilio answered 503 Service Unavailable to GET api.twilio.com/2010-04-01/Accounts.json after 4 attempts",
			waits:  []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second},
			status: http.StatusServiceUnavailable,
		},
		{
			name:   "404",
			fault:  twiliotest.Fault{Status: http.StatusNotFound},
			want:   "not found",
			status: http.StatusNotFound,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFamily(t, 4)
			creds := tokenCreds(f.parent, f.token)
			if tt.creds != nil {
				creds = tt.creds(f)
			}
			c, w := newTestClient(t, f.tw, creds)
			if tt.fault.Status != 0 {
				f.tw.Inject(tt.fault)
			}
			svc := newMemAccounts()
			sum, err := Import(t.Context(), c, svc, nil)
			if tt.want == "" {
				if err != nil || sum.Added != 5 {
					t.Fatalf("Import = %v, %v; want 5 added", sum, err)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("Import error = %v; want it to contain %q", err, tt.want)
				}
				var te *Error
				if !errors.As(err, &te) || te.Status != tt.status {
					t.Errorf("error %v is not a Twilio *Error with status %d", err, tt.status)
				}
				if strings.Contains(err.Error(), f.token) {
					t.Error("the error shows the token")
				}
				if w := svc.writeLog(); len(w) != 0 {
					t.Errorf("a failed import changed %q", w)
				}
			}
			if got := w.list(); !slices.Equal(got, tt.waits) {
				t.Errorf("retry waits = %v; want %v", got, tt.waits)
			}
		})
	}
}

func TestImportServiceErrors(t *testing.T) {
	t.Parallel()
	f := newFamily(t, 1)
	c, _ := newTestClient(t, f.tw, tokenCreds(f.parent, f.token))
	svc := newMemAccounts()
	svc.fail = connect.NewError(connect.CodeUnavailable, errors.New("the account store is unavailable"))
	_, err := Import(t.Context(), c, svc, nil)
	if err == nil || !strings.Contains(err.Error(), "twilioguard: list twilioguard's accounts: unavailable") {
		t.Errorf("Import with the service down: %v", err)
	}
}
