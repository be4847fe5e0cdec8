// Package verifiertest is a hand-written VerifyWebhook fake for the tests
// of the adapters (proxy, forward-auth): it checks signatures in process
// with one account's auth token, as the service does, records what it was
// asked, and can be told to fail or to report duplicates.
package verifiertest

import (
	"context"
	"errors"
	"mime"
	"slices"
	"sync"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/signature"
)

// Verifier verifies with one account's auth token. Create one with [New];
// it is safe for concurrent use.
type Verifier struct {
	sid, token string

	mu   sync.Mutex
	reqs []*twilioguardv1.VerifyWebhookRequest
	err  error
	dup  bool
}

// New returns a Verifier for the account sid with auth token token.
func New(sid, token string) *Verifier { return &Verifier{sid: sid, token: token} }

// Fail makes every later call return err (nil: verify again).
func (v *Verifier) Fail(err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.err = err
}

// Duplicate makes every later valid answer report a duplicate (or not).
func (v *Verifier) Duplicate(dup bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.dup = dup
}

// VerifyWebhook answers as the service would for one account: valid, or
// invalid with MISSING_SIGNATURE, ACCOUNT_NOT_ALLOWED or
// SIGNATURE_MISMATCH; InvalidArgument for a malformed request.
func (v *Verifier) VerifyWebhook(_ context.Context, req *twilioguardv1.VerifyWebhookRequest) (*twilioguardv1.VerifyWebhookResponse, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.reqs = append(v.reqs, proto.CloneOf(req))
	if v.err != nil {
		return nil, v.err
	}
	mt, _, _ := mime.ParseMediaType(req.GetContentType())
	sreq := &signature.Request{URL: req.GetUrl(), Body: req.GetBody(), ContentType: mt,
		HasBody: req.GetContentType() != "" || len(req.GetBody()) > 0, Signature: req.GetSignature()}
	_, err := signature.Check(sreq, []signature.Credential{{Name: "auth_token", Secret: v.token}})
	resp := &twilioguardv1.VerifyWebhookResponse{AccountSid: v.sid}
	switch {
	case errors.Is(err, signature.ErrMalformedRequest):
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	case errors.Is(err, signature.ErrMissingSignature):
		resp.Reason = twilioguardv1.Reason_MISSING_SIGNATURE
	case err != nil:
		resp.Reason = twilioguardv1.Reason_SIGNATURE_MISMATCH
	case len(req.GetAllowedAccounts()) > 0 && !slices.Contains(req.GetAllowedAccounts(), v.sid):
		resp.Reason = twilioguardv1.Reason_ACCOUNT_NOT_ALLOWED
	default:
		resp.Valid, resp.Credential = true, "auth_token"
		resp.Duplicate, resp.ReplayCheck = proto.Bool(v.dup), twilioguardv1.ReplayCheck_CHECKED
	}
	return resp, nil
}

// Requests returns the requests seen so far.
func (v *Verifier) Requests() []*twilioguardv1.VerifyWebhookRequest {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.reqs)
}

// URLs returns the URLs of the requests seen so far.
func (v *Verifier) URLs() []string {
	var out []string
	for _, r := range v.Requests() {
		out = append(out, r.GetUrl())
	}
	return out
}
