package server_test

import (
	"strings"
	"testing"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/signature"
)

// TestEmptyFormBodyHint checks that a form request that reached the service
// without its body (a gateway that does not forward it) is explained as
// such, not only as an unknown account or a mismatch.
func TestEmptyFormBodyHint(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{})
	sig := signature.Sign(token1, hookURL, values(smsParams(sid1))) // signed over the parameters that did not arrive
	tests := []struct {
		name       string
		req        *twilioguardv1.VerifyWebhookRequest
		wantReason twilioguardv1.Reason
		wantHint   bool
	}{
		{"no account named", &twilioguardv1.VerifyWebhookRequest{Url: hookURL, ContentType: formType, Signature: sig},
			twilioguardv1.Reason_UNKNOWN_ACCOUNT, true},
		{"a route bound to one account", &twilioguardv1.VerifyWebhookRequest{Url: hookURL, ContentType: formType + "; charset=utf-8",
			Signature: sig, AllowedAccounts: []string{sid1}}, twilioguardv1.Reason_SIGNATURE_MISMATCH, true},
		{"a JSON request is not a lost form", &twilioguardv1.VerifyWebhookRequest{Url: hookURL, ContentType: jsonType, Signature: sig,
			Account: sid1}, twilioguardv1.Reason_MISSING_BODY_HASH, false},
		{"a form with a body", &twilioguardv1.VerifyWebhookRequest{Url: hookURL, ContentType: formType, Body: []byte("AccountSid=" + sid1),
			Signature: sig}, twilioguardv1.Reason_SIGNATURE_MISMATCH, false},
	}
	for _, tt := range tests {
		resp, err := h.srv.VerifyWebhook(t.Context(), tt.req)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if resp.GetReason() != tt.wantReason {
			t.Errorf("%s: reason %v; want %v", tt.name, resp.GetReason(), tt.wantReason)
		}
		if got := strings.Contains(resp.GetHint(), "form body is empty"); got != tt.wantHint {
			t.Errorf("%s: hint %q; want the empty-body hint: %v", tt.name, resp.GetHint(), tt.wantHint)
		}
	}
}
