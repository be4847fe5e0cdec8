package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"connectrpc.com/connect"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
)

// TestRequestLimits checks limits that protect the server from callers:
// each is refused with InvalidArgument and a message naming the field.
func TestRequestLimits(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{})
	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprintf("alias%d", i)
	}
	for _, p := range protocols {
		v := h.verifier(p)
		admin := h.admin(p, adminToken)
		tests := []struct {
			name string
			call func(context.Context) error
			want string
		}{
			{"too many allowedAccounts", func(ctx context.Context) error {
				req := signedParams(token1, "https://example.com/sms", smsParams(sid1))
				req.AllowedAccounts = many
				_, err := v.VerifyWebhook(ctx, req)
				return err
			}, "allowedAccounts"},
			{"negative put version", func(ctx context.Context) error {
				_, err := admin.PutAccount(ctx, &twilioguardv1.PutAccountRequest{Account: &twilioguardv1.Account{Sid: sid2, Version: -1}})
				return err
			}, "version"},
			{"negative delete version", func(ctx context.Context) error {
				_, err := admin.DeleteAccount(ctx, &twilioguardv1.DeleteAccountRequest{Account: sid2, Version: -1})
				return err
			}, "version"},
		}
		for _, tt := range tests {
			err := tt.call(t.Context())
			if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s/%s: err = %v; want InvalidArgument naming %q", p.name, tt.name, err, tt.want)
			}
		}
	}
}

// TestBearerSchemeCaseInsensitive checks that the auth scheme name is
// matched without regard to case, as RFC 9110 says; the token is not.
func TestBearerSchemeCaseInsensitive(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{})
	tests := []struct {
		header string
		want   connect.Code
	}{
		{"bearer " + adminToken, 0},
		{"BEARER " + adminToken, 0},
		{"Bearer " + strings.ToUpper(adminToken), connect.CodeUnauthenticated},
		{"Basic " + adminToken, connect.CodeUnauthenticated},
		{adminToken, connect.CodeUnauthenticated},
	}
	for _, tt := range tests {
		code, body := h.post(t, "/twilioguard.v1.AccountService/ListAccounts", "application/json", []byte(`{}`), "Authorization", tt.header)
		gotOK := code == 200
		if (tt.want == 0) != gotOK {
			t.Errorf("Authorization %.12q…: HTTP %d %s; want ok=%v", tt.header, code, body, tt.want == 0)
		}
	}
}
