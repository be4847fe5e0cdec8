package signature

import "testing"

func BenchmarkProfCheck(b *testing.B) {
	creds := []Credential{NewCredential("auth_token", benchToken, HMACSHA1)}
	c := benchCases()[0]
	req := Request{URL: c.url, Params: c.params, Signature: c.sig}
	for b.Loop() {
		_, _ = Check(&req, creds)
	}
}

func BenchmarkProfFloor(b *testing.B) {
	f := floor(benchCases()[0])
	for b.Loop() {
		f()
	}
}
