package signature

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // the floor is HMAC-SHA1, as Twilio signs
	"errors"
	"maps"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	twilio "github.com/twilio/twilio-go/client"
)

// Realistic webhooks: an inbound SMS (21 fields) and an inbound voice call
// (25 fields), as Twilio sends them (fields in their order on the wire),
// with the URLs they were configured at.
var (
	smsURL    = "https://hooks.example.com/twilio/sms/inbound"
	smsFields = [][2]string{
		{"ToCountry", "US"},
		{"ToState", "CA"},
		{"SmsMessageSid", "SM2f3c6d8a7b4e4c1f9a0b2c3d4e5f6a7b"},
		{"NumMedia", "0"},
		{"ToCity", "SAN FRANCISCO"},
		{"FromZip", "94105"},
		{"SmsSid", "SM2f3c6d8a7b4e4c1f9a0b2c3d4e5f6a7b"},
		{"FromState", "CA"},
		{"SmsStatus", "received"},
		{"FromCity", "SAN FRANCISCO"},
		{"Body", "Hi! Can I move my appointment to Tuesday at 3pm? Thanks 🙂"},
		{"FromCountry", "US"},
		{"To", "+14155550100"},
		{"MessagingServiceSid", "MG9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d"},
		{"ToZip", ""},
		{"NumSegments", "1"},
		{"MessageSid", "SM2f3c6d8a7b4e4c1f9a0b2c3d4e5f6a7b"},
		{"AccountSid", "AC0123456789abcdef0123456789abcdef"},
		{"From", "+14155550199"},
		{"ApiVersion", "2010-04-01"},
		{"ReferralNumMedia", "0"},
	}
	smsParams   = values(smsFields)
	voiceURL    = "https://hooks.example.com/twilio/voice/incoming?tenant=acme"
	voiceFields = [][2]string{
		{"Called", "+14155550100"},
		{"CallerCountry", "US"},
		{"Direction", "inbound"},
		{"CallerState", "CA"},
		{"CallSid", "CA5d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a"},
		{"To", "+14155550100"},
		{"CallerZip", ""},
		{"StirVerstat", "TN-Validation-Passed-A"},
		{"CallToken", "%7B%22parentCallInfoToken%22%3A%22eyJhbGciOiJFUzI1NiJ9.eyJjYWxsU2lkIjoiQ0E1ZDFlMmYzYTRiNWM2ZDdlOGY5YTBiMWMyZDNlNGY1YSJ9.c2lnbmF0dXJl%22%7D"},
		{"CalledZip", "94107"},
		{"ApiVersion", "2010-04-01"},
		{"CalledCity", "SAN FRANCISCO"},
		{"CallStatus", "ringing"},
		{"From", "+14155550199"},
		{"AccountSid", "AC0123456789abcdef0123456789abcdef"},
		{"CalledCountry", "US"},
		{"CallerCity", ""},
		{"ToCity", "SAN FRANCISCO"},
		{"FromCountry", "US"},
		{"Caller", "+14155550199"},
		{"FromCity", ""},
		{"CalledState", "CA"},
		{"FromZip", ""},
		{"FromState", "CA"},
		{"CallerName", "ACME CORP"},
	}
	voiceParams = values(voiceFields)
	benchToken  = "0123456789abcdef0123456789abcdef"
)

// single flattens params for twilio-go, which takes one value per key.
func single(params url.Values) map[string]string {
	m := make(map[string]string, len(params))
	for k, v := range params {
		m[k] = v[0]
	}
	return m
}

// benchCase is one benchmark input.
type benchCase struct {
	name   string
	url    string
	params url.Values
	fields []Field // params as a list, in Twilio's order
	body   []byte  // params as a form body, in Twilio's order
	sig    string
	valid  bool
}

func benchCases() []benchCase {
	return []benchCase{
		{"SMS21/valid", smsURL, smsParams, listed(smsFields), encodeTwilio(smsFields), Sign(benchToken, smsURL, smsParams), true},
		{"SMS21/invalid", smsURL, smsParams, listed(smsFields), encodeTwilio(smsFields), Sign("wrong", smsURL, smsParams), false},
		{"Voice25/valid", voiceURL, voiceParams, listed(voiceFields), encodeTwilio(voiceFields), Sign(benchToken, voiceURL, voiceParams), true},
		{"Voice25/invalid", voiceURL, voiceParams, listed(voiceFields), encodeTwilio(voiceFields), Sign("wrong", voiceURL, voiceParams), false},
	}
}

