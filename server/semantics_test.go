package server_test

import (
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/signature"
)

// TestReplaceKeepsWhatItLeavesOut checks that a replace that only changes
// aliases keeps the SharedKeys and the previous token of a rotation, and
// that the clear flags remove them.
func TestReplaceKeepsWhatItLeavesOut(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{})
	p := protocols[0]
	admin, v := h.admin(p, adminToken), h.verifier(p)
	prev := signedParams(prevToken1, hookURL, smsParams(sid1))
	sk := signedParams(ks1Secret, hookURL, smsParams(sid1))
	sk.Signature = signature.SignWith(signature.HMACSHA256, ks1Secret, hookURL, values(sk.Params))
	sk.SignatureSettings = "key=KS1,algorithm=HMAC_SHA256"
	verify := func(req *twilioguardv1.VerifyWebhookRequest) *twilioguardv1.VerifyWebhookResponse {
		t.Helper()
		resp, err := v.VerifyWebhook(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	put := func(req *twilioguardv1.PutAccountRequest) *twilioguardv1.Account {
		t.Helper()
		resp, err := admin.PutAccount(t.Context(), req)
		if err != nil {
			t.Fatalf("PutAccount: %v", err)
		}
		return resp.Account
	}
	got := put(&twilioguardv1.PutAccountRequest{Account: &twilioguardv1.Account{Sid: sid1, Aliases: []string{"renamed"}}})
	if len(got.SharedKeys) != 2 || got.PreviousAuthTokenFingerprint == "" {
		t.Fatalf("alias-only replace dropped secrets: %v", got)
	}
	if r := verify(prev); !r.Valid || r.Credential != "previous_auth_token" {
		t.Errorf("previous token after alias-only replace: %v", r)
	}
	if r := verify(sk); !r.Valid || r.Credential != "KS1" {
		t.Errorf("shared key after alias-only replace: %v", r)
	}

	got = put(&twilioguardv1.PutAccountRequest{Account: &twilioguardv1.Account{Sid: sid1}, ClearPreviousAuthToken: true, ClearSharedKeys: true})
	if len(got.SharedKeys) != 0 || got.PreviousAuthTokenFingerprint != "" {
		t.Fatalf("clear flags kept secrets: %v", got)
	}
	if r := verify(prev); r.Valid {
		t.Errorf("previous token still valid after clearPreviousAuthToken: %v", r)
	}
	if r := verify(sk); r.Valid || r.Reason != twilioguardv1.Reason_UNKNOWN_SHARED_KEY {
		t.Errorf("shared key after clearSharedKeys: %v; want UNKNOWN_SHARED_KEY", r)
	}
}

// TestVerdictSemantics covers answers whose choice between verdict and
// error, or between reasons, is part of the contract.
func TestVerdictSemantics(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{})
	v := h.verifier(protocols[0])
	wrongSig := signedParams(token2, hookURL, smsParams(sid1))
	notAllowed := signedParams(token1, hookURL, smsParams(sid1))
	notAllowed.AllowedAccounts = []string{"other"}
	forgedNotAllowed := signedParams(token2, hookURL, smsParams(sid1))
	forgedNotAllowed.AllowedAccounts = []string{"other"}
	userinfo := "https://user:hunter2@hooks.example.com/sms"
	withPassword := signedParams(token1, userinfo, smsParams(sid1))
	jsonBody := []byte("  \n{\"AccountSid\":\"" + sid1 + "\",\"x\":1}")
	jsonURL := "https://hooks.example.com/events?bodySHA256=" + signature.BodySHA256(jsonBody)
	spacedJSON := &twilioguardv1.VerifyWebhookRequest{Url: jsonURL, Body: jsonBody, ContentType: "application/json",
		Signature: signature.Sign(token1, jsonURL, nil)}

	tests := []struct {
		name       string
		req        *twilioguardv1.VerifyWebhookRequest
		wantCode   connect.Code // 0: a verdict
		wantValid  bool
		wantReason twilioguardv1.Reason
		check      func(*twilioguardv1.VerifyWebhookResponse) string
	}{
		{name: "malformed URL, unknown account", wantCode: connect.CodeInvalidArgument,
			req: &twilioguardv1.VerifyWebhookRequest{Url: "https://[::1/sms", Account: "nosuch", Signature: wrongSig.Signature}},
		{name: "malformed URL, known account", wantCode: connect.CodeInvalidArgument,
			req: &twilioguardv1.VerifyWebhookRequest{Url: "https://[::1/sms", Account: sid1, Signature: wrongSig.Signature}},
		{name: "malformed form body, unknown account", wantCode: connect.CodeInvalidArgument,
			req: &twilioguardv1.VerifyWebhookRequest{Url: hookURL, Account: "nosuch", Body: []byte("a=%zz"),
				ContentType: "application/x-www-form-urlencoded", Signature: "abc"}},
		{name: "malformed settings, unknown account", wantCode: connect.CodeInvalidArgument,
			req: &twilioguardv1.VerifyWebhookRequest{Url: hookURL, Account: "nosuch", SignatureSettings: "garbage", Signature: "abc"}},
		{name: "valid signature of an account the route does not allow", req: notAllowed,
			wantReason: twilioguardv1.Reason_ACCOUNT_NOT_ALLOWED},
		{name: "forged signature claiming an account the route does not allow", req: forgedNotAllowed,
			wantReason: twilioguardv1.Reason_SIGNATURE_MISMATCH},
		{name: "matched URL hides the password", req: withPassword, wantValid: true,
			check: func(r *twilioguardv1.VerifyWebhookResponse) string {
				if strings.Contains(r.MatchedUrl, "hunter2") || !strings.Contains(r.MatchedUrl, "hooks.example.com") {
					return "matchedUrl = " + r.MatchedUrl
				}
				return ""
			}},
		{name: "AccountSid of a JSON body after white space", req: spacedJSON, wantValid: true},
	}
	for _, tt := range tests {
		resp, err := v.VerifyWebhook(t.Context(), tt.req)
		if tt.wantCode != 0 {
			if connect.CodeOf(err) != tt.wantCode {
				t.Errorf("%s: err = %v; want %v", tt.name, err, tt.wantCode)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if resp.Valid != tt.wantValid || resp.Reason != tt.wantReason {
			t.Errorf("%s: valid=%v reason=%v; want %v %v", tt.name, resp.Valid, resp.Reason, tt.wantValid, tt.wantReason)
		}
		if tt.check != nil {
			if msg := tt.check(resp); msg != "" {
				t.Errorf("%s: %s", tt.name, msg)
			}
		}
	}
}

// TestAdminInputRanges checks that times no store can hold are refused as
// invalid input, not failed as internal errors.
func TestAdminInputRanges(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{})
	admin := h.admin(protocols[0], adminToken)
	_, err := admin.PutAccount(t.Context(), &twilioguardv1.PutAccountRequest{Account: &twilioguardv1.Account{
		Sid: sid2, PreviousAuthToken: "prevprevprev", PreviousExpireTime: &timestamppb.Timestamp{Seconds: 253402300799},
	}})
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("year 9999 expiry: %v; want InvalidArgument", err)
	}
	_, err = admin.RotateAuthToken(t.Context(), &twilioguardv1.RotateAuthTokenRequest{Account: sid2, NewAuthToken: "fresh-token-123",
		Grace: &durationpb.Duration{Seconds: 315576000000}})
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("10,000-year grace: %v; want InvalidArgument", err)
	}
}

