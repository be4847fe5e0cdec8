package server_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"connectrpc.com/connect"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/signature"
	"github.com/twilioguard/twilioguard/store"
)

// signedForm returns a body-mode request of rawURL with the raw form body,
// signed with secret exactly as Twilio signs it.
func signedForm(t *testing.T, secret, rawURL, body string) *twilioguardv1.VerifyWebhookRequest {
	t.Helper()
	params, err := signature.ParseForm([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return &twilioguardv1.VerifyWebhookRequest{
		Url: rawURL, Body: []byte(body), ContentType: formType, Signature: signature.Sign(secret, rawURL, params),
	}
}

// TestAccountConsistency checks that a request signed with one account's
// token but naming another account anywhere an application may read it is
// refused with ACCOUNT_MISMATCH: otherwise any tenant of a multi-account app
// could act as another with its own token.
func TestAccountConsistency(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{})
	a, b := sid1, sid2
	jsonBody := func(v map[string]any) []byte { out, _ := json.Marshal(v); return out }
	tests := []struct {
		name string
		req  *twilioguardv1.VerifyWebhookRequest
		want twilioguardv1.Reason // REASON_UNSPECIFIED: valid
	}{
		{"own account only", signedForm(t, token1, hookURL, "AccountSid="+a+"&Body=hi"), 0},
		{"encoded key names another", signedForm(t, token1, hookURL, "Account%53id="+b+"&AccountSid="+a), twilioguardv1.Reason_ACCOUNT_MISMATCH},
		{"first key encoded", signedForm(t, token1, hookURL, "%41ccountSid="+a+"&AccountSid="+b), twilioguardv1.Reason_ACCOUNT_MISMATCH},
		{"repeated key", signedForm(t, token1, hookURL, "AccountSid="+a+"&AccountSid="+b), twilioguardv1.Reason_ACCOUNT_MISMATCH},
		{"query names another", signedForm(t, token1, hookURL+"?AccountSid="+b, "AccountSid="+a), twilioguardv1.Reason_ACCOUNT_MISMATCH},
		{"encoded query key", signedForm(t, token1, hookURL+"?Account%53id="+b, "AccountSid="+a), twilioguardv1.Reason_ACCOUNT_MISMATCH},
		{"query names the same", signedForm(t, token1, hookURL+"?AccountSid="+a, "AccountSid="+a), 0},
		{"account field and body disagree", withAccount(signedForm(t, token1, hookURL, "AccountSid="+b), a), twilioguardv1.Reason_ACCOUNT_MISMATCH},
		{"params repeat", signedParams(token1, hookURL, params("AccountSid", a, "AccountSid", b)), twilioguardv1.Reason_ACCOUNT_MISMATCH},
	}
	jb := jsonBody(map[string]any{"AccountSid": a, "account_sid": b})
	jsonURL := hookURL + "?bodySHA256=" + signature.BodySHA256(jb)
	tests = append(tests, struct {
		name string
		req  *twilioguardv1.VerifyWebhookRequest
		want twilioguardv1.Reason
	}{"JSON names two", &twilioguardv1.VerifyWebhookRequest{Url: jsonURL, Body: jb, ContentType: jsonType, Account: a,
		Signature: signature.Sign(token1, jsonURL, nil)}, twilioguardv1.Reason_ACCOUNT_MISMATCH})
	for _, p := range protocols {
		for _, tt := range tests {
			resp, err := h.verifier(p).VerifyWebhook(t.Context(), tt.req)
			if err != nil {
				t.Fatalf("%s/%s: %v", p.name, tt.name, err)
			}
			if resp.GetValid() != (tt.want == 0) || resp.GetReason() != tt.want {
				t.Errorf("%s/%s: valid=%v reason=%v; want reason %v", p.name, tt.name, resp.GetValid(), resp.GetReason(), tt.want)
			}
			if resp.GetAccountSid() != a {
				t.Errorf("%s/%s: account %s; want the verified one, %s", p.name, tt.name, resp.GetAccountSid(), a)
			}
		}
	}
	// The form parser of the application agrees: Go reads the last value
	// when the query names another account.
	u, _ := url.Parse(hookURL + "?AccountSid=" + b)
	if u.Query().Get("AccountSid") != b {
		t.Fatal("test premise: the query names the other account")
	}
}

// TestUnreadableAccountIsIsolated checks that an account whose secrets the
// store cannot read answers Unavailable for its own requests only, is
// counted (never named) in the status, and can be repaired through the
// admin API.
func TestUnreadableAccountIsIsolated(t *testing.T) {
	t.Parallel()
	broken := &store.Account{SID: sid3, Aliases: []string{"broken"}, Unreadable: []string{"auth_token"}}
	h := newHarness(t, setup{accounts: append(defaultAccounts(), broken)})
	ctx := t.Context()
	for _, p := range protocols {
		resp, err := h.verifier(p).VerifyWebhook(ctx, signedParams(token1, hookURL, smsParams(sid1)))
		if err != nil || !resp.GetValid() {
			t.Errorf("%s: a healthy account = %v, %v; want valid", p.name, resp, err)
		}
		_, err = h.verifier(p).VerifyWebhook(ctx, signedParams(token3, hookURL, smsParams(sid3)))
		cerr := wantCodeErr(t, p.name+": the broken account", err, connect.CodeUnavailable)
		if !strings.Contains(cerr.Message(), "cannot be read") || strings.Contains(cerr.Message(), token3) {
			t.Errorf("%s: message %q; want it to say the secret cannot be read", p.name, cerr.Message())
		}
	}
	if st := h.srv.Status(); st.Unreadable != 1 || st.Accounts != 3 {
		t.Errorf("Status = %+v; want 1 unreadable of 3", st)
	}
	if _, page := h.get(t, "/metrics"); !strings.Contains(page, "twilioguard_cache_unreadable_accounts 1") {
		t.Errorf("/metrics lacks twilioguard_cache_unreadable_accounts 1")
	}

	admin := h.admin(protocols[0], adminToken)
	got, err := admin.GetAccount(ctx, &twilioguardv1.GetAccountRequest{Account: "broken"})
	if err != nil || len(got.GetAccount().GetUnreadableSecrets()) != 1 || got.GetAccount().GetUnreadableSecrets()[0] != "auth_token" {
		t.Fatalf("GetAccount(broken) = %v, %v; want unreadableSecrets [auth_token]", got, err)
	}
	list, err := admin.ListAccounts(ctx, &twilioguardv1.ListAccountsRequest{})
	if err != nil || len(list.GetAccounts()) != 3 {
		t.Errorf("ListAccounts = %v, %v; want all 3", list, err)
	}
	_, err = admin.PutAccount(ctx, &twilioguardv1.PutAccountRequest{Account: &twilioguardv1.Account{Sid: sid3, FriendlyName: "x"}})
	if cerr := wantCodeErr(t, "put without a new token", err, connect.CodeInvalidArgument); !strings.Contains(cerr.Message(), "cannot be read") {
		t.Errorf("message %q; want it to say the stored token cannot be read", cerr.Message())
	}
	if _, err := admin.PutAccount(ctx, &twilioguardv1.PutAccountRequest{Account: &twilioguardv1.Account{Sid: sid3, AuthToken: token3}}); err != nil {
		t.Fatalf("repairing put: %v", err)
	}
	resp, err := h.verifier(protocols[0]).VerifyWebhook(ctx, withAccount(signedParams(token3, hookURL, smsParams(sid3)), "broken"))
	if err != nil || !resp.GetValid() {
		t.Errorf("after the repair = %v, %v; want valid (aliases kept)", resp, err)
	}
	if st := h.srv.Status(); st.Unreadable != 0 {
		t.Errorf("Status after the repair = %+v; want none unreadable", st)
	}
	if _, err := admin.DeleteAccount(ctx, &twilioguardv1.DeleteAccountRequest{Account: sid3}); err != nil {
		t.Errorf("DeleteAccount: %v", err)
	}
}
