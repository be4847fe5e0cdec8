package extauthz

import (
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
)

func TestParseRoute(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		ext     map[string]string
		want    route
		wantErr string // substring; empty = no error
	}{
		{name: "empty", ext: nil, want: route{}},
		{
			name: "everything",
			ext: map[string]string{
				"public_base_url": "https://hooks.example.com",
				"twilio_accounts": " AC1 ,, sales ,",
				"mode":            "shadow",
				"route":           "sms",
			},
			want: route{baseURL: "https://hooks.example.com", accounts: []string{"AC1", "sales"}, shadow: true, name: "sms", label: "sms"},
		},
		{name: "trailing slash trimmed", ext: map[string]string{"public_base_url": "https://h.example/"}, want: route{baseURL: "https://h.example"}},
		{name: "prefix and port", ext: map[string]string{"public_base_url": "http://h.example:8443/app"}, want: route{baseURL: "http://h.example:8443/app"}},
		{name: "ipv6 host", ext: map[string]string{"public_base_url": "https://[::1]:8443"}, want: route{baseURL: "https://[::1]:8443"}},
		{name: "enforce", ext: map[string]string{"mode": "enforce"}, want: route{}},
		{name: "duplicates allowed", ext: map[string]string{"duplicates": "allow"}, want: route{}},
		{name: "duplicates rejected", ext: map[string]string{"duplicates": "reject"}, want: route{rejectDuplicates: true}},
		{name: "unknown duplicates setting", ext: map[string]string{"duplicates": "Reject"}, wantErr: `duplicates: "Reject" is neither`},
		{name: "empty mode", ext: map[string]string{"mode": ""}, want: route{}},
		{name: "unknown mode", ext: map[string]string{"mode": "Shadow"}, wantErr: `"Shadow" is neither`},
		{name: "misspelled key", ext: map[string]string{"twilio_account": "AC1"}, wantErr: `unknown context extension "twilio_account"`},
		{name: "empty base", ext: map[string]string{"public_base_url": ""}, wantErr: "scheme must be http or https"},
		{name: "empty accounts", ext: map[string]string{"twilio_accounts": " , "}, wantErr: "twilio_accounts is empty"},
		{name: "ftp base", ext: map[string]string{"public_base_url": "ftp://h.example"}, wantErr: "scheme must be http or https"},
		{name: "base without scheme", ext: map[string]string{"public_base_url": "h.example"}, wantErr: "scheme must be http or https"},
		{name: "base with query", ext: map[string]string{"public_base_url": "https://h.example/?a=1"}, wantErr: "must not have a query"},
		{name: "base with empty query", ext: map[string]string{"public_base_url": "https://h.example/?"}, wantErr: "must not have a query"},
		{name: "base with fragment", ext: map[string]string{"public_base_url": "https://h.example/#x"}, wantErr: "must not have a query or fragment"},
		{name: "base with user info", ext: map[string]string{"public_base_url": "https://u:p@h.example"}, wantErr: "user info"},
		{name: "huge value", ext: map[string]string{"route": strings.Repeat("r", 2<<20)}, wantErr: "longer than"},
		{name: "unparsable base", ext: map[string]string{"public_base_url": "https://h.example:port"}, wantErr: "public_base_url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newRouteCache()
			if _, err := c.parse(tt.ext); (err == nil) != (tt.wantErr == "") {
				t.Fatalf("parseRoute(%.80v) error = %v", tt.ext, err)
			}
			got, err := c.parse(tt.ext) // the second call may come from the cache
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseRoute(%.80v) error = %v; want one containing %q", tt.ext, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseRoute(%v) error = %v", tt.ext, err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(route{})); diff != "" {
				t.Errorf("parseRoute(%v) mismatch (-want +got):\n%s", tt.ext, diff)
			}
		})
	}
}

// httpCheck returns a CheckRequest as Envoy builds it for an HTTP request.
func httpCheck(h *authv3.AttributeContext_HttpRequest) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: h},
	}}
}

