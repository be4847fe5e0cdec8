package server_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/signature"
	"github.com/twilioguard/twilioguard/store"
)

// Secrets of the accounts the admin tests create.
const (
	sid3       = "AC33333333333333333333333333333333"
	token3     = "c0ffee00c0ffee00c0ffee00c0ffee01"
	token3New  = "deadbeefdeadbeefdeadbeefdeadbee2"
	ks3Secret  = "ks3-secret-Vb6Nm8Qw0Er2Ty4Ui6Op"
	ks3Secret2 = "ks3-secret-second-Gh1Jk3Lz5Xc7Vb"
)

var adminSecrets = append([]string{token3, token3New, ks3Secret, ks3Secret2}, fixtureSecrets...)

// assertNoSecrets fails the test if text contains any of the secrets.
func assertNoSecrets(t *testing.T, what, text string) {
	t.Helper()
	for _, s := range adminSecrets {
		if strings.Contains(text, s) {
			t.Errorf("%s contains the secret %.6s…", what, s)
		}
	}
}

// assertNoSecretsIn marshals m with protojson and checks it for secrets.
func assertNoSecretsIn(t *testing.T, what string, m proto.Message) {
	t.Helper()
	b, err := protojson.Marshal(m)
	if err != nil {
		t.Fatalf("protojson.Marshal: %v", err)
	}
	assertNoSecrets(t, what, string(b))
}

// wantCode fails the test unless err is a connect error with code want.
func wantCode(t *testing.T, what string, err error, want connect.Code) {
	t.Helper()
	_ = wantCodeErr(t, what, err, want)
}

// wantCodeErr is wantCode that also returns the connect error.
func wantCodeErr(t *testing.T, what string, err error, want connect.Code) *connect.Error {
	t.Helper()
	if got := connect.CodeOf(err); got != want {
		t.Fatalf("%s: error = %v (code %v); want code %v", what, err, got, want)
	}
	var cerr *connect.Error
	if !errors.As(err, &cerr) {
		t.Fatalf("%s: error %v is not a *connect.Error", what, err)
	}
	return cerr
}

func TestAccountServiceNeedsAdminToken(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{})
	for _, p := range protocols {
		for name, bearer := range map[string]string{
			"no token":     "",
			"wrong token":  "admin-token-wrong",
			"token prefix": adminToken[:len(adminToken)-1],
		} {
			t.Run(p.name+"/"+name, func(t *testing.T) {
				t.Parallel()
				c := h.admin(p, bearer)
				ctx := t.Context()
				calls := map[string]func() error{
					"PutAccount": func() error {
						_, err := c.PutAccount(ctx, &twilioguardv1.PutAccountRequest{Account: &twilioguardv1.Account{Sid: sid3, AuthToken: token3}})
						return err
					},
					"GetAccount": func() error {
						_, err := c.GetAccount(ctx, &twilioguardv1.GetAccountRequest{Account: sid1})
						return err
					},
					"ListAccounts": func() error {
						_, err := c.ListAccounts(ctx, &twilioguardv1.ListAccountsRequest{})
						return err
					},
					"DeleteAccount": func() error {
						_, err := c.DeleteAccount(ctx, &twilioguardv1.DeleteAccountRequest{Account: sid1})
						return err
					},
					"RotateAuthToken": func() error {
						_, err := c.RotateAuthToken(ctx, &twilioguardv1.RotateAuthTokenRequest{Account: sid1, NewAuthToken: token3New})
						return err
					},
				}
				for method, call := range calls {
					cerr := wantCodeErr(t, method, call(), connect.CodeUnauthenticated)
					if !strings.Contains(cerr.Message(), "Authorization: Bearer") {
						t.Errorf("%s: message %q does not say how to authenticate", method, cerr.Message())
					}
				}
			})
		}
	}
	// Nothing was changed by the refused calls.
	if _, err := h.store.Get(t.Context(), sid3); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("refused PutAccount stored the account: Get error = %v", err)
	}
	if a, err := h.store.Get(t.Context(), sid1); err != nil || a.AuthToken != token1 {
		t.Errorf("refused calls changed account 1: %v", err)
	}
}

