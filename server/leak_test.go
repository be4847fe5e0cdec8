package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/gen/twilioguard/v1/twilioguardv1connect"
)

// TestNoSecretLeaks runs valid, invalid and failing verifications and admin
// calls (including refused ones, and calls while the store is down), then
// searches the debug log, /metrics and everything the server sent for every
// secret in play.
func TestNoSecretLeaks(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{})
	ctx := t.Context()

	for _, p := range protocols {
		v := h.verifier(p)
		for _, tc := range verdictCases() {
			_, _ = v.VerifyWebhook(ctx, tc.req)
		}
		// Errors, including ones that name the credentials' neighbourhood.
		for _, req := range []*twilioguardv1.VerifyWebhookRequest{
			{Url: "ftp://x", Signature: "x"},
			{Url: hookURL, Body: []byte("a=%zz"), ContentType: formType, Signature: "x", Account: sid1},
			{Url: hookURL, Params: smsParams(sid1), Signature: signedParams(token1, hookURL, nil).Signature, SignatureSettings: "key=", Account: sid1},
		} {
			_, _ = v.VerifyWebhook(ctx, req)
		}

		// Admin calls with secrets in the requests, succeeding and failing.
		admin := h.admin(p, adminToken)
		for _, bearer := range []string{"", token1, adminToken + "x"} {
			_, _ = h.admin(p, bearer).GetAccount(ctx, &twilioguardv1.GetAccountRequest{Account: sid1})
		}
		for _, a := range []*twilioguardv1.Account{
			{Sid: sid3, Aliases: []string{"support"}, AuthToken: token3, SharedKeys: []*twilioguardv1.SharedKey{{Id: "KS3", Secret: ks3Secret}}},
			{Sid: sid3, AuthToken: token3New, PreviousAuthToken: token3, PreviousExpireTime: timestamppb.New(t0.Add(time.Hour))},
			{Sid: sid3, Aliases: []string{"main"}, AuthToken: token3New},  // alias taken
			{Sid: sid3, AuthToken: token3New + " " + ks3Secret2},          // whitespace
			{Sid: sid3, AuthToken: strings.Repeat(token3New, 20)},         // too long
			{Sid: sid3, AuthToken: token3, PreviousAuthToken: ks3Secret2}, // no expiry
			{Sid: sid3, AuthToken: token3, SharedKeys: []*twilioguardv1.SharedKey{{Id: "k", Secret: ks3Secret, Algorithms: []twilioguardv1.Algorithm{9}}}},
			{Sid: sid3, AuthToken: token3, Version: 99}, // stale
		} {
			_, _ = admin.PutAccount(ctx, &twilioguardv1.PutAccountRequest{Account: a})
		}
		_, _ = admin.GetAccount(ctx, &twilioguardv1.GetAccountRequest{Account: "support"})
		_, _ = admin.ListAccounts(ctx, &twilioguardv1.ListAccountsRequest{PageSize: 1})
		_, _ = admin.RotateAuthToken(ctx, &twilioguardv1.RotateAuthTokenRequest{Account: sid2, NewAuthToken: token3New, Grace: durationpb.New(time.Minute)})
		_, _ = admin.RotateAuthToken(ctx, &twilioguardv1.RotateAuthTokenRequest{Account: sid2, NewAuthToken: token3New}) // same token
		_, _ = admin.RotateAuthToken(ctx, &twilioguardv1.RotateAuthTokenRequest{Account: sid2, NewAuthToken: "\t" + ks3Secret2})

		// The store goes down.
		h.store.SetDown(true)
		h.srv.CheckStore(ctx)
		_, _ = admin.PutAccount(ctx, &twilioguardv1.PutAccountRequest{Account: &twilioguardv1.Account{Sid: sid3, AuthToken: ks3Secret2}})
		_, _ = admin.RotateAuthToken(ctx, &twilioguardv1.RotateAuthTokenRequest{Account: sid1, NewAuthToken: ks3Secret2})
		_, _ = v.VerifyWebhook(ctx, signedParams(token1, hookURL, smsParams(sid1)))
		h.store.SetDown(false)
		h.srv.CheckStore(ctx)
		_, _ = admin.DeleteAccount(ctx, &twilioguardv1.DeleteAccountRequest{Account: sid3})
	}

	// Raw JSON admin calls with secrets in bad places.
	put := twilioguardv1connect.AccountServicePutAccountProcedure
	for _, body := range []string{
		`{"account":{"sid":"` + sid3 + `","authToken":"` + token3 + `","friendlyName":5}}`,
		`{"account":{"sid":"` + sid3 + `","authToken":"` + token3 + `","sharedKeys":[{"id":"k","secret":"` + ks3Secret + `","algorithms":["MD5"]}]}}`,
		`{"account":{"sid":"` + sid3 + `","authToken":"` + token3 + `"`,
		`{"account":{"sid":"` + sid3 + `","authToken":"` + token3 + `\x"}}`,
		`{"account":{"sid":"` + sid3 + `","` + token3 + `":"x"}}`,
	} {
		h.post(t, put, jsonType, []byte(body), "Authorization", "Bearer "+adminToken)
		h.post(t, put, jsonType, []byte(body), "Authorization", "Bearer "+token1)
	}

	_, metrics := h.get(t, "/metrics")
	ready := fmt.Sprintf("%+v", h.srv.Status())
	secrets := append([]string(nil), adminSecrets...)
	for _, where := range []struct{ name, text string }{
		{"the debug log", h.logs.String()},
		{"/metrics", metrics},
		{"the status", ready},
		{"the responses", h.responses.String()},
	} {
		if where.text == "" {
			t.Errorf("%s is empty: the test checks nothing", where.name)
		}
		for _, s := range secrets {
			if i := strings.Index(where.text, s); i >= 0 {
				t.Errorf("%s contains the secret %.6s…: %q", where.name, s, where.text[max(0, i-120):min(len(where.text), i+len(s)+20)])
			}
		}
	}
}