// formPost is what Envoy sends for a signed Twilio form POST through the
// plaintext listener of deploy/envoy/envoy.yaml.
func formPost() *authv3.AttributeContext_HttpRequest {
	body := "AccountSid=AC123&Body=hi&From=%2B15550001111"
	return &authv3.AttributeContext_HttpRequest{
		Method: "POST", Path: "/twilio/sms?x=1", Host: "127.0.0.1:10000", Scheme: "http", Protocol: "HTTP/1.1",
		Headers: map[string]string{
			":authority": "127.0.0.1:10000", ":method": "POST", ":path": "/twilio/sms?x=1", ":scheme": "http",
			"content-type": "application/x-www-form-urlencoded", "content-length": "44",
			"x-twilio-signature": "c2ln", "x-request-id": "rid-1", "x-envoy-auth-partial-body": "false",
		},
		RawBody: []byte(body),
	}
}

func TestVerifyRequest(t *testing.T) {
	t.Parallel()
	form := []byte("AccountSid=AC123&Body=hi&From=%2B15550001111")
	tests := []struct {
		name     string
		http     func(h *authv3.AttributeContext_HttpRequest) // changes to formPost(); nil h means no HTTP attributes
		route    route
		want     *twilioguardv1.VerifyWebhookRequest
		wantPath string
		wantRes  result
		wantErr  string
	}{
		{
			name:  "form post with public base url",
			route: route{baseURL: "https://hooks.example.com", accounts: []string{"AC123"}, name: "sms"},
			want: &twilioguardv1.VerifyWebhookRequest{
				Url: "https://hooks.example.com/twilio/sms?x=1", Body: form,
				ContentType: "application/x-www-form-urlencoded", Signature: "c2ln",
				AllowedAccounts: []string{"AC123"}, Route: "sms",
			},
			wantPath: "/twilio/sms",
		},
		{
			name:     "form post without base url uses scheme and host",
			want:     &twilioguardv1.VerifyWebhookRequest{Url: "http://127.0.0.1:10000/twilio/sms?x=1", Body: form, ContentType: "application/x-www-form-urlencoded", Signature: "c2ln"},
			wantPath: "/twilio/sms",
		},
		{
			name: "pseudo-headers when the fields are empty",
			http: func(h *authv3.AttributeContext_HttpRequest) {
				h.Path, h.Host, h.Scheme = "", "", ""
				h.Headers[":scheme"], h.Headers[":authority"] = "https", "hooks.example.com"
			},
			want:     &twilioguardv1.VerifyWebhookRequest{Url: "https://hooks.example.com/twilio/sms?x=1", Body: form, ContentType: "application/x-www-form-urlencoded", Signature: "c2ln"},
			wantPath: "/twilio/sms",
		},
		{
			name: "query is kept byte for byte",
			http: func(h *authv3.AttributeContext_HttpRequest) {
				h.Path = "/a%2Fb/c?To=%2B1&x=a+b&y"
			},
			route:    route{baseURL: "https://h.example/prefix"},
			want:     &twilioguardv1.VerifyWebhookRequest{Url: "https://h.example/prefix/a%2Fb/c?To=%2B1&x=a+b&y", Body: form, ContentType: "application/x-www-form-urlencoded", Signature: "c2ln"},
			wantPath: "/a%2Fb/c",
		},
		{
			name: "json body with settings header",
			http: func(h *authv3.AttributeContext_HttpRequest) {
				h.Path = "/twilio/json?bodySHA256=abc"
				h.RawBody = []byte(`{"a":1}`)
				h.Headers["content-type"] = "application/json"
				h.Headers["content-length"] = "7"
				h.Headers["x-twilio-webhooks-signature-settings"] = "keyid=KY1"
			},
			route: route{baseURL: "https://h.example"},
			want: &twilioguardv1.VerifyWebhookRequest{
				Url: "https://h.example/twilio/json?bodySHA256=abc", Body: []byte(`{"a":1}`),
				ContentType: "application/json", Signature: "c2ln", SignatureSettings: "keyid=KY1",
			},
			wantPath: "/twilio/json",
		},
		{
			name:  "idempotency token",
			http:  func(h *authv3.AttributeContext_HttpRequest) { h.Headers["i-twilio-idempotency-token"] = "tok-1" },
			route: route{baseURL: "https://h.example"},
			want: &twilioguardv1.VerifyWebhookRequest{Url: "https://h.example/twilio/sms?x=1", Body: form,
				ContentType: "application/x-www-form-urlencoded", Signature: "c2ln", IdempotencyToken: "tok-1"},
			wantPath: "/twilio/sms",
		},
		{
			name: "get without body",
			http: func(h *authv3.AttributeContext_HttpRequest) {
				h.Method, h.RawBody = "GET", nil
				delete(h.Headers, "content-type")
				delete(h.Headers, "content-length")
				delete(h.Headers, "x-envoy-auth-partial-body")
			},
			route:    route{baseURL: "https://h.example"},
			want:     &twilioguardv1.VerifyWebhookRequest{Url: "https://h.example/twilio/sms?x=1", Signature: "c2ln"},
			wantPath: "/twilio/sms",
		},
		{
			name: "string body when pack_as_bytes is off",
			http: func(h *authv3.AttributeContext_HttpRequest) {
				h.Body, h.RawBody = string(h.RawBody), nil
			},
			route:    route{baseURL: "https://h.example"},
			want:     &twilioguardv1.VerifyWebhookRequest{Url: "https://h.example/twilio/sms?x=1", Body: form, ContentType: "application/x-www-form-urlencoded", Signature: "c2ln"},
			wantPath: "/twilio/sms",
		},
		{
			name: "raw header map",
			http: func(h *authv3.AttributeContext_HttpRequest) {
				h.Headers = nil
				h.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
					{Key: "Content-Type", RawValue: []byte("application/x-www-form-urlencoded")},
					{Key: "content-length", Value: "44"},
					{Key: "x-twilio-signature", RawValue: []byte("c2ln")},
				}}
			},
			route:    route{baseURL: "https://h.example"},
			want:     &twilioguardv1.VerifyWebhookRequest{Url: "https://h.example/twilio/sms?x=1", Body: form, ContentType: "application/x-www-form-urlencoded", Signature: "c2ln"},
			wantPath: "/twilio/sms",
		},
		{name: "no http attributes", http: nil, wantRes: resultMalformed, wantErr: "no HTTP attributes"},
		{
			name:    "partial body header",
			http:    func(h *authv3.AttributeContext_HttpRequest) { h.Headers["x-envoy-auth-partial-body"] = "true" },
			wantRes: resultPartialBody, wantErr: "partial body",
		},
		{
			name:    "body shorter than content-length",
			http:    func(h *authv3.AttributeContext_HttpRequest) { h.RawBody = h.RawBody[:10] },
			wantRes: resultPartialBody, wantErr: "content-length is 44 but Envoy sent 10",
		},
		{
			name:    "body not sent",
			http:    func(h *authv3.AttributeContext_HttpRequest) { h.RawBody = nil },
			wantRes: resultError, wantErr: "enable with_request_body",
		},
		{
			name:    "bad content-length",
			http:    func(h *authv3.AttributeContext_HttpRequest) { h.Headers["content-length"] = "x" },
			wantRes: resultMalformed, wantErr: "content-length",
		},
		{
			name: "asterisk path",
			http: func(h *authv3.AttributeContext_HttpRequest) {
				h.Path = "*"
			},
			wantRes: resultMalformed, wantErr: "origin-form",
		},
		{
			name: "no host and no base",
			http: func(h *authv3.AttributeContext_HttpRequest) {
				h.Host = ""
				delete(h.Headers, ":authority")
			},
			wantRes: resultMalformed, wantErr: "no scheme or host",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			check := httpCheck(nil)
			if tt.http != nil || tt.wantRes == "" {
				h := formPost()
				if tt.http != nil {
					tt.http(h)
				}
				check = httpCheck(h)
			}
			got, res, err := verifyRequest(check, tt.route)
			if res != tt.wantRes {
				t.Errorf("verifyRequest() result = %q; want %q (err %v)", res, tt.wantRes, err)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("verifyRequest() error = %v; want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("verifyRequest() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, got.req, protocmp.Transform()); diff != "" {
				t.Errorf("verifyRequest() mismatch (-want +got):\n%s", diff)
			}
			if got.path != tt.wantPath {
				t.Errorf("verifyRequest() path = %q; want %q", got.path, tt.wantPath)
			}
		})
	}
}