func TestAccountServiceLifecycle(t *testing.T) {
	t.Parallel()
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, setup{})
			admin, verifier := h.admin(p, adminToken), h.verifier(p)
			ctx := t.Context()

			verdict := func(secret string, alg signature.Algorithm, settings string) *twilioguardv1.VerifyWebhookResponse {
				t.Helper()
				ps := smsParams(sid3)
				got, err := verifier.VerifyWebhook(ctx, &twilioguardv1.VerifyWebhookRequest{
					Url: hookURL, Params: ps, Account: "support", SignatureSettings: settings,
					Signature: signature.SignWith(alg, secret, hookURL, values(ps)),
				})
				if err != nil {
					t.Fatalf("VerifyWebhook error = %v", err)
				}
				return got
			}

			// Create.
			put, err := admin.PutAccount(ctx, &twilioguardv1.PutAccountRequest{Account: &twilioguardv1.Account{
				Sid: sid3, Aliases: []string{"support"}, FriendlyName: "Support", AuthToken: token3,
				SharedKeys: []*twilioguardv1.SharedKey{{Id: "KS3", Secret: ks3Secret}},
			}})
			if err != nil {
				t.Fatalf("PutAccount (create) error = %v", err)
			}
			assertNoSecretsIn(t, "PutAccount response", put)
			created := put.Account
			if created.Version != 1 || created.CreateTime == nil || created.UpdateTime == nil {
				t.Errorf("created account: version %d, createTime %v, updateTime %v; want version 1 and both times",
					created.Version, created.CreateTime, created.UpdateTime)
			}
			if got, want := created.AuthTokenFingerprint, store.Secret(token3).Fingerprint(); got != want || got == "" {
				t.Errorf("authTokenFingerprint = %q; want %q", got, want)
			}
			wantKeys := []*twilioguardv1.SharedKey{{
				Id: "KS3", Algorithms: []twilioguardv1.Algorithm{twilioguardv1.Algorithm_HMAC_SHA256},
				SecretFingerprint: store.Secret(ks3Secret).Fingerprint(),
			}}
			if diff := cmp.Diff(wantKeys, created.SharedKeys, protocmp.Transform()); diff != "" {
				t.Errorf("sharedKeys (-want +got):\n%s", diff)
			}

			// The new account verifies at once, by alias, with both secrets.
			if got := verdict(token3, signature.HMACSHA1, ""); !got.Valid || got.AccountSid != sid3 {
				t.Errorf("verify with the new account's token = %v; want valid for %s", got, sid3)
			}
			if got := verdict(ks3Secret, signature.HMACSHA256, "key=KS3,algorithm=HMAC_SHA256"); !got.Valid || got.Credential != "KS3" {
				t.Errorf("verify with the new shared key = %v; want valid with KS3", got)
			}

			// Get by SID and by alias.
			for _, key := range []string{sid3, "support"} {
				got, err := admin.GetAccount(ctx, &twilioguardv1.GetAccountRequest{Account: key})
				if err != nil {
					t.Fatalf("GetAccount(%q) error = %v", key, err)
				}
				assertNoSecretsIn(t, "GetAccount response", got)
				if diff := cmp.Diff(created, got.Account, protocmp.Transform()); diff != "" {
					t.Errorf("GetAccount(%q) (-put +get):\n%s", key, diff)
				}
			}
			_, err = admin.GetAccount(ctx, &twilioguardv1.GetAccountRequest{Account: sidUnknown})
			wantCode(t, "GetAccount(unknown)", err, connect.CodeNotFound)
			_, err = admin.GetAccount(ctx, &twilioguardv1.GetAccountRequest{})
			wantCode(t, "GetAccount(empty)", err, connect.CodeInvalidArgument)

			// Replace with empty secrets: the stored ones are kept.
			put, err = admin.PutAccount(ctx, &twilioguardv1.PutAccountRequest{Account: &twilioguardv1.Account{
				Sid: sid3, Aliases: []string{"support"}, FriendlyName: "Support desk", Version: created.Version,
				SharedKeys: []*twilioguardv1.SharedKey{{Id: "KS3"}},
			}})
			if err != nil {
				t.Fatalf("PutAccount (replace keeping secrets) error = %v", err)
			}
			replaced := put.Account
			if replaced.Version != 2 || replaced.FriendlyName != "Support desk" ||
				replaced.AuthTokenFingerprint != created.AuthTokenFingerprint ||
				replaced.SharedKeys[0].SecretFingerprint != created.SharedKeys[0].SecretFingerprint {
				t.Errorf("replaced account = %v; want version 2, the new name and the same fingerprints", replaced)
			}
			if got := verdict(token3, signature.HMACSHA1, ""); !got.Valid {
				t.Errorf("verify after a replace with an empty authToken = %v; want valid (token kept)", got)
			}
			if got := verdict(ks3Secret, signature.HMACSHA256, "key=KS3,algorithm=HMAC_SHA256"); !got.Valid {
				t.Errorf("verify after a replace with an empty key secret = %v; want valid (secret kept)", got)
			}

			// Conflicts and refusals.
			_, err = admin.PutAccount(ctx, &twilioguardv1.PutAccountRequest{Account: &twilioguardv1.Account{
				Sid: sid3, AuthToken: token3, Version: created.Version,
			}})
			wantCode(t, "PutAccount with a stale version", err, connect.CodeAborted)
			_, err = admin.PutAccount(ctx, &twilioguardv1.PutAccountRequest{Account: &twilioguardv1.Account{
				Sid: sid3, Aliases: []string{"support", "main"}, AuthToken: token3,
			}})
			wantCode(t, "PutAccount taking another account's alias", err, connect.CodeAlreadyExists)
			cerr := wantCodeErr(t, "PutAccount creating without authToken", putErr(t, h, p, &twilioguardv1.Account{
				Sid: "AC44444444444444444444444444444444",
			}), connect.CodeInvalidArgument)
			if !strings.Contains(cerr.Message(), "authToken") {
				t.Errorf("message %q does not name authToken", cerr.Message())
			}
			wantCode(t, "PutAccount with a version for a new account", putErr(t, h, p, &twilioguardv1.Account{
				Sid: "AC44444444444444444444444444444444", AuthToken: token3, Version: 3,
			}), connect.CodeNotFound)
			wantCode(t, "PutAccount with a bad SID", putErr(t, h, p, &twilioguardv1.Account{
				Sid: "AC123", AuthToken: token3,
			}), connect.CodeInvalidArgument)
			wantCode(t, "PutAccount with a SID-like alias", putErr(t, h, p, &twilioguardv1.Account{
				Sid: sid3, AuthToken: token3, Aliases: []string{sid2},
			}), connect.CodeInvalidArgument)
			wantCode(t, "PutAccount with a token holding a space", putErr(t, h, p, &twilioguardv1.Account{
				Sid: sid3, AuthToken: "abc def",
			}), connect.CodeInvalidArgument)
			wantCode(t, "PutAccount without account", func() error {
				_, err := admin.PutAccount(ctx, &twilioguardv1.PutAccountRequest{})
				return err
			}(), connect.CodeInvalidArgument)
			if got, _ := h.store.Get(ctx, sid3); got.Version != 2 {
				t.Errorf("refused puts changed the account: version %d; want 2", got.Version)
			}

			// Delete: a stale version is refused, then the account is gone
			// from the store and from verification.
			_, err = admin.DeleteAccount(ctx, &twilioguardv1.DeleteAccountRequest{Account: "support", Version: 1})
			wantCode(t, "DeleteAccount with a stale version", err, connect.CodeAborted)
			if _, err := admin.DeleteAccount(ctx, &twilioguardv1.DeleteAccountRequest{Account: "support", Version: 2}); err != nil {
				t.Fatalf("DeleteAccount error = %v", err)
			}
			_, err = admin.GetAccount(ctx, &twilioguardv1.GetAccountRequest{Account: sid3})
			wantCode(t, "GetAccount after delete", err, connect.CodeNotFound)
			_, err = admin.DeleteAccount(ctx, &twilioguardv1.DeleteAccountRequest{Account: sid3})
			wantCode(t, "DeleteAccount twice", err, connect.CodeNotFound)
			if got := verdict(token3, signature.HMACSHA1, ""); got.Valid || got.Reason != twilioguardv1.Reason_UNKNOWN_ACCOUNT {
				t.Errorf("verify after delete = %v; want UNKNOWN_ACCOUNT", got)
			}
		})
	}
}

