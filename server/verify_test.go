package server_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/server"
	"github.com/twilioguard/twilioguard/signature"
)

const (
	formType = "application/x-www-form-urlencoded"
	jsonType = "application/json"
)

// jsonHook is a JSON webhook body (as Twilio's event streams send), which
// carries no AccountSid.
var jsonHook = []byte(`{"type":"com.twilio.messaging.inbound-message.received","data":{"body":"hi ☕","to":"+15005550006"}}`)

// hashedURL returns hookURL with the bodySHA256 query parameter of body.
func hashedURL(body []byte) string {
	return hookURL + "?bodySHA256=" + signature.BodySHA256(body)
}

func valid(sid, credential, matchedURL string, alg twilioguardv1.Algorithm) *twilioguardv1.VerifyWebhookResponse {
	return &twilioguardv1.VerifyWebhookResponse{
		Valid: true, AccountSid: sid, Credential: credential, MatchedUrl: matchedURL, Algorithm: alg,
	}
}

func invalidFor(sid string, reason twilioguardv1.Reason) *twilioguardv1.VerifyWebhookResponse {
	return &twilioguardv1.VerifyWebhookResponse{AccountSid: sid, Reason: reason}
}

// verdictCase is one VerifyWebhook call that must answer with a verdict.
type verdictCase struct {
	name string
	req  *twilioguardv1.VerifyWebhookRequest
	want *twilioguardv1.VerifyWebhookResponse // compared without hint
	hint string                               // substring of the hint; "" wants no hint
}

