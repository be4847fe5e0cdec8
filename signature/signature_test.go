package signature

import (
	"errors"
	"math/rand/v2"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Published signatures: Twilio's docs example and twilio-go's test constants.
const (
	docsURL  = "https://mycompany.com/myapp.php?foo=1&bar=2"
	docsSig  = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
	goSig    = "vOEb5UThFn24KEfnOFLQY2AE5FY="
	goJSON   = `{"property": "value", "boolean": true}`
	goHash   = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
	goJSONSg = "a9nBmqA0ju/hNViExpshrM61xv4="
	token    = "12345"
)

var (
	docsParams = url.Values{
		"CallSid": {"CA1234567890ABCDE"},
		"Caller":  {"+14158675309"},
		"Digits":  {"1234"},
		"From":    {"+14158675309"},
		"To":      {"+18005551212"},
	}
	// docsFields are docsParams as a list, in another order.
	docsFields = []Field{
		{"To", "+18005551212"}, {"Digits", "1234"}, {"CallSid", "CA1234567890ABCDE"},
		{"From", "+14158675309"}, {"Caller", "+14158675309"},
	}
	nodeParams = url.Values{
		"CallSid": {"CA1234567890ABCDE"},
		"Caller":  {"+12349013030"},
		"Digits":  {"1234"},
		"From":    {"+12349013030"},
		"To":      {"+18005551212"},
	}
	goParams = url.Values{
		"Digits":                {"1234"},
		"CallSid":               {"CA1234567890ABCDE"},
		"To":                    {"+18005551212"},
		"Caller":                {"+14158675309"},
		"From":                  {"+14158675309"},
		"ReasonConferenceEnded": {"test"},
		"Reason":                {"Participant"},
	}
)

func TestSignPublished(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		url    string
		params url.Values
		want   string
	}{
		{"docs", docsURL, docsParams, docsSig},
		{"twilio-node", docsURL, nodeParams, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="},
		{"twilio-go", docsURL, goParams, goSig},
		{"twilio-go json", docsURL + "&bodySHA256=" + goHash, nil, goJSONSg},
	}
	for _, tt := range tests {
		if got := Sign(token, tt.url, tt.params); got != tt.want {
			t.Errorf("%s: Sign = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestBodySHA256(t *testing.T) {
	t.Parallel()
	if got := BodySHA256([]byte(goJSON)); got != goHash {
		t.Errorf("BodySHA256 = %q, want %q", got, goHash)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		secret string
		url    string
		params url.Values
		sig    string
		want   error
	}{
		{"valid", token, docsURL, docsParams, docsSig, nil},
		{"port added by proxy", token, strings.Replace(docsURL, ".com", ".com:443", 1), docsParams, docsSig, nil},
		{"non-default port", token, strings.Replace(docsURL, ".com", ".com:1234", 1), goParams, goSig, nil},
		{"wrong token", "54321", docsURL, docsParams, docsSig, ErrMismatch},
		{"empty token", "", docsURL, docsParams, docsSig, ErrNoCredentials},
		{"missing", token, docsURL, docsParams, "", ErrMissingSignature},
		{"unpadded", token, docsURL, docsParams, strings.TrimSuffix(docsSig, "="), ErrMalformedSignature},
		{"url-safe", token, docsURL, docsParams, strings.ReplaceAll(docsSig, "/", "_"), ErrMalformedSignature},
		{"space", token, docsURL, docsParams, " " + docsSig[1:], ErrMalformedSignature},
		{"sha256 length", token, docsURL, docsParams, strings.Repeat("A", 43) + "=", ErrMalformedSignature},
		{"non-canonical", token, docsURL, docsParams, docsSig[:26] + "9=", ErrMalformedSignature},
		{"tampered", token, docsURL, url.Values{"Digits": {"1235"}}, docsSig, ErrMismatch},
		{"bad url", token, "mycompany.com/x", docsParams, docsSig, ErrMalformedRequest},
	}
	for _, tt := range tests {
		if err := Verify(tt.secret, tt.url, tt.params, tt.sig); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("%s: Verify = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestVerifyBody(t *testing.T) {
	t.Parallel()
	jsonURL := docsURL + "&bodySHA256=" + goHash
	form := "CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212"
	tests := []struct {
		name string
		url  string
		ct   string
		body string
		sig  string
		want error
	}{
		{"json", jsonURL, "application/json", goJSON, goJSONSg, nil},
		{"json tampered", jsonURL, "application/json", goJSON + " ", goJSONSg, ErrBodyHashMismatch},
		{"json no hash", docsURL, "application/json", goJSON, goJSONSg, ErrMissingBodyHash},
		{"form", docsURL, "application/x-www-form-urlencoded; charset=utf-8", form, docsSig, nil},
		{"form bad escape", docsURL, "application/x-www-form-urlencoded", form + "%zz", docsSig, ErrMalformedRequest},
		{"form with hash in url", jsonURL, "application/x-www-form-urlencoded", goJSON, goJSONSg, ErrMismatch},
	}
	for _, tt := range tests {
		err := VerifyBody(token, tt.url, tt.ct, []byte(tt.body), tt.sig)
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("%s: VerifyBody = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestURLVariants(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []string
	}{
		{"https://example.com/sms", []string{"https://example.com/sms", "https://example.com:443/sms"}},
		{"HTTP://Example.com", []string{"HTTP://Example.com", "HTTP://Example.com:80"}},
		{"https://example.com:8443/a?b=c:d", []string{"https://example.com:8443/a?b=c:d", "https://example.com/a?b=c:d"}},
		{"https://example.com:/a", []string{"https://example.com:/a", "https://example.com/a"}},
		{"https://[2001:db8::1]:8443/sms", []string{"https://[2001:db8::1]:8443/sms", "https://[2001:db8::1]/sms"}},
		{"https://[::1]/x", []string{"https://[::1]/x", "https://[::1]:443/x"}},
		{"hTTpS://h", []string{"hTTpS://h", "hTTpS://h:443"}},
		{"https://user:p%40ss@example.com:8443/x?y=@", []string{
			"https://user:p%40ss@example.com:8443/x?y=@",
			"https://user:p%40ss@example.com/x?y=@",
			"https://example.com:8443/x?y=@",
			"https://example.com/x?y=@",
		}},
		{"https://u@h?q", []string{"https://u@h?q", "https://u@h:443?q", "https://h?q", "https://h:443?q"}},
	}
	for _, tt := range tests {
		got, err := URLVariants(tt.in)
		if err != nil {
			t.Errorf("URLVariants(%q): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("URLVariants(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestURLVariantsErrors(t *testing.T) {
	t.Parallel()
	// Each URL is refused with a message that names the problem and does
	// not quote the URL (the secret in some of them must not appear).
	for _, tt := range []struct{ in, msg string }{
		{"", "empty URL"},
		{"example.com", "http:// or https://"},
		{"/sms", "http:// or https://"},
		{"https:/x", "http:// or https://"},
		{"ftp://example.com/x", "http:// or https://"},
		{"wss://example.com/x", "http:// or https://"},
		{"httpss://example.com/x", "http:// or https://"},
		{"1http://h/", "http:// or https://"},
		{"https:///x", "no host"},
		{"https://user:secret@/x", "no host"},
		{"https://[]/", "no host"},
		{"https://:443/", "no host"},
		{"https://[::1/x", "unterminated IPv6"},
		{"https://[::1]x/", "after the IPv6 literal"},
		{"https://a]b/", "misplaced bracket"},
		{"https://h:12a/", "invalid port"},
		{"https://u:secret@h:65536/", "invalid port"},
		{"https://h/\n", "control character at byte 10"},
		{"https://h/a b", "space or control character at byte 11"},
		{"https://u:secret@h/\t", "at byte 19"},
		{"https://h/\x00", "at byte 10"},
		{"https://h/\x7f", "at byte 10"},
		{" https://h/", "at byte 0"},
	} {
		_, err := URLVariants(tt.in)
		if !errors.Is(err, ErrMalformedRequest) {
			t.Errorf("URLVariants(%q) error = %v, want ErrMalformedRequest", tt.in, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, tt.msg) || strings.Contains(msg, "secret") ||
			(len(tt.in) > 8 && strings.Contains(msg, tt.in)) {
			t.Errorf("URLVariants(%q) error = %q, want it to say %q and not quote the URL", tt.in, msg, tt.msg)
		}
	}
}

func TestParseForm(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body string
		want url.Values
	}{
		{"", url.Values{}},
		{"a=1&b=&c", url.Values{"a": {"1"}, "b": {""}, "c": {""}}},
		{"k=2&k=1&k=2", url.Values{"k": {"2", "1", "2"}}},
		{"a+b=c+d%2B%20e&&x=%C3%A9;y", url.Values{"a b": {"c d+ e"}, "x": {"é;y"}}},
		{"=v&%3D=%26", url.Values{"": {"v"}, "=": {"&"}}},
		{"a=%2b%2B", url.Values{"a": {"++"}}},
		{"k=%FF&k=%E2%82A&k=%C0%AF&%ED%A0%80=%F4%90%80%80", url.Values{
			"k": {"\uFFFD", "\uFFFDA", "\uFFFD\uFFFD"}, "\uFFFD\uFFFD\uFFFD": {"\uFFFD\uFFFD\uFFFD\uFFFD"},
		}},
		{"k=%F0%9F%98&j=%F0%9F%98%80%80&i=%E0%80%80&h=%C3&g=a%80b", url.Values{
			"k": {"\uFFFD"}, "j": {"😀\uFFFD"}, "i": {"\uFFFD\uFFFD\uFFFD"}, "h": {"\uFFFD"}, "g": {"a\uFFFDb"},
		}},
	}
	for _, tt := range tests {
		got, err := ParseForm([]byte(tt.body))
		if err != nil {
			t.Errorf("ParseForm(%q): %v", tt.body, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseForm(%q) (-want +got):\n%s", tt.body, diff)
		}
	}
	for _, body := range []string{"a=%", "a=%2", "a=%zz", "%g0=1", "a=1&b=%2x"} {
		if _, err := ParseForm([]byte(body)); !errors.Is(err, ErrMalformedRequest) {
			t.Errorf("ParseForm(%q) error = %v, want ErrMalformedRequest", body, err)
		}
	}
}

func TestParseSettings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Settings
		wantErr error
	}{
		{"key=KS1,algorithm=HMAC_SHA256", Settings{"KS1", HMACSHA256}, nil},
		{" algorithm = hmac_sha1 , key = KS1 ", Settings{"KS1", HMACSHA1}, nil},
		{"key=KS1", Settings{"KS1", HMACSHA1}, nil},
		{"key=KS1,version=2,", Settings{"KS1", HMACSHA1}, nil},
		{"", Settings{}, ErrMalformedRequest},
		{"algorithm=HMAC_SHA256", Settings{}, ErrMalformedRequest},
		{"key=", Settings{}, ErrMalformedRequest},
		{"key=a,key=b", Settings{}, ErrMalformedRequest},
		{"key=a,algorithm=HMAC_SHA1,algorithm=HMAC_SHA256", Settings{}, ErrMalformedRequest},
		{"key", Settings{}, ErrMalformedRequest},
		{"key=a,algorithm=HMAC_MD5", Settings{}, ErrAlgorithmNotAllowed},
		{"key=a,algorithm=HMAC_MD5", Settings{}, ErrMalformedRequest},
	}
	for _, tt := range tests {
		got, err := ParseSettings(tt.in)
		if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
			t.Errorf("ParseSettings(%q) error = %v, want %v", tt.in, err, tt.wantErr)
		}
		if got != tt.want {
			t.Errorf("ParseSettings(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	sk := "sharedkeysecret"
	u256 := "https://example.com:8443/hook"
	sig256 := SignWith(HMACSHA256, sk, "https://example.com/hook", docsParams)
	creds := []Credential{
		{Name: "KS1", Secret: sk, Algorithm: HMACSHA256},
		{Name: "auth_token", Secret: "new"},
		{Name: "previous_auth_token", Secret: token},
	}
	tests := []struct {
		name    string
		req     Request
		creds   []Credential
		want    Match
		wantErr error
	}{
		{"previous token", Request{URL: docsURL, Params: docsParams, Signature: docsSig}, creds,
			Match{Credential: 2, URL: docsURL}, nil},
		{"shared key sha256 without port", Request{URL: u256, Params: docsParams, Signature: sig256}, creds,
			Match{Credential: 0, URL: "https://example.com/hook"}, nil},
		{"sha256 signature with sha1 keys only", Request{URL: u256, Params: docsParams, Signature: sig256}, creds[1:],
			Match{}, ErrMalformedSignature},
		{"empty secrets", Request{URL: docsURL, Signature: docsSig}, []Credential{{Name: "a"}}, Match{}, ErrNoCredentials},
		{"unknown algorithm skipped", Request{URL: docsURL, Signature: docsSig},
			[]Credential{{Secret: token, Algorithm: 9}}, Match{}, ErrNoCredentials},
		{"params and body", Request{URL: docsURL, Params: docsParams, HasBody: true, Signature: docsSig}, creds,
			Match{}, ErrMalformedRequest},
		{"fields", Request{URL: docsURL, Fields: docsFields, Signature: docsSig}, creds,
			Match{Credential: 2, URL: docsURL}, nil},
		{"fields and params", Request{URL: docsURL, Params: docsParams, Fields: docsFields, Signature: docsSig}, creds,
			Match{}, ErrMalformedRequest},
		{"fields and body", Request{URL: docsURL, Fields: docsFields, HasBody: true, Signature: docsSig}, creds,
			Match{}, ErrMalformedRequest},
		{"empty body no content type", Request{URL: docsURL, HasBody: true, Signature: Sign(token, docsURL, nil)}, creds,
			Match{Credential: 2, URL: docsURL}, nil},
		{"userinfo stripped", Request{URL: "https://u:p@mycompany.com/myapp.php?foo=1&bar=2", Params: docsParams,
			Signature: docsSig}, creds, Match{Credential: 2, URL: docsURL}, nil},
		{"json hash mismatch", Request{URL: docsURL + "&bodySHA256=" + goHash, Body: []byte("{}"), HasBody: true,
			ContentType: "application/json", Signature: goJSONSg}, creds,
			Match{Credential: 2, URL: docsURL + "&bodySHA256=" + goHash}, ErrBodyHashMismatch},
		{"json hash last occurrence", Request{URL: docsURL + "&bodySHA256=" + BodySHA256([]byte("{}")) + "&bodySHA256=" + goHash,
			Body: []byte(goJSON), HasBody: true, ContentType: "application/json",
			Signature: Sign(token, docsURL+"&bodySHA256="+BodySHA256([]byte("{}"))+"&bodySHA256="+goHash, nil)}, creds,
			Match{Credential: 2, URL: docsURL + "&bodySHA256=" + BodySHA256([]byte("{}")) + "&bodySHA256=" + goHash}, nil},
	}
	for _, tt := range tests {
		got, err := Check(&tt.req, tt.creds)
		if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
			t.Errorf("%s: Check error = %v, want %v", tt.name, err, tt.wantErr)
			continue
		}
		if (err == nil || errors.Is(err, ErrBodyHashMismatch)) && got != tt.want {
			t.Errorf("%s: Check = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestRepeatedKeys(t *testing.T) {
	t.Parallel()
	// Every distinct value, sorted; the order of values and duplicates do not matter.
	a := Sign(token, docsURL, url.Values{"k": {"b", "a", "b"}, "j": {""}})
	b := Sign(token, docsURL, url.Values{"j": {""}, "k": {"a", "b"}})
	if a != b {
		t.Errorf("signatures differ: %q vs %q", a, b)
	}
	// The signed string is URL + "j" + "" + "k" + "a" + "k" + "b".
	if want := Sign(token, docsURL+"jkakb", nil); a != want {
		t.Errorf("Sign = %q, want %q", a, want)
	}
}

func TestAlgorithm(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		a    Algorithm
		want string
	}{{HMACSHA1, "HMAC_SHA1"}, {HMACSHA256, "HMAC_SHA256"}, {7, "Algorithm(7)"}} {
		if got := tt.a.String(); got != tt.want {
			t.Errorf("%d.String() = %q, want %q", tt.a, got, tt.want)
		}
	}
	if err := CheckAlgorithm(HMACSHA1, []Algorithm{HMACSHA256}); !errors.Is(err, ErrAlgorithmNotAllowed) {
		t.Errorf("CheckAlgorithm downgrade = %v, want ErrAlgorithmNotAllowed", err)
	}
	if err := CheckAlgorithm(HMACSHA256, []Algorithm{HMACSHA1, HMACSHA256}); err != nil {
		t.Errorf("CheckAlgorithm allowed = %v", err)
	}
	if SignWith(9, token, docsURL, nil) != "" {
		t.Errorf("SignWith(unknown) is not empty")
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want string }{
		{"https://example.com/sms?x=1", "https://example.com/sms?x=1"},
		{"https://user:secret@example.com:8443/sms?x=@", "https://user:xxxxx@example.com:8443/sms?x=@"},
		{"https://user@example.com/", "https://user@example.com/"},
		{"https://u:p@ss@[::1]/x", "https://u:xxxxx@[::1]/x"},
		{"https://u:p@:99999/", "https://xxxxx"},
		{"not a url", "not a url"},
	} {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	const form = "application/x-www-form-urlencoded"
	tests := []struct {
		name string
		req  Request
		ok   bool
	}{
		{"params", Request{URL: "https://x.example/sms", Params: url.Values{"a": {"1"}}}, true},
		{"form body", Request{URL: "https://x.example/sms", Body: []byte("a=%41&b=+"), ContentType: form, HasBody: true}, true},
		{"JSON body with percent", Request{URL: "https://x.example/e", Body: []byte(`{"a":"%zz"}`), ContentType: "application/json", HasBody: true}, true},
		{"no scheme", Request{URL: "x.example/sms"}, false},
		{"IPv6 unterminated", Request{URL: "https://[::1/sms"}, false},
		{"bad escape", Request{URL: "https://x.example/sms", Body: []byte("a=1&b=%z1"), ContentType: form, HasBody: true}, false},
		{"escape cut short", Request{URL: "https://x.example/sms", Body: []byte("a=%4"), ContentType: form, HasBody: true}, false},
		{"params and body", Request{URL: "https://x.example/sms", Params: url.Values{"a": {"1"}}, Body: []byte("a=1"), ContentType: form, HasBody: true}, false},
		{"fields", Request{URL: "https://x.example/sms", Fields: []Field{{"a", "1"}, {"a", "2"}}}, true},
		{"fields and params", Request{URL: "https://x.example/sms", Params: url.Values{"a": {"1"}}, Fields: []Field{{"a", "1"}}}, false},
		{"fields and body", Request{URL: "https://x.example/sms", Fields: []Field{{"a", "1"}}, Body: []byte("a=1"), ContentType: form, HasBody: true}, false},
		{"upper-case scheme", Request{URL: "HTTPS://x.example/sms"}, true},
		{"other scheme", Request{URL: "ftp://x.example/sms"}, false},
		{"space", Request{URL: "https://x.example/a b"}, false},
		{"tab", Request{URL: "https://x.example/a\tb"}, false},
		{"DEL", Request{URL: "https://x.example/a\x7fb"}, false},
		{"no host", Request{URL: "https:///sms"}, false},
		{"bad port", Request{URL: "https://x.example:0x1/sms"}, false},
		{"high bytes are not control characters", Request{URL: "https://x.example/caf\xc3\xa9"}, true},
	}
	for _, tt := range tests {
		err := Validate(&tt.req)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrMalformedRequest)) {
			t.Errorf("%s: Validate = %v; want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil {
			req := tt.req
			req.Signature = "AAAAAAAAAAAAAAAAAAAAAAAAAAA=" // well formed, so Check reaches the request
			if _, cerr := Check(&req, []Credential{{Secret: "t"}}); !errors.Is(cerr, ErrMalformedRequest) {
				t.Errorf("%s: Check = %v; want the ErrMalformedRequest Validate gave", tt.name, cerr)
			}
		}
	}
}

func TestControlAt(t *testing.T) {
	t.Parallel()
	naive := func(s string) int {
		for i := range len(s) {
			if s[i] < 0x21 || s[i] == 0x7f {
				return i
			}
		}
		return -1
	}
	for n := range 20 {
		for p := range n {
			for c := range 256 {
				b := []byte(strings.Repeat("a", n))
				b[p] = byte(c)
				if n > 12 {
					b[n-1] = 0x7f // a later match must not hide an earlier one
				}
				if got, want := controlAt(string(b)), naive(string(b)); got != want {
					t.Fatalf("controlAt(%q) = %d, want %d", b, got, want)
				}
			}
		}
	}
}

func TestNewCredential(t *testing.T) {
	t.Parallel()
	sig256 := SignWith(HMACSHA256, "sk", docsURL, docsParams)
	long := strings.Repeat("k", 100) // longer than a block: hashed first
	tests := []struct {
		name string
		cred Credential
		sig  string
		want error
	}{
		{"auth token", NewCredential("auth_token", token, HMACSHA1), docsSig, nil},
		{"zero algorithm is HMAC-SHA1", NewCredential("auth_token", token, 0), docsSig, nil},
		{"SharedKey HMAC-SHA256", NewCredential("KS1", "sk", HMACSHA256), sig256, nil},
		{"long secret", NewCredential("auth_token", long, HMACSHA1), Sign(long, docsURL, docsParams), nil},
		{"long secret HMAC-SHA256", NewCredential("KS1", long, HMACSHA256), SignWith(HMACSHA256, long, docsURL, docsParams), nil},
		{"wrong token", NewCredential("auth_token", "54321", HMACSHA1), docsSig, ErrMismatch},
		{"empty secret", NewCredential("auth_token", "", HMACSHA1), docsSig, ErrNoCredentials},
		{"unknown algorithm", NewCredential("x", token, 9), docsSig, ErrNoCredentials},
		{"SHA-1 signature, SHA-256 key", NewCredential("KS1", token, HMACSHA256), docsSig, ErrMalformedSignature},
	}
	for _, tt := range tests {
		req := Request{URL: docsURL, Params: docsParams, Signature: tt.sig}
		_, err := Check(&req, []Credential{tt.cred})
		if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
			t.Errorf("%s: Check = %v, want %v", tt.name, err, tt.want)
		}
		// A struct literal with the same fields decides the same.
		literal := Credential{Name: tt.cred.Name, Secret: tt.cred.Secret, Algorithm: tt.cred.Algorithm}
		if _, lerr := Check(&req, []Credential{literal}); !errors.Is(lerr, tt.want) || (lerr == nil) != (tt.want == nil) {
			t.Errorf("%s: Check with a literal = %v, want %v", tt.name, lerr, tt.want)
		}
	}
}

func TestNewCredentialChanged(t *testing.T) {
	t.Parallel()
	req := Request{URL: docsURL, Params: docsParams, Signature: docsSig}
	// The prepared key follows the fields: after a change, the new secret
	// or algorithm decides.
	c := NewCredential("auth_token", "54321", HMACSHA1)
	c.Secret = token
	if _, err := Check(&req, []Credential{c}); err != nil {
		t.Errorf("after Secret changed to the right token: Check = %v", err)
	}
	c = NewCredential("auth_token", token, HMACSHA1)
	c.Secret = "54321"
	if _, err := Check(&req, []Credential{c}); !errors.Is(err, ErrMismatch) {
		t.Errorf("after Secret changed to a wrong token: Check = %v, want ErrMismatch", err)
	}
	c = NewCredential("auth_token", token, HMACSHA1)
	c.Algorithm = HMACSHA256
	if _, err := Check(&req, []Credential{c}); !errors.Is(err, ErrMalformedSignature) {
		t.Errorf("after Algorithm changed to HMAC-SHA256: Check = %v, want ErrMalformedSignature", err)
	}
}

// TestCheckAllocs is not parallel: allocsPerRun counts every
// allocation in the process.
func TestCheckAllocs(t *testing.T) {
	creds := []Credential{NewCredential("KS1", "sk", HMACSHA256), NewCredential("auth_token", token, HMACSHA1),
		{Name: "previous_auth_token", Secret: "old"}}
	for _, req := range []Request{
		{URL: docsURL, Params: docsParams, Signature: docsSig},
		{URL: docsURL, Fields: docsFields, Signature: docsSig},
		// Every variant tried, none matches.
		{URL: strings.Replace(docsURL, "https://", "https://u:p@", 1), Params: docsParams, Signature: Sign("other", docsURL, docsParams)},
	} {
		if allocs := allocsPerRun(t, 100, func() { _, _ = Check(&req, creds) }); allocs > 0 {
			t.Errorf("%s: Check allocates %v times, want 0", req.URL, allocs)
		}
	}
}

// TestScratchDropsCallerMemory checks that working memory goes back to the
// pool without references to the caller's parameters or body, from params,
// from a form body, and from a form body that is malformed halfway.
func TestScratchDropsCallerMemory(t *testing.T) {
	creds := []Credential{{Secret: token}}
	body := []byte("To=%2B1415&From=%2B1416&Body=a+b&Bad=%zz&After=1")
	for _, req := range []Request{
		{URL: docsURL, Params: docsParams, Signature: docsSig},
		{URL: docsURL, Body: body[:33], ContentType: "application/x-www-form-urlencoded", HasBody: true, Signature: docsSig},
		{URL: docsURL, Body: body, ContentType: "application/x-www-form-urlencoded", HasBody: true, Signature: docsSig},
	} {
		s := new(scratch)
		_, err := s.check(&req, creds)
		if s.held == 0 {
			t.Fatalf("check(%q) (%v) held no parameters: the test no longer exercises putScratch", req.Body, err)
		}
		putScratch(s)
		for i, p := range s.pairs {
			if p != (kv{}) {
				t.Errorf("after check(%q) (%v), pooled pairs[%d] = %q", req.Body, err, i, p)
			}
		}
	}
}

// TestCheckLargeForm checks form bodies past the engine's working memory:
// more fields than it holds, and more bytes to decode than it has room for,
// with escapes, repeated keys and text outside ASCII. Body mode must agree
// with params mode, and a signature over other params must not verify.
func TestCheckLargeForm(t *testing.T) {
	for _, n := range []int{stackPairs - 1, stackPairs + 1, 300} {
		params := url.Values{}
		for i := range n {
			k := "Field" + strconv.Itoa(i%(n/2+1))
			params[k] = append(params[k], "v "+strconv.Itoa(i)+" é & = + 100% "+strings.Repeat("x", i%50))
		}
		body := []byte(params.Encode())
		req := Request{URL: docsURL, Body: body, ContentType: "application/x-www-form-urlencoded", HasBody: true,
			Signature: Sign(token, docsURL, params)}
		if _, err := Check(&req, []Credential{{Secret: token}}); err != nil {
			t.Errorf("%d fields, %d bytes: Check = %v", n, len(body), err)
		}
		params.Set("Field0", "other")
		req.Signature = Sign(token, docsURL, params)
		if _, err := Check(&req, []Credential{{Secret: token}}); !errors.Is(err, ErrMismatch) {
			t.Errorf("%d fields, %d bytes, other params signed: Check = %v, want ErrMismatch", n, len(body), err)
		}
	}
}

// TestSigningOrderReuse lays out a long run of parameter lists with one
// working memory, as the pool hands it to call after call: lists of one
// length, often the last list again, or again with two pairs swapped, with
// keys that share prefixes, repeated keys and duplicate pairs. Each layout
// must be the plainly built string to sign, whether the last order was
// reused or not, and both must happen often.
func TestSigningOrderReuse(t *testing.T) {
	keys := []string{"A", "AccountSid", "AccountSidX", "B", "Body", "Body", "From", "FromCity", "FromCityZ"}
	values := []string{"", "1", "2", "é"}
	rnd := rand.New(rand.NewPCG(1, 2))
	s := new(scratch)
	s.listed = true
	var pairs []kv
	hits, misses := 0, 0
	for range 3000 {
		switch r := rnd.IntN(4); {
		case r == 0 || len(pairs) == 0:
			pairs = pairs[:0]
			for range 6 {
				pairs = append(pairs, kv{keys[rnd.IntN(len(keys))], values[rnd.IntN(len(values))]})
			}
		case r == 1:
			i, j := rnd.IntN(len(pairs)), rnd.IntN(len(pairs))
			pairs[i], pairs[j] = pairs[j], pairs[i]
		}
		params := url.Values{}
		for _, p := range pairs {
			params[p.k] = append(params[p.k], p.v)
		}
		if _, _, ok := s.reuseOrder(pairs); ok && s.lastN == len(pairs) {
			hits++
		} else {
			misses++
		}
		m := s.message(pairs, 0)
		if got, want := string(m.buf[m.p:]), stringToSign("", params); got != want {
			t.Fatalf("pairs %q laid out as %q, want %q", pairs, got, want)
		}
	}
	if hits < 500 || misses < 500 {
		t.Errorf("last order reused %d times and not %d times: the test no longer exercises both", hits, misses)
	}
}

// fieldsOf returns the values of params as a list of fields.
func fieldsOf(params url.Values) []Field {
	var fields []Field
	for k, vs := range params {
		for _, v := range vs {
			fields = append(fields, Field{k, v})
		}
	}
	return fields
}

// allocsPerRun is testing.AllocsPerRun with the collector off. A
// collection empties every sync.Pool, among them the engine's working
// memory and encoding/json's scanners, and refilling them would be counted
// as the function's own allocations. Under the race detector the counts
// mean nothing (see raceEnabled), so the test is skipped; the signature
// check (scripts/check.d/20-signature.sh) runs these tests without it.
func allocsPerRun(t *testing.T, runs int, f func()) float64 {
	t.Helper()
	if raceEnabled {
		t.Skip("allocation counts are random under the race detector")
	}
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	return testing.AllocsPerRun(runs, f)
}