// TestNoURLPasswordInLogs checks that a webhook URL's user information
// (Twilio supports https://user:password@host/ webhook URLs) is not written
// to the log when the URL is refused.
func TestNoURLPasswordInLogs(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{})
	const password = "url-password-Tr5Yh7Uj9Ik"
	for _, u := range []string{
		"https://twilio:" + password + "@hooks.example.com/sms with space",
		"ftp://twilio:" + password + "@hooks.example.com/sms",
		"https://twilio:" + password + "@hooks.example.com:99999/sms",
		"https://twilio:" + password + "@hooks.example.com/" + strings.Repeat("a", 9000),
	} {
		_, _ = h.verifier(protocols[0]).VerifyWebhook(t.Context(), &twilioguardv1.VerifyWebhookRequest{
			Url: u, Params: smsParams(sid1), Signature: signedParams(token1, hookURL, nil).Signature,
		})
	}
	logs := h.logs.String()
	if !strings.Contains(logs, "webhook not decided") {
		t.Fatalf("no refusal was logged:\n%s", logs)
	}
	if i := strings.Index(logs, password); i >= 0 {
		t.Errorf("the log contains a webhook URL's password: %q", logs[max(0, i-80):min(len(logs), i+40)])
	}
}

// TestNoSecretEchoInDecodeErrors sends PutAccount JSON that does not decode
// because of a typo next to a secret (an unquoted token, as a shell script
// easily produces). The error must say what is wrong without repeating the
// secret: CLIs print such messages and CI logs keep them.
func TestNoSecretEchoInDecodeErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{})
	put := twilioguardv1connect.AccountServicePutAccountProcedure
	for _, body := range []string{
		`{"account":{"sid":"` + sid3 + `","authToken":` + token3 + `}}`,
		`{"account":{"sid":"` + sid3 + `","authToken" "` + token3 + `"}}`,
		`{"account":{"sid":"` + sid3 + `","authToken":"x","sharedKeys":[{"id":"k","secret":` + ks3Secret + `}]}}`,
	} {
		status, resp := h.post(t, put, jsonType, []byte(body), "Authorization", "Bearer "+adminToken)
		if status != 400 {
			t.Errorf("PutAccount(%.60s…) status = %d; want 400", body, status)
		}
		for _, s := range []string{token3, ks3Secret} {
			if strings.Contains(string(resp), s) {
				t.Errorf("PutAccount error repeats the secret %.6s…: %s", s, resp)
			}
		}
	}
}