// putErr calls PutAccount with a and returns its error.
func putErr(t *testing.T, h *harness, p protocol, a *twilioguardv1.Account) error {
	t.Helper()
	resp, err := h.admin(p, adminToken).PutAccount(t.Context(), &twilioguardv1.PutAccountRequest{Account: a})
	if err == nil {
		t.Errorf("PutAccount(%s) = %v; want an error", a.Sid, resp)
	}
	return err
}

func TestListAccountsPaging(t *testing.T) {
	t.Parallel()
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, setup{})
			admin := h.admin(p, adminToken)
			ctx := t.Context()
			extra := []string{"AC00000000000000000000000000000001", sid3, "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}
			for _, sid := range extra {
				if _, err := admin.PutAccount(ctx, &twilioguardv1.PutAccountRequest{Account: &twilioguardv1.Account{
					Sid: sid, AuthToken: token3, SharedKeys: []*twilioguardv1.SharedKey{{Id: "k", Secret: ks3Secret}},
				}}); err != nil {
					t.Fatalf("PutAccount(%s) error = %v", sid, err)
				}
			}
			want := []string{"AC00000000000000000000000000000001", sid1, sid3, "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", sid2}

			var got []string
			var sizes []int
			token := ""
			for page := 0; ; page++ {
				if page > 5 {
					t.Fatal("ListAccounts does not end")
				}
				resp, err := admin.ListAccounts(ctx, &twilioguardv1.ListAccountsRequest{PageSize: 2, PageToken: token})
				if err != nil {
					t.Fatalf("ListAccounts(page %d) error = %v", page, err)
				}
				assertNoSecretsIn(t, "ListAccounts response", resp)
				sizes = append(sizes, len(resp.Accounts))
				for _, a := range resp.Accounts {
					got = append(got, a.Sid)
					if a.AuthTokenFingerprint == "" {
						t.Errorf("account %s has no authTokenFingerprint", a.Sid)
					}
				}
				if resp.NextPageToken == "" {
					break
				}
				token = resp.NextPageToken
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("listed SIDs (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]int{2, 2, 1}, sizes); diff != "" {
				t.Errorf("page sizes (-want +got):\n%s", diff)
			}

			all, err := admin.ListAccounts(ctx, &twilioguardv1.ListAccountsRequest{})
			if err != nil || len(all.Accounts) != 5 || all.NextPageToken != "" {
				t.Errorf("ListAccounts(default page) = %d accounts, token %q, %v; want 5, none", len(all.GetAccounts()), all.GetNextPageToken(), err)
			}
			_, err = admin.ListAccounts(ctx, &twilioguardv1.ListAccountsRequest{PageToken: "not-a-token"})
			wantCode(t, "ListAccounts with a forged token", err, connect.CodeInvalidArgument)
			_, err = admin.ListAccounts(ctx, &twilioguardv1.ListAccountsRequest{PageSize: -1})
			wantCode(t, "ListAccounts with a negative page size", err, connect.CodeInvalidArgument)
		})
	}
}

