package webhookreq

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadBody(t *testing.T) {
	t.Parallel()
	const body = "AccountSid=AC1&Body=hi"
	tests := []struct {
		name     string
		body     io.Reader
		length   int64
		limit    int64
		want     string
		wantErr  error
		restored string // what r.Body yields afterwards
	}{
		{name: "fits", body: strings.NewReader(body), length: int64(len(body)), limit: 64, want: body, restored: body},
		{name: "exactly the limit", body: strings.NewReader(body), length: -1, limit: int64(len(body)), want: body, restored: body},
		{name: "declared too large", body: strings.NewReader(body), length: int64(len(body)), limit: 4, wantErr: ErrBodyTooLarge, restored: body},
		{name: "chunked too large", body: strings.NewReader(body), length: -1, limit: 4, wantErr: ErrBodyTooLarge, restored: body},
		{name: "read error", body: iotest.ErrReader(errors.New("bad chunk")), length: -1, limit: 64, wantErr: errors.New("bad chunk")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodPost, "/sms", tt.body)
			r.ContentLength = tt.length
			got, err := ReadBody(r, tt.limit)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("error %v; want none", err)
			case tt.wantErr != nil && (err == nil || !errors.Is(err, tt.wantErr) && !strings.Contains(err.Error(), tt.wantErr.Error())):
				t.Fatalf("error %v; want %v", err, tt.wantErr)
			}
			if string(got) != tt.want {
				t.Errorf("body = %q; want %q", got, tt.want)
			}
			if tt.restored != "" {
				rest, _ := io.ReadAll(r.Body)
				if string(rest) != tt.restored {
					t.Errorf("r.Body yields %q afterwards; want %q", rest, tt.restored)
				}
			}
		})
	}
}

func TestRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		method, contentType, body string
		wantBodyMode              bool
	}{
		{"POST", "application/x-www-form-urlencoded", "a=1", true},
		{"POST", "application/x-www-form-urlencoded", "", true}, // an empty form is still a form
		{"POST", "", "", false},
		{"GET", "", "", false},
		{"GET", "application/json", "", false}, // a GET's content type means nothing
		{"GET", "", "x", true},                 // but a body does
		{"HEAD", "text/plain", "", false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, "/sms", strings.NewReader(tt.body))
		if tt.contentType != "" {
			r.Header.Set("Content-Type", tt.contentType)
		}
		r.Header.Set("X-Twilio-Signature", "sig")
		r.Header.Set("X-Twilio-Webhooks-Signature-Settings", "key=k")
		r.Header.Set("I-Twilio-Idempotency-Token", "tok")
		req := Request(r, "https://example.com/sms", []byte(tt.body))
		gotBodyMode := req.GetContentType() != "" || len(req.GetBody()) > 0
		if gotBodyMode != tt.wantBodyMode {
			t.Errorf("%s %q %q: body mode %v; want %v", tt.method, tt.contentType, tt.body, gotBodyMode, tt.wantBodyMode)
		}
		if req.GetUrl() != "https://example.com/sms" || req.GetSignature() != "sig" ||
			req.GetSignatureSettings() != "key=k" || req.GetIdempotencyToken() != "tok" {
			t.Errorf("request = %v; want URL, signature, settings and idempotency token", req)
		}
	}
}

func TestStripInjected(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	for _, name := range []string{
		"X-Twilioguard-Verified", "x-twilioguard-verified", "X_twilioguard_verified", "X-Twilioguard_Duplicate",
		"X-Twilio-Account-Sid", "X_Twilio_Account_Sid", "X-TwilioGuard-Anything",
	} {
		h[name] = []string{"forged"}
	}
	h.Set("X-Twilio-Signature", "kept")
	h.Set("X-Twilio-Account-Sid-Other", "kept")
	StripInjected(h)
	if len(h) != 2 || h.Get("X-Twilio-Signature") != "kept" || h.Get("X-Twilio-Account-Sid-Other") != "kept" {
		t.Errorf("after StripInjected: %v; want only the two unrelated headers", h)
	}
}

func TestIsInjected(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"x-twilioguard-verified":    true,
		"X-TWILIOGUARD-VERIFIED":    true,
		"X_Twilioguard_Account_Sid": true,
		"x-twilioguard-":            true,
		"x-twilio-account-sid":      true,
		"X_TWILIO_ACCOUNT_SID":      true,
		"x-twilio-account-sid-x":    false,
		"x-twilio-account-si":       false,
		"x-twilioguard":             false,
		"x-twilioguardverified":     false,
		"x-twilio-signature":        false,
		"content-type":              false,
		"":                          false,
		"x-twİlioguard-verified":    false, // U+0130 is not an ASCII I
		"x-twilioguard\x00verified": false,
	} {
		if got := IsInjected(name); got != want {
			t.Errorf("IsInjected(%q) = %v, want %v", name, got, want)
		}
	}
	// The same answer as folding the whole name, for every spelling of
	// every prefix of the injected names.
	for _, base := range []string{"x-twilioguard-verified", "x-twilio-account-sid"} {
		for n := range len(base) + 1 {
			for _, spell := range []func(string) string{strings.ToUpper, strings.ToLower, func(s string) string { return strings.ReplaceAll(s, "-", "_") }} {
				name := spell(base[:n])
				folded := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
				want := strings.HasPrefix(folded, "x-twilioguard-") || folded == "x-twilio-account-sid"
				if got := IsInjected(name); got != want {
					t.Errorf("IsInjected(%q) = %v, want %v", name, got, want)
				}
			}
		}
	}
}