// BenchmarkCompare runs each webhook through the engine, through
// twilio-go's RequestValidator.Validate and through the floor:
// crypto/hmac made once, then Reset, Write and Sum over the prebuilt strings
// to sign of the URL variants the verdict needs (one for a valid signature;
// every variant, here two, for an invalid one). The engine is Verify (from
// url.Values), or Check with a credential made by NewCredential from
// url.Values, from Fields (as the service passes params) or from the form
// body as Twilio sends it (as Envoy, the proxy and the middleware pass it);
// twilio-go is given a map, or for a body, url.ParseQuery first, as its
// users must. ns/op and allocs/op are the engine's; the custom metrics come
// from interleaved rounds of the three, timed in thread CPU time, so that a
// machine busy with other work slows all of them alike:
//
//	floor-ns/op      the floor
//	twilio-go-ns/op  twilio-go
//	x-floor          engine / floor (lower is better)
//	x-twilio-go      twilio-go / engine (how many times faster the engine is)
func BenchmarkCompare(b *testing.B) {
	rv := twilio.NewRequestValidator(benchToken)
	creds := []Credential{NewCredential("auth_token", benchToken, HMACSHA1)}
	for _, c := range benchCases() {
		want := c.valid
		params := single(c.params)
		body := c.body
		fromParams := func() {
			if got := rv.Validate(c.url, params, c.sig); got != want {
				b.Fatalf("Validate = %v", got)
			}
		}
		fromBody := func() {
			vals, err := url.ParseQuery(string(body))
			if err != nil {
				b.Fatal(err)
			}
			if got := rv.Validate(c.url, single(vals), c.sig); got != want {
				b.Fatalf("Validate = %v", got)
			}
		}
		check := func(req *Request) func() {
			return func() {
				if _, err := Check(req, creds); (err == nil) != want {
					b.Fatalf("Check = %v", err)
				}
			}
		}
		engines := []struct {
			name             string
			engine, twilioGo func()
		}{
			{"Verify", func() {
				if err := Verify(benchToken, c.url, c.params, c.sig); (err == nil) != want {
					b.Fatalf("Verify = %v", err)
				}
			}, fromParams},
			{"CheckPrepared", check(&Request{URL: c.url, Params: c.params, Signature: c.sig}), fromParams},
			{"CheckFields", check(&Request{URL: c.url, Fields: c.fields, Signature: c.sig}), fromParams},
			{"CheckBody", check(&Request{
				URL: c.url, Body: body, ContentType: "application/x-www-form-urlencoded", HasBody: true, Signature: c.sig,
			}), fromBody},
		}
		for _, e := range engines {
			b.Run(c.name+"/"+e.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					e.engine()
				}
				ns := interleaved(b.Elapsed(), e.engine, floor(c), e.twilioGo)
				reportRatios(b, ns[0], ns[1], ns[2])
			})
		}
	}
}

// reportRatios reports the figures of an engine against the floor and
// twilio-go, all in ns/op from the same interleaved rounds.
func reportRatios(b *testing.B, engine, floor, twilioGo float64) {
	b.ReportMetric(floor, "floor-ns/op")
	b.ReportMetric(twilioGo, "twilio-go-ns/op")
	b.ReportMetric(engine/floor, "x-floor")
	b.ReportMetric(twilioGo/engine, "x-twilio-go")
}

// floor returns the standard-library HMAC-SHA1 of the strings to sign c's
// verdict needs: the URL as received when the signature is valid, every URL
// variant when it is not.
func floor(c benchCase) func() {
	urls, err := URLVariants(c.url)
	if err != nil {
		panic(err)
	}
	if c.valid {
		urls = urls[:1]
	}
	var msgs [][]byte
	for _, u := range urls {
		msgs = append(msgs, []byte(stringToSign(u, c.params)))
	}
	mac := hmac.New(sha1.New, []byte(benchToken))
	var sum [sha1.Size]byte
	return func() {
		for _, m := range msgs {
			mac.Reset()
			mac.Write(m)
			mac.Sum(sum[:0])
		}
	}
}

// stringToSign builds Twilio's string to sign plainly: URL, then key+value
// for each key in byte order and each distinct value in byte order.
func stringToSign(rawURL string, params url.Values) string {
	s := rawURL
	for _, k := range slices.Sorted(maps.Keys(params)) {
		vs := slices.Clone(params[k])
		slices.Sort(vs)
		for _, v := range slices.Compact(vs) {
			s += k + v
		}
	}
	return s
}