func verdictCases() []verdictCase {
	sms := smsParams(sid1)
	withAccount := func(r *twilioguardv1.VerifyWebhookRequest, account string) *twilioguardv1.VerifyWebhookRequest {
		r.Account = account
		return r
	}

	// A raw form body with repeated keys, empty values, '+' and %20, and
	// the parameters Twilio signed for it, decoded by hand.
	formBody := "AccountSid=" + sid1 + "&Body=Hello+big%20world%21&To=%2B15005550006&Empty=&Rep=b&Rep=a&Rep=b&Flag"
	formSigned := url.Values{
		"AccountSid": {sid1},
		"Body":       {"Hello big world!"},
		"To":         {"+15005550006"},
		"Empty":      {""},
		"Rep":        {"b", "a"},
		"Flag":       {""},
	}

	jsonURL := hashedURL(jsonHook)
	jsonSig := signature.Sign(token1, jsonURL, nil)
	tampered := []byte(strings.Replace(string(jsonHook), "hi", "HI", 1))

	sig := signature.Sign(token1, hookURL, values(sms))
	malformed := func(name, s string) verdictCase {
		return verdictCase{
			name: "malformed signature " + name,
			req:  &twilioguardv1.VerifyWebhookRequest{Url: hookURL, Params: sms, Signature: s},
			want: invalidFor(sid1, twilioguardv1.Reason_MALFORMED_SIGNATURE),
		}
	}

	httpURL := "http://hooks.example.com/twilio/sms"
	swapped := signedParams(token1, hookURL, sms)
	swapped.Url = httpURL

	portURL := "https://hooks.example.com:443/twilio/sms"
	withPort := signedParams(token1, hookURL, sms)
	withPort.Url = portURL

	sharedKey := func(settings string, alg signature.Algorithm, secret string) *twilioguardv1.VerifyWebhookRequest {
		return &twilioguardv1.VerifyWebhookRequest{
			Url:               hookURL,
			Params:            sms,
			Signature:         signature.SignWith(alg, secret, hookURL, values(sms)),
			SignatureSettings: settings,
		}
	}

	return []verdictCase{
		{
			name: "params",
			req:  withAccount(signedParams(token1, hookURL, sms), sid1),
			want: valid(sid1, "auth_token", hookURL, twilioguardv1.Algorithm_HMAC_SHA1),
		},
		{
			name: "raw form body",
			req: &twilioguardv1.VerifyWebhookRequest{
				Url:         hookURL,
				Body:        []byte(formBody),
				ContentType: formType + "; charset=utf-8",
				Signature:   signature.Sign(token1, hookURL, formSigned),
			},
			want: valid(sid1, "auth_token", hookURL, twilioguardv1.Algorithm_HMAC_SHA1),
		},
		{
			name: "json body with bodySHA256",
			req: &twilioguardv1.VerifyWebhookRequest{
				Url: jsonURL, Body: jsonHook, ContentType: jsonType, Signature: jsonSig, Account: sid1,
			},
			want: valid(sid1, "auth_token", jsonURL, twilioguardv1.Algorithm_HMAC_SHA1),
		},
		{
			name: "json body tampered",
			req: &twilioguardv1.VerifyWebhookRequest{
				Url: jsonURL, Body: tampered, ContentType: jsonType, Signature: jsonSig, Account: sid1,
			},
			want: invalidFor(sid1, twilioguardv1.Reason_BODY_HASH_MISMATCH),
		},
		{
			name: "json body without bodySHA256",
			req: &twilioguardv1.VerifyWebhookRequest{
				Url: hookURL, Body: jsonHook, ContentType: jsonType,
				Signature: signature.Sign(token1, hookURL, nil), Account: sid1,
			},
			want: invalidFor(sid1, twilioguardv1.Reason_MISSING_BODY_HASH),
		},
		{
			name: "missing signature",
			req:  &twilioguardv1.VerifyWebhookRequest{Url: hookURL, Params: sms},
			want: invalidFor(sid1, twilioguardv1.Reason_MISSING_SIGNATURE),
		},
		malformed("not base64", strings.Repeat("!", 27)+"="),
		malformed("27 chars", sig[:27]),
		malformed("unpadded", strings.TrimRight(sig, "=")),
		malformed("huge", strings.Repeat("QUJD", 10<<10/4)),
		{
			name: "wrong token",
			req:  signedParams("00000000000000000000000000000000", hookURL, sms),
			want: invalidFor(sid1, twilioguardv1.Reason_SIGNATURE_MISMATCH),
		},
		{
			name: "http/https swap",
			req:  swapped,
			want: invalidFor(sid1, twilioguardv1.Reason_SIGNATURE_MISMATCH),
			hint: "https://",
		},
		{
			name: "unknown account",
			req:  withAccount(signedParams(token1, hookURL, sms), sidUnknown),
			want: invalidFor("", twilioguardv1.Reason_UNKNOWN_ACCOUNT),
		},
		{
			name: "unknown alias",
			req:  withAccount(signedParams(token1, hookURL, sms), "nobody"),
			want: invalidFor("", twilioguardv1.Reason_UNKNOWN_ACCOUNT),
		},
		{
			name: "no account named",
			req: &twilioguardv1.VerifyWebhookRequest{
				Url: jsonURL, Body: jsonHook, ContentType: jsonType, Signature: jsonSig,
			},
			want: invalidFor("", twilioguardv1.Reason_UNKNOWN_ACCOUNT),
			hint: "allowedAccounts",
		},
		{
			name: "account by alias",
			req:  withAccount(signedParams(token1, hookURL, params("Body", "x")), "sales"),
			want: valid(sid1, "auth_token", hookURL, twilioguardv1.Algorithm_HMAC_SHA1),
		},
		{
			name: "account from AccountSid param",
			req:  signedParams(token2, hookURL, smsParams(sid2)),
			want: valid(sid2, "auth_token", hookURL, twilioguardv1.Algorithm_HMAC_SHA1),
		},
		{
			name: "account field wins over AccountSid param",
			req:  withAccount(signedParams(token2, hookURL, smsParams(sid2)), sid1),
			want: invalidFor(sid1, twilioguardv1.Reason_SIGNATURE_MISMATCH),
		},
		{
			name: "allowedAccounts refuses another account",
			req: func() *twilioguardv1.VerifyWebhookRequest {
				r := signedParams(token1, hookURL, sms)
				r.AllowedAccounts = []string{"other"}
				return r
			}(),
			want: invalidFor(sid1, twilioguardv1.Reason_ACCOUNT_NOT_ALLOWED),
		},
		{
			name: "allowedAccounts accepts its account",
			req: func() *twilioguardv1.VerifyWebhookRequest {
				r := signedParams(token1, hookURL, sms)
				r.AllowedAccounts = []string{"other", "main"}
				return r
			}(),
			want: valid(sid1, "auth_token", hookURL, twilioguardv1.Algorithm_HMAC_SHA1),
		},
		{
			name: "json without AccountSid and one allowed account",
			req: &twilioguardv1.VerifyWebhookRequest{
				Url: jsonURL, Body: jsonHook, ContentType: jsonType, Signature: jsonSig,
				AllowedAccounts: []string{sid1},
			},
			want: valid(sid1, "auth_token", jsonURL, twilioguardv1.Algorithm_HMAC_SHA1),
		},
		{
			name: "previous token inside grace",
			req:  signedParams(prevToken1, hookURL, sms),
			want: valid(sid1, "previous_auth_token", hookURL, twilioguardv1.Algorithm_HMAC_SHA1),
		},
		{
			name: "shared key HMAC_SHA256",
			req:  sharedKey("key=KS1,algorithm=HMAC_SHA256", signature.HMACSHA256, ks1Secret),
			want: valid(sid1, "KS1", hookURL, twilioguardv1.Algorithm_HMAC_SHA256),
		},
		{
			name: "shared key HMAC_SHA1",
			req:  sharedKey("algorithm=hmac_sha1, key=KS2", signature.HMACSHA1, ks2Secret),
			want: valid(sid1, "KS2", hookURL, twilioguardv1.Algorithm_HMAC_SHA1),
		},
		{
			name: "shared key algorithm not allowed",
			req:  sharedKey("key=KS1,algorithm=HMAC_SHA1", signature.HMACSHA1, ks1Secret),
			want: invalidFor(sid1, twilioguardv1.Reason_ALGORITHM_NOT_ALLOWED),
		},
		{
			name: "unknown shared key",
			req:  sharedKey("key=KS9,algorithm=HMAC_SHA256", signature.HMACSHA256, ks1Secret),
			want: invalidFor(sid1, twilioguardv1.Reason_UNKNOWN_SHARED_KEY),
		},
		{
			name: "shared key of another account",
			req: func() *twilioguardv1.VerifyWebhookRequest {
				r := sharedKey("key=KS1,algorithm=HMAC_SHA256", signature.HMACSHA256, ks1Secret)
				r.Account = "other"
				return r
			}(),
			want: invalidFor(sid2, twilioguardv1.Reason_UNKNOWN_SHARED_KEY),
		},
		{
			name: "default port signed without port",
			req:  withPort,
			want: valid(sid1, "auth_token", hookURL, twilioguardv1.Algorithm_HMAC_SHA1),
		},
		{
			name: "GET webhook",
			req: func() *twilioguardv1.VerifyWebhookRequest {
				u := hookURL + "?AccountSid=" + sid2 + "&CallStatus=ringing"
				return &twilioguardv1.VerifyWebhookRequest{Url: u, Signature: signature.Sign(token2, u, nil)}
			}(),
			want: valid(sid2, "auth_token", hookURL+"?AccountSid="+sid2+"&CallStatus=ringing", twilioguardv1.Algorithm_HMAC_SHA1),
		},
	}
}

