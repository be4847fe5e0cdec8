package middleware

import (
	"context"
	"time"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
)

// Verdict is the verifier's answer on one request, as the wrapped handler
// sees it through [VerdictFrom].
type Verdict struct {
	// Valid is true when the signature is one Twilio sends for the request.
	Valid bool
	// AccountSID is the account whose credential was tried (and matched,
	// when valid).
	AccountSID string
	// Credential says which secret matched: "auth_token",
	// "previous_auth_token" or a SharedKey id.
	Credential string
	// MatchedURL is the URL variant the signature covers.
	MatchedURL string
	// Reason is why the request is not valid (for example
	// "SIGNATURE_MISMATCH"); empty when valid.
	Reason string
	// Hint is a near-miss diagnosis of a mismatch, when one was found.
	Hint string
	// ReplayChecked is true when the verifier checked the request for
	// duplicates; Duplicate and FirstSeen are meaningful only then.
	ReplayChecked bool
	// Duplicate is true when this exact webhook was verified before within
	// the replay window (it is still genuine).
	Duplicate bool
	// FirstSeen is when the first copy of a duplicate was verified.
	FirstSeen time.Time
}

// verdictOf converts a VerifyWebhookResponse.
func verdictOf(resp *twilioguardv1.VerifyWebhookResponse) Verdict {
	v := Verdict{
		Valid:         resp.GetValid(),
		AccountSID:    resp.GetAccountSid(),
		Credential:    resp.GetCredential(),
		MatchedURL:    resp.GetMatchedUrl(),
		Hint:          resp.GetHint(),
		ReplayChecked: resp.GetReplayCheck() == twilioguardv1.ReplayCheck_CHECKED,
		Duplicate:     resp.GetDuplicate(),
	}
	if !v.Valid {
		v.Reason = resp.GetReason().String()
		if resp.GetReason() == twilioguardv1.Reason_REASON_UNSPECIFIED {
			v.Reason = twilioguardv1.Reason_SIGNATURE_MISMATCH.String() // invalid without a reason: still invalid
		}
	}
	if t := resp.GetFirstSeenTime(); t != nil {
		v.FirstSeen = t.AsTime()
	}
	return v
}

type verdictKey struct{}

// VerdictFrom returns the verdict the middleware put in the context of a
// request, and whether there is one. In enforcing mode the wrapped handler
// only runs for valid requests; in shadow mode the verdict may be invalid
// (check Valid) or absent (the verifier could not decide).
func VerdictFrom(ctx context.Context) (Verdict, bool) {
	v, ok := ctx.Value(verdictKey{}).(*Verdict)
	if !ok || v == nil {
		return Verdict{}, false
	}
	return *v, true
}
