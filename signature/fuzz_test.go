package signature

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// FuzzParseForm checks the form parser against net/url.ParseQuery, which
// implements the same grammar except that it rejects ';'.
func FuzzParseForm(f *testing.F) {
	for _, s := range []string{
		"", "a=1&b=2", "a=&b", "k=2&k=1&k=2", "a+b=c+d%2B%20e&&x=%C3%A9", "=v&%3D=%26", "a=%", "a=%2", "a=%zz",
		"Body=100%25+sure&From=%2B14155550199", "a=b=c&&&", "%FF=%fe", "a;b=c",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := ParseForm(body)
		if err != nil && !errors.Is(err, ErrMalformedRequest) {
			t.Fatalf("ParseForm(%q) error %v does not wrap ErrMalformedRequest", body, err)
		}
		// Validate's scan must refuse exactly what ParseForm refuses.
		if verr := checkEscapes(body); (verr == nil) != (err == nil) || (verr != nil && verr.Error() != err.Error()) {
			t.Fatalf("checkEscapes(%q) = %v; ParseForm error = %v", body, verr, err)
		}
		if strings.Contains(string(body), ";") {
			return
		}
		want, wantErr := url.ParseQuery(string(body))
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("ParseForm(%q) error = %v, url.ParseQuery error = %v", body, err, wantErr)
		}
		if err == nil {
			// ParseQuery keeps bytes that are not UTF-8; ParseForm replaces them.
			fixed := url.Values{}
			for k, vs := range want {
				for _, v := range vs {
					fixed[toValidUTF8(k)] = append(fixed[toValidUTF8(k)], toValidUTF8(v))
				}
			}
			want = fixed
			for k, vs := range got {
				for _, v := range vs {
					if !utf8.ValidString(k) || !utf8.ValidString(v) {
						t.Fatalf("ParseForm(%q) returned invalid UTF-8 %q=%q", body, k, v)
					}
				}
			}
			// Keys that differ only in bytes that are not UTF-8 merge, so
			// their values' order is lost: compare them as sets.
			sorted := cmpopts.SortSlices(func(a, b string) bool { return a < b })
			if diff := cmp.Diff(want, got, sorted); diff != "" {
				t.Fatalf("ParseForm(%q) differs from url.ParseQuery (-want +got):\n%s", body, diff)
			}
		}
	})
}

// FuzzURLVariants checks that the variants of any URL keep everything but
// the port and user information byte for byte.
func FuzzURLVariants(f *testing.F) {
	for _, s := range []string{
		"https://example.com/sms", "HTTP://Example.com", "https://example.com:8443/a?b=c:d", "https://example.com:/a",
		"https://[2001:db8::1]:8443/sms", "https://[::1]/x", "ftp://example.com/x", "https://user:p%40ss@example.com:8443/x?y=@",
		"https://u@h?q", "https://h#f", "https://h/a b", "HtTp://h/\x7f", "https://a@b@c:1/", "https://[::1", "https://h:99999/", "http://[::ffff:1.2.3.4]:80",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		vs, err := URLVariants(raw)
		if err != nil {
			if !errors.Is(err, ErrMalformedRequest) {
				t.Fatalf("URLVariants(%q) error %v does not wrap ErrMalformedRequest", raw, err)
			}
			return
		}
		if len(vs) == 0 || vs[0] != raw || len(vs) > maxVariants {
			t.Fatalf("URLVariants(%q) = %q", raw, vs)
		}
		// The one input rule: http(s), no space, control character or DEL.
		if lower := strings.ToLower(raw); !strings.HasPrefix(lower, "http://") && !strings.HasPrefix(lower, "https://") ||
			strings.IndexFunc(raw, func(r rune) bool { return r < 0x21 || r == 0x7f }) >= 0 {
			t.Fatalf("URLVariants accepted %q", raw)
		}
		u, _ := splitURL(raw)
		seen := map[string]bool{}
		for _, v := range vs {
			if seen[v] {
				t.Fatalf("URLVariants(%q) repeats %q", raw, v)
			}
			seen[v] = true
			p, err := splitURL(v)
			if err != nil {
				t.Fatalf("variant %q of %q does not split: %v", v, raw, err)
			}
			if p.scheme != u.scheme || p.host != u.host || p.rest != u.rest {
				t.Fatalf("variant %q of %q changed more than port and userinfo", v, raw)
			}
			if p.userinfo != u.userinfo && p.userinfo != "" {
				t.Fatalf("variant %q of %q has other userinfo", v, raw)
			}
			if p.port != u.port && p.port != "" && p.port != u.defPort {
				t.Fatalf("variant %q of %q has port %q", v, raw, p.port)
			}
		}
	})
}

