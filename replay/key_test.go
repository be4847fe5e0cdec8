package replay_test

import (
	"strings"
	"testing"

	"github.com/twilioguard/twilioguard/replay"
)

func TestKeyOf(t *testing.T) {
	t.Parallel()
	const (
		acct  = "AC0123456789abcdef0123456789abcdef"
		other = "ACfedcba9876543210fedcba9876543210"
		sig   = "bWFjLW9mLXRoZS13ZWJob29rLTEyMw=="
		url   = "https://hooks.example.com/sms"
	)
	base := replay.KeyOf(acct, "", sig, url)
	if base != replay.KeyOf(acct, "", sig, url) {
		t.Fatal("KeyOf is not deterministic")
	}
	withToken := replay.KeyOf(acct, "tok-1", sig, url)
	if withToken != replay.KeyOf(acct, "tok-1", "another signature", "https://elsewhere.example/") {
		t.Error("with a token, the signature and URL changed the key; want it keyed by account and token only")
	}
	// Every one of these must differ from base and from each other.
	differ := map[string]replay.Key{
		"base":                      base,
		"token":                     withToken,
		"other token":               replay.KeyOf(acct, "tok-2", sig, url),
		"other account, same token": replay.KeyOf(other, "tok-1", sig, url),
		"other account":             replay.KeyOf(other, "", sig, url),
		"other signature":           replay.KeyOf(acct, "", sig[:len(sig)-2]+"A=", url),
		"other url":                 replay.KeyOf(acct, "", sig, url+"?x=1"),
		// Field boundaries move but the concatenation stays the same.
		"shifted signature/url": replay.KeyOf(acct, "", sig+"h", "ttps://hooks.example.com/sms"),
		"shifted account/token": replay.KeyOf(acct[:33], acct[33:]+"tok-1", sig, url),
		// The kind of key is hashed in: a token never passes for a signature.
		"signature, no url":            replay.KeyOf(acct, "", sig, ""),
		"token equal to the signature": replay.KeyOf(acct, sig, "", ""),
	}
	seen := map[replay.Key]string{}
	for name, k := range differ {
		if prev, ok := seen[k]; ok {
			t.Errorf("%s and %s have the same key", name, prev)
		}
		seen[k] = name
	}
}

// TestKeyOfFixedSize checks that a caller-chosen token or URL of any length
// makes a key of the same size.
func TestKeyOfFixedSize(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("u", 64<<10)
	a := replay.KeyOf("AC1", "", "sig", "https://h.example/"+long)
	b := replay.KeyOf("AC1", long, "", "")
	if len(a) != replay.KeyBytes || len(b) != replay.KeyBytes || a == b {
		t.Errorf("keys of long inputs: %x, %x; want two distinct %d-byte keys", a, b, replay.KeyBytes)
	}
}

func BenchmarkKeyOf(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		replay.KeyOf("AC0123456789abcdef0123456789abcdef", "", "bWFjLW9mLXRoZS13ZWJob29rLTEyMw==", "https://hooks.example.com/twilio/sms?x=1")
	}
}
