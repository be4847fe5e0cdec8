package server_test

import (
	"fmt"
	"strings"
	"testing"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/server"
	"github.com/twilioguard/twilioguard/signature"
)

// BenchmarkRefusalCost compares, for form bodies of 1 KiB, 64 KiB and
// 1 MiB, the cost of deciding a valid request with that of an invalid one
// (signed for another path, so near-miss diagnosis runs): with the default
// hint budgets, and with unlimited ones (every refusal diagnosed, the worst
// case for one request). It calls VerifyWebhook in process, without the
// transport, which costs the same for both and would hide the difference.
// The ratio of an "invalid" row to its "valid" row is what an attacker gets
// for sending garbage instead of a genuine webhook.
func BenchmarkRefusalCost(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10, 1 << 20} {
		body := "AccountSid=" + sid1 + "&Body=" + strings.Repeat("x", size-len("AccountSid=")-len(sid1)-len("&Body="))
		params, err := signature.ParseForm([]byte(body))
		if err != nil {
			b.Fatal(err)
		}
		req := func(signedFor string) *twilioguardv1.VerifyWebhookRequest {
			return &twilioguardv1.VerifyWebhookRequest{Url: hookURL, Body: []byte(body), ContentType: formType,
				Signature: signature.Sign(token1, signedFor, params)}
		}
		valid, invalid := req(hookURL), req(strings.Replace(hookURL, "https://", "http://", 1))
		for _, tt := range []struct {
			name      string
			req       *twilioguardv1.VerifyWebhookRequest
			unlimited bool
		}{
			{"valid", valid, false},
			{"invalid-default-budget", invalid, false},
			{"invalid-unlimited-budget", invalid, true},
		} {
			b.Run(fmt.Sprintf("%dKiB/%s", size>>10, tt.name), func(b *testing.B) {
				clock := &testClock{t: t0}
				cfg := server.Config{
					Store: newFakeStore(clock.Now, defaultAccounts()...), AdminToken: adminToken, Now: clock.Now,
					MaxBodyBytes: 2 << 20, MaxParams: 10,
				}
				if tt.unlimited {
					cfg.MaxHintsPerSecond, cfg.MaxHintBytesPerSecond = 1<<30, 1<<62
				}
				srv, err := server.New(cfg)
				if err != nil {
					b.Fatal(err)
				}
				if err := srv.Load(b.Context()); err != nil {
					b.Fatal(err)
				}
				resp, err := srv.VerifyWebhook(b.Context(), tt.req)
				if err != nil || resp.GetValid() != (tt.name == "valid") {
					b.Fatalf("VerifyWebhook = %v, %v", resp, err)
				}
				if tt.unlimited && size < 1<<20 && resp.GetHint() == "" {
					b.Fatalf("no hint for a diagnosed refusal: %v", resp)
				}
				b.SetBytes(int64(size))
				b.ResetTimer()
				for range b.N {
					if _, err := srv.VerifyWebhook(b.Context(), tt.req); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