func TestVerifyWebhookVerdicts(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{})
	for _, p := range protocols {
		client := h.verifier(p)
		for _, tc := range verdictCases() {
			t.Run(p.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				got, err := client.VerifyWebhook(t.Context(), tc.req)
				if err != nil {
					t.Fatalf("VerifyWebhook error = %v; want a verdict", err)
				}
				if diff := cmp.Diff(tc.want, got, protocmp.Transform(),
					protocmp.IgnoreFields(&twilioguardv1.VerifyWebhookResponse{}, "hint")); diff != "" {
					t.Errorf("VerifyWebhook verdict (-want +got):\n%s", diff)
				}
				switch {
				case tc.hint == "" && got.Hint != "":
					t.Errorf("hint = %q; want none", got.Hint)
				case !strings.Contains(got.Hint, tc.hint):
					t.Errorf("hint = %q; want it to contain %q", got.Hint, tc.hint)
				}
			})
		}
	}
}

func TestVerifyWebhookInvalidArgument(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{}) // MaxParams 40, MaxBodyBytes 64 KiB
	sms := smsParams(sid1)
	sig := signature.Sign(token1, hookURL, values(sms))
	many := make([]*twilioguardv1.Param, 41)
	for i := range many {
		many[i] = &twilioguardv1.Param{Key: "K" + strings.Repeat("x", i), Value: "v"}
	}
	cases := []struct {
		name string
		req  *twilioguardv1.VerifyWebhookRequest
		msg  string // the error message must contain it
	}{
		{"empty url", &twilioguardv1.VerifyWebhookRequest{Params: sms, Signature: sig}, "url is required"},
		{"ftp url", &twilioguardv1.VerifyWebhookRequest{Url: "ftp://x", Params: sms, Signature: sig}, "http:// or https://"},
		{"no host", &twilioguardv1.VerifyWebhookRequest{Url: "https:///sms", Params: sms, Signature: sig}, "no host"},
		{"url with space", &twilioguardv1.VerifyWebhookRequest{Url: "https://example.com/a b", Params: sms, Signature: sig}, "space"},
		{"url too long", &twilioguardv1.VerifyWebhookRequest{Url: hookURL + "?q=" + strings.Repeat("a", server.DefaultMaxURLBytes), Signature: sig}, "url too long"},
		{"bad port", &twilioguardv1.VerifyWebhookRequest{Url: "https://example.com:99999/sms", Params: sms, Signature: sig, Account: sid1}, "port"},
		{
			"params and body",
			&twilioguardv1.VerifyWebhookRequest{Url: hookURL, Params: sms, Body: []byte("a=b"), ContentType: formType, Signature: sig},
			"both params and a body",
		},
		{"too many params", &twilioguardv1.VerifyWebhookRequest{Url: hookURL, Params: many, Signature: sig, Account: sid1}, "too many params"},
		{
			"too many form fields",
			&twilioguardv1.VerifyWebhookRequest{Url: hookURL, Body: []byte(strings.Repeat("a=1&", 41)), ContentType: formType, Signature: sig, Account: sid1},
			"too many form fields",
		},
		{
			"body too large",
			&twilioguardv1.VerifyWebhookRequest{Url: hookURL, Body: make([]byte, 64<<10+1), ContentType: "application/octet-stream", Signature: sig, Account: sid1},
			"body too large",
		},
		{
			"bad percent escape",
			&twilioguardv1.VerifyWebhookRequest{Url: hookURL, Body: []byte("Body=100%zz&AccountSid=" + sid1), ContentType: formType, Signature: sig},
			"percent-escape at byte 8",
		},
		{
			"body without contentType",
			&twilioguardv1.VerifyWebhookRequest{Url: hookURL, Body: jsonHook, Signature: sig, Account: sid1},
			"contentType is required",
		},
		{
			"unparsable contentType",
			&twilioguardv1.VerifyWebhookRequest{Url: hookURL, Body: jsonHook, ContentType: "application/json; =broken", Signature: sig, Account: sid1},
			"contentType",
		},
		{
			"malformed signature settings",
			&twilioguardv1.VerifyWebhookRequest{Url: hookURL, Params: sms, Signature: sig, SignatureSettings: "algorithm=HMAC_SHA256", Account: sid1},
			"signatureSettings",
		},
	}
	for _, p := range protocols {
		client := h.verifier(p)
		for _, tc := range cases {
			t.Run(p.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				got, err := client.VerifyWebhook(t.Context(), tc.req)
				if code := connect.CodeOf(err); code != connect.CodeInvalidArgument {
					t.Fatalf("VerifyWebhook = %v, %v (code %v); want code InvalidArgument", got, err, code)
				}
				t.Logf("message: %v", err)
				var cerr *connect.Error
				if !errors.As(err, &cerr) || !strings.Contains(cerr.Message(), tc.msg) {
					t.Errorf("error message = %q; want it to contain %q", err, tc.msg)
				}
			})
		}
	}
}