// FuzzParseSettings checks that a parsed settings header names a key and a
// known algorithm, and parses the same when written back.
func FuzzParseSettings(f *testing.F) {
	for _, s := range []string{
		"key=KS1,algorithm=HMAC_SHA256", " algorithm = hmac_sha1 , key = KS1 ", "key=KS1", "key=KS1,version=2,",
		"", "algorithm=HMAC_SHA256", "key=", "key=a,key=b", "key", "key=a,algorithm=HMAC_MD5", ",,,", "KEY=a=b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		s, err := ParseSettings(header)
		if err != nil {
			if !errors.Is(err, ErrMalformedRequest) {
				t.Fatalf("ParseSettings(%q) error %v does not wrap ErrMalformedRequest", header, err)
			}
			return
		}
		if s.KeyID == "" || (s.Algorithm != HMACSHA1 && s.Algorithm != HMACSHA256) {
			t.Fatalf("ParseSettings(%q) = %+v", header, s)
		}
		again, err := ParseSettings("key=" + s.KeyID + ",algorithm=" + s.Algorithm.String())
		if err != nil || again != s {
			t.Fatalf("ParseSettings(%q) = %+v, but written back it parses to %+v, %v", header, s, again, err)
		}
	})
}

// FuzzCheck signs arbitrary requests and checks that Check accepts exactly
// the genuine signature, in body mode and in params mode.
func FuzzCheck(f *testing.F) {
	f.Add("https://example.com/sms", []byte("Body=hi&From=%2B1"), "token", false)
	f.Add("https://u:p@[::1]:8443/x?y=1", []byte("a=1&a=2&b="), "t", true)
	f.Add("http://h:/", []byte("%zz"), "", false)
	f.Fuzz(func(t *testing.T, rawURL string, body []byte, secret string, sha256 bool) {
		alg := HMACSHA1
		if sha256 {
			alg = HMACSHA256
		}
		creds := []Credential{{Name: "other", Secret: "other-secret", Algorithm: alg}, {Name: "k", Secret: secret, Algorithm: alg}}
		params, formErr := ParseForm(body)
		sig := SignWith(alg, secret, rawURL, params)
		req := &Request{URL: rawURL, Body: body, ContentType: "application/x-www-form-urlencoded", HasBody: true, Signature: sig}
		m, err := Check(req, creds)
		_, urlErr := splitURL(rawURL)
		switch {
		case urlErr != nil || formErr != nil:
			if !errors.Is(err, ErrMalformedRequest) {
				t.Fatalf("Check = %v, want ErrMalformedRequest (url: %v, form: %v)", err, urlErr, formErr)
			}
			return
		case secret == "":
			if err == nil && m.Credential == 1 {
				t.Fatalf("an empty secret verified")
			}
			return
		case secret != "other-secret" && (err != nil || m.Credential != 1 || m.URL != rawURL):
			t.Fatalf("Check of a genuine signature = %+v, %v", m, err)
		}
		req2 := &Request{URL: rawURL, Params: params, Signature: sig}
		if m2, err := Check(req2, creds); err != nil || m2 != m {
			t.Fatalf("params mode: Check = %+v, %v; body mode %+v", m2, err, m)
		}
		req3 := &Request{URL: rawURL, Fields: fieldsOf(params), Signature: sig}
		if m3, err := Check(req3, creds); err != nil || m3 != m {
			t.Fatalf("fields mode: Check = %+v, %v; body mode %+v", m3, err, m)
		}
		// Flip one bit of the MAC: the signature must no longer verify.
		var mac [32]byte
		n, _ := decodeSignature(sig, &mac)
		mac[n/2] ^= 1
		req.Signature = base64.StdEncoding.EncodeToString(mac[:n])
		if _, err := Check(req, creds); !errors.Is(err, ErrMismatch) {
			t.Fatalf("Check of a tampered signature = %v, want ErrMismatch", err)
		}
		// Diagnosing it stays within the default bound.
		if _, hashed := DiagnoseBudget(req, creds, -1); hashed > DefaultDiagnoseBudget(len(rawURL)+len(body)) {
			t.Fatalf("DiagnoseBudget hashed %d bytes, over the default budget", hashed)
		}
	})
}