// TestJSONCharsetCodec checks that both JSON content types ignore unknown
// fields (as the binary codec does, so newer clients work with older
// servers) and never repeat the input in their errors.
func TestJSONCharsetCodec(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{})
	for _, ct := range []string{"application/json", "application/json; charset=utf-8"} {
		code, body := h.post(t, "/twilioguard.v1.AccountService/PutAccount", ct,
			[]byte(`{"account":{"sid":"`+sid2+`","fieldFromTheFuture":"SUPERSECRET-TOKEN"}}`), "Authorization", "Bearer "+adminToken)
		if code != 200 || strings.Contains(string(body), "SUPERSECRET") {
			t.Errorf("%s unknown field: HTTP %d %s; want 200 without the input", ct, code, body)
		}
		code, body = h.post(t, "/twilioguard.v1.AccountService/PutAccount", ct,
			[]byte(`{"account":{"sid":"`+sid2+`","friendlyName":{"SUPERSECRET-TOKEN":1}}}`), "Authorization", "Bearer "+adminToken)
		if code != 400 || strings.Contains(string(body), "SUPERSECRET") {
			t.Errorf("%s wrong type: HTTP %d %s; want 400 without the input", ct, code, body)
		}
		code, body = h.post(t, "/twilioguard.v1.VerifierService/VerifyWebhook", ct,
			[]byte(`{"url":"`+hookURL+`","body":"SUPERSECRET!!"}`))
		if code != 400 || strings.Contains(string(body), "SUPERSECRET") {
			t.Errorf("%s bad bytes: HTTP %d %s; want 400 without the input", ct, code, body)
		}
	}
}