func TestFromVerifyResponse(t *testing.T) {
	t.Parallel()
	r := route{name: "sms"}
	rejecting := route{name: "sms", rejectDuplicates: true}
	seen := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	yes := true
	duplicate := &twilioguardv1.VerifyWebhookResponse{Valid: true, AccountSid: "AC1", Duplicate: &yes,
		FirstSeenTime: timestamppb.New(seen), ReplayCheck: twilioguardv1.ReplayCheck_CHECKED}
	tests := []struct {
		name  string
		route route // when it rejects duplicates; else r
		resp  *twilioguardv1.VerifyWebhookResponse
		want  verdict
	}{
		{
			name: "valid",
			resp: &twilioguardv1.VerifyWebhookResponse{Valid: true, AccountSid: "AC1", Credential: "auth_token"},
			want: verdict{result: resultValid, accountSID: "AC1", route: r},
		},
		{
			name: "mismatch with hint",
			resp: &twilioguardv1.VerifyWebhookResponse{AccountSid: "AC1", Reason: twilioguardv1.Reason_SIGNATURE_MISMATCH, Hint: "try https"},
			want: verdict{result: resultInvalid, reason: "SIGNATURE_MISMATCH", hint: "try https", accountSID: "AC1", route: r},
		},
		{
			name: "invalid without a reason is a mismatch",
			resp: &twilioguardv1.VerifyWebhookResponse{},
			want: verdict{result: resultInvalid, reason: "SIGNATURE_MISMATCH", route: r},
		},
		{
			name: "account not allowed",
			resp: &twilioguardv1.VerifyWebhookResponse{AccountSid: "AC2", Reason: twilioguardv1.Reason_ACCOUNT_NOT_ALLOWED},
			want: verdict{result: resultInvalid, reason: "ACCOUNT_NOT_ALLOWED", accountSID: "AC2", route: r},
		},
		{
			name: "duplicate",
			resp: duplicate,
			want: verdict{result: resultValid, accountSID: "AC1", duplicate: true, firstSeen: seen, route: r},
		},
		{
			name:  "duplicate on a route that rejects them",
			route: rejecting,
			resp:  duplicate,
			want:  verdict{result: resultDuplicate, accountSID: "AC1", duplicate: true, firstSeen: seen, route: rejecting},
		},
		{
			name:  "first copy on a route that rejects duplicates",
			route: rejecting,
			resp:  &twilioguardv1.VerifyWebhookResponse{Valid: true, AccountSid: "AC1", Duplicate: new(bool), ReplayCheck: twilioguardv1.ReplayCheck_CHECKED},
			want:  verdict{result: resultValid, accountSID: "AC1", route: rejecting},
		},
		{
			name:  "duplicate unknown on a route that rejects duplicates",
			route: rejecting,
			resp:  &twilioguardv1.VerifyWebhookResponse{Valid: true, AccountSid: "AC1", ReplayCheck: twilioguardv1.ReplayCheck_UNAVAILABLE},
			want:  verdict{result: resultValid, accountSID: "AC1", route: rejecting},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rt := r
			if tt.route.rejectDuplicates {
				rt = tt.route
			}
			got := fromVerifyResponse(rt, tt.resp)
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(verdict{}, route{})); diff != "" {
				t.Errorf("fromVerifyResponse() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckResponse(t *testing.T) {
	t.Parallel()
	set := func(k, v string) *corev3.HeaderValueOption {
		return &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: k, Value: v},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}
	}
	meta := func(kv ...string) *structpb.Struct {
		s := &structpb.Struct{Fields: map[string]*structpb.Value{}}
		for i := 0; i < len(kv); i += 2 {
			s.Fields[kv[i]] = structpb.NewStringValue(kv[i+1])
		}
		return s
	}
	deny := func(c codes.Code, st typev3.StatusCode, body string, md *structpb.Struct) *authv3.CheckResponse {
		return &authv3.CheckResponse{
			Status: &rpcstatus.Status{Code: int32(c)},
			HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
				Status:  &typev3.HttpStatus{Code: st},
				Headers: []*corev3.HeaderValueOption{set("content-type", "text/plain; charset=utf-8")},
				Body:    body,
			}},
			DynamicMetadata: md,
		}
	}
	allow := func(ok *authv3.OkHttpResponse, md *structpb.Struct) *authv3.CheckResponse {
		return &authv3.CheckResponse{
			Status:          &rpcstatus.Status{},
			HttpResponse:    &authv3.CheckResponse_OkResponse{OkResponse: ok},
			DynamicMetadata: md,
		}
	}
	enforce := route{name: "sms"}
	shadow := route{shadow: true}
	tests := []struct {
		name string
		v    verdict
		want *authv3.CheckResponse
	}{
		{
			name: "valid",
			v:    verdict{result: resultValid, accountSID: "AC1", route: enforce},
			want: allow(&authv3.OkHttpResponse{
				Headers:         []*corev3.HeaderValueOption{set("x-twilioguard-verified", "true"), set("x-twilio-account-sid", "AC1")},
				HeadersToRemove: []string{"x-twilioguard-shadow", "x-twilioguard-duplicate"},
			}, nil),
		},
		{
			name: "valid duplicate",
			v:    verdict{result: resultValid, accountSID: "AC1", duplicate: true, route: enforce},
			want: allow(&authv3.OkHttpResponse{
				Headers: []*corev3.HeaderValueOption{set("x-twilioguard-verified", "true"), set("x-twilio-account-sid", "AC1"),
					set("x-twilioguard-duplicate", "true")},
				HeadersToRemove: []string{"x-twilioguard-shadow"},
			}, nil),
		},
		{
			name: "duplicate on a route that rejects them: 409",
			v:    verdict{result: resultDuplicate, accountSID: "AC1", duplicate: true, route: route{rejectDuplicates: true}},
			want: deny(codes.AlreadyExists, typev3.StatusCode_Conflict, "Conflict\n", meta("result", "duplicate", "account_sid", "AC1")),
		},
		{
			name: "shadow duplicate on a route that rejects them",
			v:    verdict{result: resultDuplicate, accountSID: "AC1", duplicate: true, route: route{rejectDuplicates: true, shadow: true}},
			want: allow(&authv3.OkHttpResponse{
				Headers: []*corev3.HeaderValueOption{set("x-twilioguard-verified", "true"), set("x-twilio-account-sid", "AC1"),
					set("x-twilioguard-shadow", "duplicate"), set("x-twilioguard-duplicate", "true")},
			}, meta("result", "duplicate", "mode", "shadow", "account_sid", "AC1")),
		},
		{
			name: "valid without account sid",
			v:    verdict{result: resultValid, route: route{}},
			want: allow(&authv3.OkHttpResponse{
				Headers:         []*corev3.HeaderValueOption{set("x-twilioguard-verified", "true")},
				HeadersToRemove: []string{"x-twilio-account-sid", "x-twilioguard-shadow", "x-twilioguard-duplicate"},
			}, nil),
		},
		{
			name: "invalid: 403 and the diagnosis only in metadata",
			v:    verdict{result: resultInvalid, reason: "SIGNATURE_MISMATCH", hint: "matches the https form", accountSID: "AC1", route: enforce},
			want: deny(codes.PermissionDenied, typev3.StatusCode_Forbidden, "Forbidden\n",
				meta("result", "invalid", "reason", "SIGNATURE_MISMATCH", "hint", "matches the https form", "account_sid", "AC1")),
		},
		{
			name: "malformed: 400",
			v:    verdict{result: resultMalformed, route: route{}},
			want: deny(codes.InvalidArgument, typev3.StatusCode_BadRequest, "Bad Request\n", meta("result", "malformed")),
		},
		{
			name: "partial body: 413",
			v:    verdict{result: resultPartialBody, route: route{}},
			want: deny(codes.InvalidArgument, typev3.StatusCode_PayloadTooLarge, "Payload Too Large\n", meta("result", "partial_body")),
		},
		{
			name: "shadow valid",
			v:    verdict{result: resultValid, accountSID: "AC1", route: shadow},
			want: allow(&authv3.OkHttpResponse{
				Headers:         []*corev3.HeaderValueOption{set("x-twilioguard-verified", "true"), set("x-twilio-account-sid", "AC1"), set("x-twilioguard-shadow", "valid")},
				HeadersToRemove: []string{"x-twilioguard-duplicate"},
			}, nil),
		},
		{
			name: "shadow invalid: allowed, verified headers stripped",
			v:    verdict{result: resultInvalid, reason: "SIGNATURE_MISMATCH", hint: "h", route: shadow},
			want: allow(&authv3.OkHttpResponse{
				Headers:         []*corev3.HeaderValueOption{set("x-twilioguard-shadow", "invalid; reason=SIGNATURE_MISMATCH")},
				HeadersToRemove: []string{"x-twilioguard-verified", "x-twilio-account-sid", "x-twilioguard-duplicate"},
			}, meta("result", "invalid", "mode", "shadow", "reason", "SIGNATURE_MISMATCH", "hint", "h")),
		},
		{
			name: "shadow error: allowed",
			v:    verdict{result: resultError, route: shadow},
			want: allow(&authv3.OkHttpResponse{
				Headers:         []*corev3.HeaderValueOption{set("x-twilioguard-shadow", "error")},
				HeadersToRemove: []string{"x-twilioguard-verified", "x-twilio-account-sid", "x-twilioguard-duplicate"},
			}, meta("result", "error", "mode", "shadow")),
		},
		{
			name: "shadow partial body: allowed",
			v:    verdict{result: resultPartialBody, route: shadow},
			want: allow(&authv3.OkHttpResponse{
				Headers:         []*corev3.HeaderValueOption{set("x-twilioguard-shadow", "partial_body")},
				HeadersToRemove: []string{"x-twilioguard-verified", "x-twilio-account-sid", "x-twilioguard-duplicate"},
			}, meta("result", "partial_body", "mode", "shadow")),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := checkResponse(tt.v)
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("checkResponse(%+v) mismatch (-want +got):\n%s", tt.v, diff)
			}
		})
	}
}

func TestForgedHeaders(t *testing.T) {
	t.Parallel()
	h := formPost()
	for _, name := range []string{"x-twilioguard-verified", "x-twilioguard-duplicate", "x-twilio-account-sid", // set or removed anyway
		"x-twilioguard-reason", "x_twilioguard_duplicate", "x-twilioguard_shadow"} {
		h.Headers[name] = "true"
	}
	h.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "X-Twilioguard-Anything", Value: "1"}, {Key: "X-Other", Value: "1"}}}
	got := forgedHeaders(h)
	slices.Sort(got)
	want := []string{"x-twilioguard-anything", "x-twilioguard-reason", "x-twilioguard_shadow", "x_twilioguard_duplicate"}
	if !slices.Equal(got, want) {
		t.Errorf("forgedHeaders() = %q; want %q", got, want)
	}
}