// TestVerifyWebhookPreviousTokenExpires checks that the previous auth token
// stops verifying once the clock passes its expiry.
func TestVerifyWebhookPreviousTokenExpires(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{})
	req := signedParams(prevToken1, hookURL, smsParams(sid1))
	for _, p := range protocols {
		got, err := h.verifier(p).VerifyWebhook(t.Context(), req)
		if err != nil || !got.Valid || got.Credential != "previous_auth_token" {
			t.Fatalf("%s: before expiry: VerifyWebhook = %v, %v; want valid with previous_auth_token", p.name, got, err)
		}
	}
	h.clock.Advance(time.Hour) // exactly at previousExpireTime: no longer accepted
	for _, p := range protocols {
		got, err := h.verifier(p).VerifyWebhook(t.Context(), req)
		if err != nil {
			t.Fatalf("%s: VerifyWebhook error = %v", p.name, err)
		}
		if got.Valid || got.Reason != twilioguardv1.Reason_SIGNATURE_MISMATCH {
			t.Errorf("%s: after expiry: VerifyWebhook = %v; want SIGNATURE_MISMATCH", p.name, got)
		}
	}
	// The current token is unaffected.
	got, err := h.verifier(protocols[0]).VerifyWebhook(t.Context(), signedParams(token1, hookURL, smsParams(sid1)))
	if err != nil || !got.Valid || got.Credential != "auth_token" {
		t.Errorf("current token after expiry of the previous one: VerifyWebhook = %v, %v; want valid", got, err)
	}
}