func TestRotateAuthToken(t *testing.T) {
	t.Parallel()
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, setup{})
			admin, verifier := h.admin(p, adminToken), h.verifier(p)
			ctx := t.Context()
			verdict := func(secret string) *twilioguardv1.VerifyWebhookResponse {
				t.Helper()
				got, err := verifier.VerifyWebhook(ctx, signedParams(secret, hookURL, smsParams(sid2)))
				if err != nil {
					t.Fatalf("VerifyWebhook error = %v", err)
				}
				return got
			}

			resp, err := admin.RotateAuthToken(ctx, &twilioguardv1.RotateAuthTokenRequest{
				Account: "other", NewAuthToken: token3New, Grace: durationpb.New(10 * time.Minute),
			})
			if err != nil {
				t.Fatalf("RotateAuthToken error = %v", err)
			}
			assertNoSecretsIn(t, "RotateAuthToken response", resp)
			a := resp.Account
			if a.AuthTokenFingerprint != store.Secret(token3New).Fingerprint() ||
				a.PreviousAuthTokenFingerprint != store.Secret(token2).Fingerprint() ||
				!a.PreviousExpireTime.AsTime().Equal(t0.Add(10*time.Minute)) || a.Version != 2 {
				t.Errorf("rotated account = %v; want the new and previous fingerprints, expiry %v, version 2", a, t0.Add(10*time.Minute))
			}

			if got := verdict(token3New); !got.Valid || got.Credential != "auth_token" {
				t.Errorf("new token right after rotation = %v; want valid with auth_token", got)
			}
			if got := verdict(token2); !got.Valid || got.Credential != "previous_auth_token" {
				t.Errorf("old token inside grace = %v; want valid with previous_auth_token", got)
			}
			h.clock.Advance(10*time.Minute + time.Second)
			if got := verdict(token2); got.Valid || got.Reason != twilioguardv1.Reason_SIGNATURE_MISMATCH {
				t.Errorf("old token after grace = %v; want SIGNATURE_MISMATCH", got)
			}
			if got := verdict(token3New); !got.Valid {
				t.Errorf("new token after grace = %v; want valid", got)
			}

			// The default grace is 24 hours.
			resp, err = admin.RotateAuthToken(ctx, &twilioguardv1.RotateAuthTokenRequest{Account: sid2, NewAuthToken: token3})
			if err != nil {
				t.Fatalf("RotateAuthToken (default grace) error = %v", err)
			}
			if got, want := resp.Account.PreviousExpireTime.AsTime(), h.clock.Now().Add(24*time.Hour); !got.Equal(want) {
				t.Errorf("default grace: previousExpireTime = %v; want %v", got, want)
			}

			refusals := []struct {
				name string
				req  *twilioguardv1.RotateAuthTokenRequest
				code connect.Code
			}{
				{"empty token", &twilioguardv1.RotateAuthTokenRequest{Account: sid2}, connect.CodeInvalidArgument},
				{"same token", &twilioguardv1.RotateAuthTokenRequest{Account: sid2, NewAuthToken: token3}, connect.CodeInvalidArgument},
				{"zero grace", &twilioguardv1.RotateAuthTokenRequest{Account: sid2, NewAuthToken: token3New, Grace: durationpb.New(0)}, connect.CodeInvalidArgument},
				{"negative grace", &twilioguardv1.RotateAuthTokenRequest{Account: sid2, NewAuthToken: token3New, Grace: durationpb.New(-time.Hour)}, connect.CodeInvalidArgument},
				{"no account", &twilioguardv1.RotateAuthTokenRequest{NewAuthToken: token3New}, connect.CodeInvalidArgument},
				{"unknown account", &twilioguardv1.RotateAuthTokenRequest{Account: sidUnknown, NewAuthToken: token3New}, connect.CodeNotFound},
			}
			for _, r := range refusals {
				_, err := admin.RotateAuthToken(ctx, r.req)
				cerr := wantCodeErr(t, "RotateAuthToken("+r.name+")", err, r.code)
				assertNoSecrets(t, "RotateAuthToken error", cerr.Error())
			}
			if got := verdict(token3); !got.Valid || got.Credential != "auth_token" {
				t.Errorf("after refused rotations = %v; want the last rotated token valid", got)
			}
		})
	}
}