// FuzzAccountSids checks AccountSids against the parsers applications use:
// every AccountSid that url.ParseQuery finds in a form body or the query,
// and that encoding/json finds at the top level of a JSON body, is among
// the values returned (while fewer than the maximum are), and the values
// are distinct.
func FuzzAccountSids(f *testing.F) {
	for _, s := range []string{
		"AccountSid=AC1&Account%53id=AC2", "%41ccountSid=A+B", "AccountSid=%zz", "AccountSid",
		`{"AccountSid":"A","account_sid":"B"}`, `{"Account\u0053id":"\ud83d\ude00","x":[{"AccountSid":"N"}]}`,
		`{"ACCOUNTSID":1}`, `[{"AccountSid":"A"}]`,
	} {
		f.Add("https://h/?AccountSid=Q", []byte(s), true)
		f.Add("https://h/", []byte(s), false)
	}
	f.Fuzz(func(t *testing.T, rawURL string, body []byte, isFormBody bool) {
		ct := "application/json"
		if isFormBody {
			ct = "application/x-www-form-urlencoded"
		}
		req := &Request{URL: rawURL, Body: body, ContentType: ct, HasBody: true}
		got := AccountSids(req)
		if len(got) > maxAccountSids {
			t.Fatalf("AccountSids returned %d values", len(got))
		}
		seen := map[string]bool{}
		for _, v := range got {
			if seen[v] {
				t.Fatalf("AccountSids repeats %q: %q", v, got)
			}
			seen[v] = true
		}
		if len(got) == maxAccountSids {
			return
		}
		var want []string
		if isFormBody {
			vals, _ := url.ParseQuery(string(body))
			want = append(want, vals["AccountSid"]...)
		} else if utf8.Valid(body) {
			var doc struct {
				Camel *string `json:"AccountSid"`
				Snake *string `json:"account_sid"`
			}
			if json.Unmarshal(body, &doc) == nil {
				for _, v := range []*string{doc.Camel, doc.Snake} {
					if v != nil {
						want = append(want, *v)
					}
				}
			}
		}
		query, _, _ := strings.Cut(rawURL, "#")
		if _, query, ok := strings.Cut(query, "?"); ok {
			vals, _ := url.ParseQuery(query)
			want = append(want, vals["AccountSid"]...)
		}
		for _, v := range want {
			if !seen[v] {
				t.Fatalf("AccountSids(%q, %q) = %q, missing %q", rawURL, body, got, v)
			}
		}
	})
}

// FuzzSign checks Sign against a plain construction of the string to sign
// (sorted keys, sorted distinct values) and crypto/hmac.
func FuzzSign(f *testing.F) {
	for _, s := range []string{
		"", "a=1", "k=b&k=a&k=b&j=", "CalledCity=x&CalledCountry=y&Called=z&CalledCityX=&CalledCity=w",
		"aaaaaaaa1=1&aaaaaaaa0=2&aaaaaaa=3&aaaaaaaa=4&aaaaaaa%00=5", "%F0%9F%98%80=1&%EF%BD%A1=2",
	} {
		f.Add("https://example.com/sms?x=1", s)
	}
	f.Fuzz(func(t *testing.T, rawURL, form string) {
		params, err := url.ParseQuery(form)
		if err != nil {
			return
		}
		mac := hmac.New(sha1.New, []byte("secret"))
		mac.Write([]byte(stringToSign(rawURL, params)))
		if got, want := Sign("secret", rawURL, params), base64.StdEncoding.EncodeToString(mac.Sum(nil)); got != want {
			t.Fatalf("Sign(%q, %q) = %s, want %s", rawURL, form, got, want)
		}
	})
}

// TestSignManyParams runs the checks of FuzzSign on parameter sets of every
// size the engine sorts differently: up to 32, up to 256, and more.
func TestSignManyParams(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 7, 21, 32, 33, 64, 65, 200, 256, 257, 300} {
		params := url.Values{}
		for i := range n {
			// Keys share long prefixes and repeat; values repeat.
			k := strings.Repeat("K", rng.IntN(10)) + strconv.Itoa(rng.IntN(n+1))
			params[k] = append(params[k], strconv.Itoa(rng.IntN(3)), strconv.Itoa(i%2))
		}
		mac := hmac.New(sha1.New, []byte("secret"))
		mac.Write([]byte(stringToSign("https://h/", params)))
		if got, want := Sign("secret", "https://h/", params), base64.StdEncoding.EncodeToString(mac.Sum(nil)); got != want {
			t.Errorf("%d params: Sign = %s, want %s", n, got, want)
		}
	}
}
