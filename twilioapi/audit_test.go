package twilioapi

import (
	"net/http"
	"strings"
	"testing"
	"time"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/twilioapi/twiliotest"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	var bases []BaseURL
	for _, raw := range []string{"https://a.example/twilio", "https://b.example:8443/", "https://C.example/hooks/"} {
		b, err := ParseBaseURL(raw)
		if err != nil {
			t.Fatal(err)
		}
		bases = append(bases, b)
	}
	tests := []struct {
		url  string
		held bool
		want URLStatus
	}{
		{"https://a.example/twilio", true, Protected},
		{"https://a.example/twilio/sms?x=1", true, Protected},
		{"https://a.example:443/twilio/voice", true, Protected},
		{"https://A.EXAMPLE/twilio/voice", true, Protected},
		{"https://user:pw@a.example/twilio/voice", true, Protected},
		{"https://a.example/twilio/sms", false, UnknownAccount},
		{"https://a.example/twilio-evil", true, Unprotected},
		{"https://a.example/twiliox/sms", true, Unprotected},
		{"https://a.example.evil.com/twilio/sms", true, Unprotected},
		{"https://evil.com/a.example/twilio", true, Unprotected},
		{"https://a.example/other", true, Unprotected},
		{"https://a.example/twilio/../admin", true, Unprotected},
		{"https://a.example/", true, Unprotected},
		{"https://a.example:8443/twilio/sms", true, Unprotected},
		{"http://a.example/twilio/sms", true, Insecure},
		{"http://a.example/twilio/sms", false, Insecure},
		{"https://b.example:8443/anything", true, Protected},
		{"https://b.example/anything", true, Unprotected},
		{"https://c.example/hooks", true, Protected},
		{"https://c.example/hooks/x", true, Protected},
		{"https://c.example/hooksx", true, Unprotected},
		{"ftp://a.example/twilio", true, Unprotected},
		{"not a url", true, Unprotected},
		{"/twilio/relative", true, Unprotected},
	}
	for _, tt := range tests {
		if got := Classify(tt.url, bases, tt.held); got != tt.want {
			t.Errorf("Classify(%q, held=%v) = %s; want %s", tt.url, tt.held, got, tt.want)
		}
	}
}

func TestParseBaseURL(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "a.example/twilio", "https://", "https://u:p@a.example/", "https://a.example/?q=1", "ftp://a.example/", "https://a.example:99999/"} {
		if _, err := ParseBaseURL(bad); err == nil {
			t.Errorf("ParseBaseURL(%q) accepted it", bad)
		}
	}
}

