package signature

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestDiagnose(t *testing.T) {
	t.Parallel()
	const secret = "diagnose-secret-0123456789"
	creds := []Credential{{Name: "auth_token", Secret: secret}}
	params := url.Values{"Body": {"hi there"}, "From": {"+14155550199"}, "FromCity": {"PARIS"}}
	tests := []struct {
		name     string
		received Request
		signed   string     // the URL the signature covers
		sigVals  url.Values // the params it covers (default: received)
		secret   string     // default: secret
		want     string     // substring of the hint; "" for none
	}{
		{"http behind proxy", Request{URL: "http://example.com/sms"}, "https://example.com/sms", nil, "", "https:// form"},
		{"http proxy with port", Request{URL: "http://example.com:8080/sms"}, "https://example.com/sms", nil, "", "https:// form"},
		{"https configured as http", Request{URL: "https://example.com/sms"}, "http://example.com/sms", nil, "", "http:// form"},
		{"port dropped", Request{URL: "https://example.com/sms"}, "https://example.com:8443/sms", nil, "", "port :8443"},
		{"host case", Request{URL: "https://Example.COM/sms"}, "https://example.com/sms", nil, "", "host in lower case"},
		{"scheme case", Request{URL: "HTTPS://example.com/sms"}, "https://example.com/sms", nil, "", "lower-case scheme"},
		{"trailing slash added", Request{URL: "https://example.com/sms/"}, "https://example.com/sms", nil, "", "without its trailing slash"},
		{"trailing slash removed", Request{URL: "https://example.com/sms?a=1"}, "https://example.com/sms/?a=1", nil, "", "with a trailing slash"},
		{"plus re-encoded", Request{URL: "https://example.com/sms?q=a%20b"}, "https://example.com/sms?q=a+b", nil, "", "+ for %20"},
		{"percent20 re-encoded", Request{URL: "https://example.com/sms?q=a+b"}, "https://example.com/sms?q=a%20b", nil, "", "%20 for +"},
		{"apostrophe", Request{URL: "https://example.com/sms?n=O%27B"}, "https://example.com/sms?n=O'B", nil, "", "' for %27"},
		{"hex case", Request{URL: "https://example.com/sms?x=%2f"}, "https://example.com/sms?x=%2F", nil, "", "upper-case %-escapes"},
		{"query reordered", Request{URL: "https://example.com/sms?b=2&a=1"}, "https://example.com/sms?a=1&b=2", nil, "", "another order"},
		{"query added", Request{URL: "https://example.com/sms?utm=x"}, "https://example.com/sms", nil, "", "without its query string"},
		{"fragment", Request{URL: "https://example.com/sms#rc=2"}, "https://example.com/sms", nil, "", "without its fragment"},
		{"get params passed", Request{URL: "https://example.com/sms?Body=hi"}, "https://example.com/sms?Body=hi", url.Values{}, "", "covers the URL only"},
		{"plus not decoded", Request{URL: "https://example.com/sms", Params: url.Values{"Body": {"hi+there"}}},
			"https://example.com/sms", url.Values{"Body": {"hi there"}}, "", "'+' decoded as a space"},
		{"not percent-decoded", Request{URL: "https://example.com/sms", Params: url.Values{"From": {"%2B1415"}}},
			"https://example.com/sms", url.Values{"From": {"+1415"}}, "", "percent-decoded"},
		{"empty param dropped", Request{URL: "https://example.com/sms"}, "https://example.com/sms",
			url.Values{"Body": {"hi there"}, "From": {"+14155550199"}, "FromCity": {"PARIS"}, "FromZip": {""}}, "", "FromZip"},
		{"first value only", Request{URL: "https://example.com/sms", Params: url.Values{"A": {"2", "1"}}},
			"https://example.com/sms", url.Values{"A": {"2"}}, "", "first value"},
		{"empty token", Request{URL: "https://example.com/sms"}, "https://example.com/sms", nil, "-", "empty secret"},
		{"wrong token", Request{URL: "https://example.com/sms"}, "https://example.com/sms", nil, "other-secret", ""},
		{"unrelated url", Request{URL: "https://example.com/sms"}, "https://other.example/voice", nil, "", ""},
	}
	for _, tt := range tests {
		req := tt.received
		if req.Params == nil {
			req.Params = params
		}
		vals := tt.sigVals
		if vals == nil {
			vals = req.Params
		}
		s := secret
		switch tt.secret {
		case "-":
			s = ""
		case "":
		default:
			s = tt.secret
		}
		req.Signature = Sign(s, tt.signed, vals)
		if _, err := Check(&req, creds); !errors.Is(err, ErrMismatch) {
			t.Errorf("%s: Check = %v, want ErrMismatch", tt.name, err)
			continue
		}
		got := Diagnose(&req, creds)
		if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
			t.Errorf("%s: Diagnose = %q, want it to contain %q", tt.name, got, tt.want)
		}
		if strings.Contains(got, secret) {
			t.Errorf("%s: Diagnose leaks the secret: %q", tt.name, got)
		}
	}
}

func TestDiagnoseBodyMode(t *testing.T) {
	t.Parallel()
	creds := []Credential{{Name: "auth_token", Secret: "s"}}
	req := &Request{
		URL: "http://example.com/sms", HasBody: true, ContentType: "application/x-www-form-urlencoded",
		Body: []byte("Body=hi&CalledCity="), Signature: Sign("s", "https://example.com/sms", url.Values{"Body": {"hi"}, "CalledCity": {""}}),
	}
	if got := Diagnose(req, creds); !strings.Contains(got, "https://") {
		t.Errorf("Diagnose = %q, want the https hint", got)
	}
}

func TestDiagnoseNotAMismatch(t *testing.T) {
	t.Parallel()
	creds := []Credential{{Name: "auth_token", Secret: "s"}}
	for _, req := range []*Request{
		{URL: "https://example.com/", Signature: ""},
		{URL: "https://example.com/", Signature: "not base64"},
		{URL: "not a url", Signature: Sign("s", "https://example.com/", nil)},
	} {
		if got := Diagnose(req, creds); got != "" {
			t.Errorf("Diagnose(%+v) = %q, want \"\"", req, got)
		}
	}
	if got := Diagnose(&Request{URL: "http://example.com/", Signature: Sign("s", "https://example.com/", nil)}, nil); got != "" {
		t.Errorf("Diagnose without credentials = %q, want \"\"", got)
	}
}
