package extauthz_test

import (
	"testing"

	"github.com/twilioguard/twilioguard/extauthz"
	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
)

// BenchmarkCheckInProcess measures Check itself (translation, metrics,
// response), without a transport.
func BenchmarkCheckInProcess(b *testing.B) {
	s := extauthz.NewServer(nopVerifier{&twilioguardv1.VerifyWebhookResponse{Valid: true, AccountSid: "AC0123456789abcdef0123456789abcdef"}})
	req := benchCheck()
	b.ReportAllocs()
	cpu := cpuTime(b)
	for b.Loop() {
		if _, err := s.Check(b.Context(), req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
}