// TestReplaceKeepsWhatIsNotGiven checks that a replace keeps the aliases and
// the friendly name it leaves empty (as it keeps secrets) unless cleared:
// dropping aliases silently would make every route naming one answer 403.
func TestReplaceKeepsWhatIsNotGiven(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{})
	admin := h.admin(protocols[0], adminToken)
	put := func(req *twilioguardv1.PutAccountRequest) (*twilioguardv1.Account, error) {
		resp, err := admin.PutAccount(t.Context(), req)
		return resp.GetAccount(), err
	}
	got, err := put(&twilioguardv1.PutAccountRequest{Account: &twilioguardv1.Account{Sid: sid1, AuthToken: token1}})
	if err != nil || !slices.Equal(got.GetAliases(), []string{"main", "sales"}) || got.GetFriendlyName() != "Main account" {
		t.Fatalf("replace without aliases or name = %v, %v; want both kept", got, err)
	}
	resp, err := h.verifier(protocols[0]).VerifyWebhook(t.Context(), withAccount(signedParams(token1, hookURL, smsParams(sid1)), "sales"))
	if err != nil || !resp.GetValid() {
		t.Errorf("verify by alias after the replace = %v, %v; want valid", resp, err)
	}
	got, err = put(&twilioguardv1.PutAccountRequest{Account: &twilioguardv1.Account{Sid: sid1, Aliases: []string{"shop"}, FriendlyName: "Shop"}})
	if err != nil || !slices.Equal(got.GetAliases(), []string{"shop"}) || got.GetFriendlyName() != "Shop" {
		t.Errorf("replace with new aliases and name = %v, %v; want them", got, err)
	}
	got, err = put(&twilioguardv1.PutAccountRequest{Account: &twilioguardv1.Account{Sid: sid1}, ClearAliases: true, ClearFriendlyName: true})
	if err != nil || len(got.GetAliases()) != 0 || got.GetFriendlyName() != "" {
		t.Errorf("replace clearing aliases and name = %v, %v; want none", got, err)
	}
	_, err = put(&twilioguardv1.PutAccountRequest{Account: &twilioguardv1.Account{Sid: sid1, Aliases: []string{"x"}}, ClearAliases: true})
	wantCode(t, "aliases with clearAliases", err, connect.CodeInvalidArgument)
}