func TestAudit(t *testing.T) {
	t.Parallel()
	f := newFamily(t, 3)
	tw := f.tw
	held, notHeld, failing := f.subs[0], f.subs[1], f.subs[2]
	pnHeld := tw.AddPhoneNumber(held, twiliotest.PhoneNumber{
		Number: "+15005550006", VoiceURL: "https://hooks.example.com/twilio/voice", SMSURL: "http://hooks.example.com/twilio/sms",
		StatusCallback: "https://hooks.example.com/twilio-evil/status", VoiceFallbackURL: "https://app:s3cret@hooks.example.com/twilio/fallback",
	})
	mgHeld := tw.AddMessagingService(held, twiliotest.MessagingService{FriendlyName: "alerts", InboundRequestURL: "https://hooks.example.com/twilio/inbound"})
	pnNotHeld := tw.AddPhoneNumber(notHeld, twiliotest.PhoneNumber{Number: "+15005550007", SMSURL: "https://hooks.example.com/twilio/sms"})
	tw.AddPhoneNumber(failing, twiliotest.PhoneNumber{Number: "+15005550008", SMSURL: "https://hooks.example.com/twilio/sms"})
	// More numbers and services than a page on the parent.
	for range 4 {
		tw.AddPhoneNumber(f.parent, twiliotest.PhoneNumber{Number: "+15005550009", VoiceURL: "https://elsewhere.example/voice"})
		tw.AddMessagingService(f.parent, twiliotest.MessagingService{FriendlyName: "svc", StatusCallback: "https://elsewhere.example/status"})
	}
	tw.Inject(twiliotest.Fault{Path: "/2010-04-01/Accounts/" + failing + "/", Status: http.StatusForbidden})

	svc := newMemAccounts()
	closed, _ := tw.NewSubaccount(f.parent, "closed")
	tw.SetStatus(closed, twiliotest.Closed)
	unknown := "AC" + strings.Repeat("0", 32)
	for _, sid := range []string{f.parent, held, failing, closed, unknown} {
		svc.put(&twilioguardv1.Account{Sid: sid}, "token", "", time.Time{})
	}
	base, err := ParseBaseURL("https://hooks.example.com/twilio")
	if err != nil {
		t.Fatal(err)
	}
	c, _ := newTestClient(t, tw, tokenCreds(f.parent, f.token))
	rep, err := Audit(t.Context(), c, svc, []BaseURL{base})
	if err != nil {
		t.Fatal(err)
	}

	got := map[string]URLStatus{}
	for _, fd := range rep.Findings {
		got[fd.ResourceSID+" "+fd.Field] = fd.Status
		if strings.Contains(fd.URL, "s3cret") {
			t.Errorf("finding shows a URL's password: %s", fd.URL)
		}
	}
	want := map[string]URLStatus{
		pnHeld + " voice_url":           Protected,
		pnHeld + " sms_url":             Insecure,
		pnHeld + " status_callback":     Unprotected,
		pnHeld + " voice_fallback_url":  Protected,
		mgHeld + " inbound_request_url": Protected,
		pnNotHeld + " sms_url":          UnknownAccount,
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %q; want %q", k, got[k], w)
		}
	}
	if n := len(rep.Findings); n != len(want)+8 {
		t.Errorf("%d findings; want %d: %+v", n, len(want)+8, rep.Findings)
	}
	if rep.Counts[Unprotected] != 9 || rep.Counts[Protected] != 3 {
		t.Errorf("counts = %v", rep.Counts)
	}
	if len(rep.NotAtTwilio) != 2 || rep.NotAtTwilio[0].Account != closed && rep.NotAtTwilio[1].Account != closed {
		t.Errorf("NotAtTwilio = %+v; want the closed and the unknown account", rep.NotAtTwilio)
	}
	if len(rep.NotAudited) != 1 || rep.NotAudited[0].Account != failing || !strings.Contains(rep.NotAudited[0].Reason, "403") {
		t.Errorf("NotAudited = %+v; want %s with Twilio's 403", rep.NotAudited, failing)
	}
	// Each account's configuration was read as that account, on the right
	// host, every page.
	parentServicePages := 0
	for _, r := range tw.Requests() {
		if r.Path == "/v1/Services" && r.Host != twiliotest.HostMessaging {
			t.Errorf("%s requested on %s", r.Path, r.Host)
		}
		if r.Path == "/v1/Services" && r.User == f.parent {
			parentServicePages++
		}
		if strings.Contains(r.Path, held+"/IncomingPhoneNumbers") && r.User != held {
			t.Errorf("%s's numbers read as %s", held, r.User)
		}
	}
	if parentServicePages != 2 {
		t.Errorf("the parent's Messaging Services were read in %d pages; want 2", parentServicePages)
	}
}

func TestAuditWrongCredentials(t *testing.T) {
	t.Parallel()
	f := newFamily(t, 1)
	c, _ := newTestClient(t, f.tw, tokenCreds(f.parent, strings.Repeat("a", 32)))
	_, err := Audit(t.Context(), c, newMemAccounts(), nil)
	if err == nil || !strings.Contains(err.Error(), "the credentials were refused") {
		t.Errorf("Audit with a wrong token: %v", err)
	}
}
