package signature

import (
	"net/url"
	"testing"

	twilio "github.com/twilio/twilio-go/client"
)

// Realistic webhooks: an inbound SMS (21 fields) and an inbound voice call
// (25 fields), as Twilio sends them, with the URLs they were configured at.
var (
	smsURL    = "https://hooks.example.com/twilio/sms/inbound"
	smsParams = url.Values{
		"ToCountry":           {"US"},
		"ToState":             {"CA"},
		"SmsMessageSid":       {"SM2f3c6d8a7b4e4c1f9a0b2c3d4e5f6a7b"},
		"NumMedia":            {"0"},
		"ToCity":              {"SAN FRANCISCO"},
		"FromZip":             {"94105"},
		"SmsSid":              {"SM2f3c6d8a7b4e4c1f9a0b2c3d4e5f6a7b"},
		"FromState":           {"CA"},
		"SmsStatus":           {"received"},
		"FromCity":            {"SAN FRANCISCO"},
		"Body":                {"Hi! Can I move my appointment to Tuesday at 3pm? Thanks 🙂"},
		"FromCountry":         {"US"},
		"To":                  {"+14155550100"},
		"MessagingServiceSid": {"MG9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d"},
		"ToZip":               {""},
		"NumSegments":         {"1"},
		"MessageSid":          {"SM2f3c6d8a7b4e4c1f9a0b2c3d4e5f6a7b"},
		"AccountSid":          {"AC0123456789abcdef0123456789abcdef"},
		"From":                {"+14155550199"},
		"ApiVersion":          {"2010-04-01"},
		"ReferralNumMedia":    {"0"},
	}
	voiceURL    = "https://hooks.example.com/twilio/voice/incoming?tenant=acme"
	voiceParams = url.Values{
		"AccountSid":    {"AC0123456789abcdef0123456789abcdef"},
		"ApiVersion":    {"2010-04-01"},
		"CallSid":       {"CA5d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a"},
		"CallStatus":    {"ringing"},
		"CallToken":     {"%7B%22parentCallInfoToken%22%3A%22eyJhbGciOiJFUzI1NiJ9.eyJjYWxsU2lkIjoiQ0E1ZDFlMmYzYTRiNWM2ZDdlOGY5YTBiMWMyZDNlNGY1YSJ9.c2lnbmF0dXJl%22%7D"},
		"Called":        {"+14155550100"},
		"CalledCity":    {"SAN FRANCISCO"},
		"CalledCountry": {"US"},
		"CalledState":   {"CA"},
		"CalledZip":     {"94107"},
		"Caller":        {"+14155550199"},
		"CallerCity":    {""},
		"CallerCountry": {"US"},
		"CallerName":    {"ACME CORP"},
		"CallerState":   {"CA"},
		"CallerZip":     {""},
		"Direction":     {"inbound"},
		"From":          {"+14155550199"},
		"FromCity":      {""},
		"FromCountry":   {"US"},
		"FromState":     {"CA"},
		"FromZip":       {""},
		"StirVerstat":   {"TN-Validation-Passed-A"},
		"To":            {"+14155550100"},
		"ToCity":        {"SAN FRANCISCO"},
	}
	benchToken = "0123456789abcdef0123456789abcdef"
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
	sig    string
	valid  bool
}

func benchCases() []benchCase {
	return []benchCase{
		{"SMS21/valid", smsURL, smsParams, Sign(benchToken, smsURL, smsParams), true},
		{"SMS21/invalid", smsURL, smsParams, Sign("wrong", smsURL, smsParams), false},
		{"Voice25/valid", voiceURL, voiceParams, Sign(benchToken, voiceURL, voiceParams), true},
		{"Voice25/invalid", voiceURL, voiceParams, Sign("wrong", voiceURL, voiceParams), false},
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, c := range benchCases() {
		b.Run(c.name, func(b *testing.B) {
			want := c.valid
			b.ReportAllocs()
			for b.Loop() {
				if err := Verify(benchToken, c.url, c.params, c.sig); (err == nil) != want {
					b.Fatalf("Verify = %v", err)
				}
			}
		})
	}
}

func BenchmarkTwilioGoValidate(b *testing.B) {
	rv := twilio.NewRequestValidator(benchToken)
	for _, c := range benchCases() {
		params := single(c.params)
		b.Run(c.name, func(b *testing.B) {
			want := c.valid
			b.ReportAllocs()
			for b.Loop() {
				if got := rv.Validate(c.url, params, c.sig); got != want {
					b.Fatalf("Validate = %v", got)
				}
			}
		})
	}
}

// encodeTwilio encodes params as Twilio does in a form body, in sorted key
// order (the order does not matter to the signature).
func encodeTwilio(params url.Values) []byte {
	return []byte(params.Encode())
}

func BenchmarkVerifyBody(b *testing.B) {
	for _, c := range benchCases() {
		body := encodeTwilio(c.params)
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
		body := encodeTwilio(c.params)
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

// TestVerifyAllocs is not parallel: testing.AllocsPerRun counts every
// allocation in the process.
func TestVerifyAllocs(t *testing.T) {
	for _, c := range benchCases() {
		allocs := testing.AllocsPerRun(100, func() {
			_ = Verify(benchToken, c.url, c.params, c.sig)
		})
		if allocs > 2 {
			t.Errorf("%s: Verify allocates %v times, want at most 2", c.name, allocs)
		}
	}
}