// TestPreviousTokenLifetime checks that a write cannot keep a previous token
// alive past the rotation cap, and that an expired one is dropped.
func TestPreviousTokenLifetime(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{})
	admin := h.admin(protocols[0], adminToken)
	_, err := admin.PutAccount(t.Context(), &twilioguardv1.PutAccountRequest{Account: &twilioguardv1.Account{
		Sid: sid2, PreviousAuthToken: token3, PreviousExpireTime: timestamppb.New(t0.Add(400 * 24 * time.Hour)),
	}})
	wantCode(t, "previous token for 400 days", err, connect.CodeInvalidArgument)

	resp, err := admin.PutAccount(t.Context(), &twilioguardv1.PutAccountRequest{Account: &twilioguardv1.Account{
		Sid: sid2, PreviousAuthToken: token3, PreviousExpireTime: timestamppb.New(t0.Add(-time.Minute)),
	}})
	if err != nil || resp.GetAccount().GetPreviousAuthTokenFingerprint() != "" {
		t.Fatalf("put with an expired previous token = %v, %v; want it dropped", resp, err)
	}
	// sid1's previous token expires in an hour; once it has, any write
	// drops it from the store.
	h.clock.Advance(2 * time.Hour)
	resp, err = admin.PutAccount(t.Context(), &twilioguardv1.PutAccountRequest{Account: &twilioguardv1.Account{Sid: sid1, FriendlyName: "renamed"}})
	if err != nil || resp.GetAccount().GetPreviousAuthTokenFingerprint() != "" {
		t.Errorf("write after the previous token expired = %v, %v; want the previous token purged", resp, err)
	}
	if a, _ := h.store.Get(t.Context(), sid1); a == nil || a.PreviousAuthToken != "" {
		t.Errorf("stored account still holds its expired previous token")
	}
}

// TestAdminWritesAreLogged checks one Info line per admin write, naming the
// action, the account and its version, never a secret.
func TestAdminWritesAreLogged(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{})
	admin := h.admin(protocols[0], adminToken)
	ctx := t.Context()
	if _, err := admin.PutAccount(ctx, &twilioguardv1.PutAccountRequest{Account: &twilioguardv1.Account{Sid: sid3, AuthToken: token3}}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RotateAuthToken(ctx, &twilioguardv1.RotateAuthTokenRequest{Account: sid3, NewAuthToken: token3New}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.DeleteAccount(ctx, &twilioguardv1.DeleteAccountRequest{Account: sid3}); err != nil {
		t.Fatal(err)
	}
	logs := h.logs.String()
	for _, want := range []string{
		`level=INFO msg="admin: put account" account_sid=` + sid3 + ` version=1`,
		`level=INFO msg="admin: rotate auth token" account_sid=` + sid3 + ` version=2`,
		`level=INFO msg="admin: delete account" account_sid=` + sid3 + ` version=2`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	assertNoSecrets(t, "the log", logs)
}

func withAccount(r *twilioguardv1.VerifyWebhookRequest, account string) *twilioguardv1.VerifyWebhookRequest {
	r.Account = account
	return r
}
