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

// TestDiagnoseTypicalWebhooks checks that the default budget finds every
// common near miss on the benchmark's SMS and voice webhooks, and that it
// tries every near miss of a signature none explains.
func TestDiagnoseTypicalWebhooks(t *testing.T) {
	t.Parallel()
	creds := []Credential{NewCredential("auth_token", benchToken, HMACSHA1)}
	type nearMissCase struct {
		name             string
		received, signed string
		params, sigVals  url.Values // as received, as signed
		want             string
	}
	for _, hook := range []struct {
		name, url, slashed string
		params             url.Values
		empty              string // a parameter whose value is empty
	}{
		{"sms", smsURL, smsURL + "/", smsParams, "ToZip"},
		{"voice", voiceURL + "+corp", strings.Replace(voiceURL+"+corp", "?", "/?", 1), voiceParams, "CallerZip"},
	} {
		without := url.Values{}
		for k, v := range hook.params {
			if k != hook.empty {
				without[k] = v
			}
		}
		repeated := url.Values{}
		for k, v := range hook.params {
			repeated[k] = v
		}
		repeated["From"] = []string{hook.params.Get("From"), "+15555550100"}
		tests := []nearMissCase{
			{"https behind a proxy", strings.Replace(hook.url, "https://", "http://", 1), hook.url, hook.params, hook.params, "https:// form"},
			{"port dropped", hook.url, strings.Replace(hook.url, ".com/", ".com:8443/", 1), hook.params, hook.params, "port :8443"},
			{"trailing slash added", hook.slashed, hook.url, hook.params, hook.params, "without its trailing slash"},
			{"empty param dropped", hook.url, hook.url, without, hook.params, hook.empty},
			{"repeated key, first value", hook.url, hook.url, repeated, hook.params, "first value"},
			{"wrong token", hook.url, "", hook.params, nil, ""},
		}
		if strings.Contains(hook.url, "+") {
			tests = append(tests, nearMissCase{"query re-encoded", strings.Replace(hook.url, "+", "%20", 1), hook.url,
				hook.params, hook.params, "+ for %20"})
		}
		for _, tt := range tests {
			req := Request{URL: tt.received, Params: tt.params, Signature: Sign("other", hook.url, hook.params)}
			if tt.signed != "" {
				req.Signature = Sign(benchToken, tt.signed, tt.sigVals)
			}
			if _, err := Check(&req, creds); !errors.Is(err, ErrMismatch) {
				t.Fatalf("%s %s: Check = %v", hook.name, tt.name, err)
			}
			got, hashed := DiagnoseBudget(&req, creds, -1)
			if !strings.Contains(got, tt.want) || tt.want == "" && got != "" {
				t.Errorf("%s %s: hint %q, want it to contain %q", hook.name, tt.name, got, tt.want)
			}
			// An unbounded search hashes no more: the default cut nothing.
			if _, all := DiagnoseBudget(&req, creds, 1<<40); all != hashed {
				t.Errorf("%s %s: hashed %d bytes within the default budget, %d without bound", hook.name, tt.name, hashed, all)
			}
			if budget := DefaultDiagnoseBudget(req.Size()); hashed > budget {
				t.Errorf("%s %s: hashed %d bytes, over the budget %d", hook.name, tt.name, hashed, budget)
			}
			// The same request with its parameters as a list gets the same hint.
			fields := Request{URL: req.URL, Fields: fieldsOf(req.Params), Signature: req.Signature}
			if h, n := DiagnoseBudget(&fields, creds, -1); h != got || n != hashed {
				t.Errorf("%s %s: with Fields, hint %q after %d bytes; with Params %q after %d", hook.name, tt.name, h, n, got, hashed)
			}
		}
	}
}

// TestDiagnoseBound checks that a diagnosis hashes no more than its bound:
// a large request gets only the first near misses tried, one over 1 MiB
// none, and an explicit bound is kept.
func TestDiagnoseBound(t *testing.T) {
	t.Parallel()
	creds := []Credential{NewCredential("auth_token", benchToken, HMACSHA1)}
	const form = "application/x-www-form-urlencoded"
	large := func(n int, received, signed string) *Request {
		params := url.Values{"AccountSid": {"AC1"}, "Body": {strings.Repeat("x", n)}}
		return &Request{URL: received, Body: []byte(params.Encode()), ContentType: form, HasBody: true,
			Signature: Sign(benchToken, signed, params)}
	}
	httpURL := strings.Replace(smsURL, "https://", "http://", 1)
	tests := []struct {
		name       string
		req        *Request
		maxBytes   int
		want       string
		wantHashed func(signedLen int) bool
	}{
		{"512 KiB, https behind a proxy: tried first", large(512<<10, httpURL, smsURL), -1, "https:// form",
			func(l int) bool { return l <= 512<<10+100 && l > 512<<10 }},
		{"512 KiB, trailing slash: over the budget", large(512<<10, smsURL+"/", smsURL), -1, "",
			func(l int) bool { return l > 2*512<<10 && l <= DefaultDiagnoseBudget(512<<10+100) }},
		{"over 1 MiB: not diagnosed", large(1<<20, httpURL, smsURL), -1, "",
			func(l int) bool { return l == 0 }},
		{"explicit bound", large(100, smsURL+"/", smsURL), 1000, "",
			func(l int) bool { return l > 0 && l <= 1000 }},
		{"zero bound", large(100, httpURL, smsURL), 0, "",
			func(l int) bool { return l == 0 }},
		{"bound that fits the match", large(100, httpURL, smsURL), 1000, "https:// form",
			func(l int) bool { return l > 0 && l <= 1000 }},
	}
	for _, tt := range tests {
		if _, err := Check(tt.req, creds); !errors.Is(err, ErrMismatch) {
			t.Fatalf("%s: Check = %v", tt.name, err)
		}
		hint, hashed := DiagnoseBudget(tt.req, creds, tt.maxBytes)
		if !strings.Contains(hint, tt.want) || tt.want == "" && hint != "" {
			t.Errorf("%s: hint %q, want it to contain %q", tt.name, hint, tt.want)
		}
		if !tt.wantHashed(hashed) {
			t.Errorf("%s: hashed %d bytes", tt.name, hashed)
		}
		if tt.maxBytes < 0 {
			if got := Diagnose(tt.req, creds); got != hint {
				t.Errorf("%s: Diagnose = %q, DiagnoseBudget with the default = %q", tt.name, got, hint)
			}
		}
	}
	if got := DefaultDiagnoseBudget(1000); got != 64<<10+2000 {
		t.Errorf("DefaultDiagnoseBudget(1000) = %d", got)
	}
	if got := DefaultDiagnoseBudget(1<<20 + 1); got != 0 {
		t.Errorf("DefaultDiagnoseBudget(1 MiB + 1) = %d, want 0", got)
	}
}