// interleaved runs fs in alternating rounds for about d in all and returns
// the CPU time each one takes per call, in ns. Each round runs every
// function for about the same time, and only the CPU time of the running
// thread counts, so other work on the machine affects them alike and
// little.
func interleaved(d time.Duration, fs ...func()) []float64 {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	total := make([]time.Duration, len(fs))
	calls := make([]int, len(fs))
	batch := make([]int, len(fs))
	for i := range batch {
		batch[i] = 1
	}
	const rounds = 20
	slice := max(d/rounds/time.Duration(len(fs)), time.Millisecond)
	for start := time.Now(); time.Since(start) < d; {
		for i, f := range fs {
			t0 := threadCPU()
			for range batch[i] {
				f()
			}
			total[i] += threadCPU() - t0
			calls[i] += batch[i]
			// Size the next batch to take about one slice.
			per := max(total[i]/time.Duration(calls[i]), 1)
			batch[i] = max(1, int(slice/per))
		}
	}
	ns := make([]float64, len(fs))
	for i := range fs {
		ns[i] = float64(total[i].Nanoseconds()) / float64(calls[i])
	}
	return ns
}

// listed returns fields as a list of Field.
func listed(fields [][2]string) []Field {
	list := make([]Field, len(fields))
	for i, f := range fields {
		list[i] = Field{f[0], f[1]}
	}
	return list
}

// encodeTwilio encodes fields as a form body, in their order, as Twilio
// does.
func encodeTwilio(fields [][2]string) []byte {
	var b []byte
	for i, f := range fields {
		if i > 0 {
			b = append(b, '&')
		}
		b = append(b, url.QueryEscape(f[0])+"="+url.QueryEscape(f[1])...)
	}
	return b
}

func BenchmarkVerifyBody(b *testing.B) {
	for _, c := range benchCases() {
		body := c.body
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				err := VerifyBody(benchToken, c.url, "application/x-www-form-urlencoded", body, c.sig)
				if (err == nil) != c.valid {
					b.Fatalf("VerifyBody = %v", err)
				}
			}
		})
	}
}

func BenchmarkTwilioGoValidateBody(b *testing.B) {
	rv := twilio.NewRequestValidator(benchToken)
	for _, c := range benchCases() {
		body := c.body
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if got := rv.ValidateBody(c.url, body, c.sig); got != c.valid {
					b.Fatalf("ValidateBody = %v", got)
				}
			}
		})
	}
}

// TestVerifyAllocs is not parallel: allocsPerRun counts every
// allocation in the process.
func TestVerifyAllocs(t *testing.T) {
	for _, c := range benchCases() {
		allocs := allocsPerRun(t, 100, func() {
			_ = Verify(benchToken, c.url, c.params, c.sig)
		})
		if allocs > 0 {
			t.Errorf("%s: Verify allocates %v times, want 0", c.name, allocs)
		}
		body := c.body
		allocs = allocsPerRun(t, 100, func() {
			_ = VerifyBody(benchToken, c.url, "application/x-www-form-urlencoded", body, c.sig)
		})
		if allocs > 0 {
			t.Errorf("%s: VerifyBody allocates %v times, want 0", c.name, allocs)
		}
	}
}

// BenchmarkDiagnoseCost measures what a refused request costs when it is
// also diagnosed, as the service does on a mismatch: Check with a signature
// made by another token, then Diagnose, on form bodies of about 1 KB,
// 64 KB, 1 MB and 2 MB (an SMS webhook whose Body is padded). ns/op is that
// pair's; x-valid-check is its cost over a valid Check of the same request,
// both from interleaved rounds.
func BenchmarkDiagnoseCost(b *testing.B) {
	creds := []Credential{{Name: "auth_token", Secret: benchToken}}
	for _, size := range []struct {
		name string
		n    int
	}{{"1KB", 1e3}, {"64KB", 64e3}, {"1MB", 1e6}, {"2MB", 2e6}} {
		b.Run(size.name, func(b *testing.B) {
			valid, invalid := largeRequests(size.n)
			checkValid := func() {
				if _, err := Check(valid, creds); err != nil {
					b.Fatal(err)
				}
			}
			diagnosed := func() {
				if _, err := Check(invalid, creds); !errors.Is(err, ErrMismatch) {
					b.Fatal(err)
				}
				_ = Diagnose(invalid, creds)
			}
			b.ReportAllocs()
			for b.Loop() {
				diagnosed()
			}
			ns := interleaved(b.Elapsed(), diagnosed, checkValid)
			b.ReportMetric(ns[0]/ns[1], "x-valid-check")
		})
	}
}

// largeRequests returns an SMS webhook with a form body of about n bytes,
// signed with benchToken and with another token.
func largeRequests(n int) (valid, invalid *Request) {
	params := url.Values{}
	for k, v := range smsParams {
		params[k] = v
	}
	params["Body"] = []string{""}
	pad := n - len(params.Encode())
	params["Body"] = []string{strings.Repeat("x", max(pad, 0))}
	body := []byte(params.Encode())
	req := func(token string) *Request {
		return &Request{
			URL: smsURL, Body: body, ContentType: "application/x-www-form-urlencoded", HasBody: true,
			Signature: Sign(token, smsURL, params),
		}
	}
	return req(benchToken), req("wrong")
}
