package middleware_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/gen/twilioguard/v1/twilioguardv1connect"
	"github.com/twilioguard/twilioguard/middleware"
	"github.com/twilioguard/twilioguard/signature"
)

// Both the generated client and the function adapter are Verifiers.
var (
	_ middleware.Verifier = twilioguardv1connect.VerifierServiceClient(nil)
	_ middleware.Verifier = middleware.VerifierFunc(nil)
	_ middleware.Verifier = (*tokenVerifier)(nil)
)

const (
	testSID   = "AC0123456789abcdef0123456789abcdef"
	testToken = "12345678901234567890123456789012"
)

// tokenVerifier is a hand-written Verifier that checks signatures in process
// with one account's auth token, the way the service does, and records the
// requests it saw.
type tokenVerifier struct {
	sid, token string

	mu   sync.Mutex
	reqs []*twilioguardv1.VerifyWebhookRequest
}

func newTokenVerifier() *tokenVerifier { return &tokenVerifier{sid: testSID, token: testToken} }

func (v *tokenVerifier) VerifyWebhook(_ context.Context, req *twilioguardv1.VerifyWebhookRequest) (*twilioguardv1.VerifyWebhookResponse, error) {
	v.mu.Lock()
	v.reqs = append(v.reqs, proto.CloneOf(req))
	v.mu.Unlock()
	sreq := &signature.Request{
		URL:         req.GetUrl(),
		Body:        req.GetBody(),
		ContentType: req.GetContentType(),
		HasBody:     req.GetContentType() != "" || len(req.GetBody()) > 0,
		Signature:   req.GetSignature(),
	}
	for _, p := range req.GetParams() {
		if sreq.Params == nil {
			sreq.Params = url.Values{}
		}
		sreq.Params.Add(p.GetKey(), p.GetValue())
	}
	creds := []signature.Credential{{Name: "auth_token", Secret: v.token}}
	resp := &twilioguardv1.VerifyWebhookResponse{AccountSid: v.sid}
	m, err := signature.Check(sreq, creds)
	switch {
	case err == nil:
		if allowed := req.GetAllowedAccounts(); len(allowed) > 0 && !slices.Contains(allowed, v.sid) {
			resp.Reason = twilioguardv1.Reason_ACCOUNT_NOT_ALLOWED
			return resp, nil
		}
		resp.Valid, resp.Credential, resp.MatchedUrl = true, "auth_token", m.URL
		resp.Algorithm = twilioguardv1.Algorithm_HMAC_SHA1
	case errors.Is(err, signature.ErrMissingSignature):
		resp.Reason = twilioguardv1.Reason_MISSING_SIGNATURE
	case errors.Is(err, signature.ErrMalformedSignature):
		resp.Reason = twilioguardv1.Reason_MALFORMED_SIGNATURE
	case errors.Is(err, signature.ErrMismatch):
		resp.Reason = twilioguardv1.Reason_SIGNATURE_MISMATCH
		resp.Hint = signature.Diagnose(sreq, creds)
	case errors.Is(err, signature.ErrBodyHashMismatch):
		resp.Reason = twilioguardv1.Reason_BODY_HASH_MISMATCH
	case errors.Is(err, signature.ErrMissingBodyHash):
		resp.Reason = twilioguardv1.Reason_MISSING_BODY_HASH
	default:
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	return resp, nil
}

func (v *tokenVerifier) requests() []*twilioguardv1.VerifyWebhookRequest {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.reqs)
}

// logRecorder is a slog.Handler that keeps every record.
type logRecorder struct {
	mu   sync.Mutex
	recs []logRecord
}

type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecorder) WithGroup(string) slog.Handler            { return h }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	h.recs = append(h.recs, rec)
	h.mu.Unlock()
	return nil
}

func (h *logRecorder) records() []logRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.recs)
}

// only returns the single record logged, failing the test otherwise.
func (h *logRecorder) only(t *testing.T) logRecord {
	t.Helper()
	recs := h.records()
	if len(recs) != 1 {
		t.Fatalf("logged %d records; want 1: %+v", len(recs), recs)
	}
	return recs[0]
}

// echoHandler answers with what the wrapped handler saw: the body it read
// (as the response body) and the verdict and parsed form (as headers).
func echoHandler(calls *int) http.Handler {
	var mu sync.Mutex
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		*calls++
		mu.Unlock()
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if err := r.ParseForm(); err == nil {
			w.Header().Set("X-Form-Body", r.PostFormValue("Body"))
		}
		if v, ok := middleware.VerdictFrom(r.Context()); ok {
			w.Header().Set("X-Verdict", fmt.Sprintf("valid=%v account=%s credential=%s", v.Valid, v.AccountSID, v.Credential))
		}
		_, _ = w.Write(body)
	})
}

type app struct {
	srv   *httptest.Server
	logs  *logRecorder
	calls *int
}

func (a *app) handlerCalls() int { return *a.calls }

func startApp(t *testing.T, v middleware.Verifier, opts ...middleware.Option) *app {
	t.Helper()
	logs := &logRecorder{}
	m, err := middleware.New(v, append([]middleware.Option{middleware.WithLogger(slog.New(logs))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	calls := new(int)
	srv := httptest.NewServer(m.Wrap(echoHandler(calls)))
	t.Cleanup(srv.Close)
	return &app{srv: srv, logs: logs, calls: calls}
}

type response struct {
	status int
	body   string
	header http.Header
}

func do(t *testing.T, method, target string, body io.Reader, header http.Header) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, body: string(b), header: resp.Header}
}

// postForm posts a raw form body signed for signedURL.
func postForm(t *testing.T, target, signedURL, rawBody string, header http.Header) response {
	t.Helper()
	params, err := url.ParseQuery(rawBody)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{
		"Content-Type":       {"application/x-www-form-urlencoded"},
		"X-Twilio-Signature": {signature.Sign(testToken, signedURL, params)},
	}
	for k, vs := range header {
		h[k] = vs
	}
	return do(t, http.MethodPost, target, strings.NewReader(rawBody), h)
}

// smsBody has the bytes a form parser could change: escapes, '+', an
// apostrophe, a repeated key and an empty value.
const smsBody = "AccountSid=" + testSID + "&Body=caf%C3%A9+%2B+it%27s&MediaUrl0=a&MediaUrl0=b&Empty=&From=%2B15005550006"

func TestValidRequestReachesHandlerWithBodyRestored(t *testing.T) {
	t.Parallel()
	v := newTokenVerifier()
	a := startApp(t, v, middleware.WithRoute("sms"))
	target := a.srv.URL + "/sms?x=%7e&y=it's"

	got := postForm(t, target, target, smsBody, nil)
	if got.status != http.StatusOK {
		t.Fatalf("status = %d (%q); want 200", got.status, got.body)
	}
	if got.body != smsBody {
		t.Errorf("handler read body %q; want %q", got.body, smsBody)
	}
	if f := got.header.Get("X-Form-Body"); f != "café + it's" {
		t.Errorf("handler parsed Body = %q; want %q", f, "café + it's")
	}
	if want := "valid=true account=" + testSID + " credential=auth_token"; got.header.Get("X-Verdict") != want {
		t.Errorf("verdict in context = %q; want %q", got.header.Get("X-Verdict"), want)
	}
	reqs := v.requests()
	if len(reqs) != 1 {
		t.Fatalf("verifier called %d times; want 1", len(reqs))
	}
	r := reqs[0]
	if r.GetUrl() != target {
		t.Errorf("verifier URL = %q; want %q", r.GetUrl(), target)
	}
	if string(r.GetBody()) != smsBody || r.GetContentType() != "application/x-www-form-urlencoded" {
		t.Errorf("verifier body = %q (%q); want the raw body and its content type", r.GetBody(), r.GetContentType())
	}
	if r.GetRoute() != "sms" || len(r.GetParams()) != 0 {
		t.Errorf("verifier route = %q, params = %v; want route sms and no params", r.GetRoute(), r.GetParams())
	}
	if rec := a.logs.only(t); rec.level != slog.LevelDebug || rec.attrs["account_sid"] != testSID || rec.attrs["route"] != "sms" {
		t.Errorf("log = %+v; want one Debug line with account_sid and route", rec)
	}
}

func TestInvalidRequestIsRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		signedURL  func(target string) string // "" signature header when nil
		sig        string
		wantReason string
		wantHint   bool
	}{
		{
			name:       "signed for the https URL",
			signedURL:  func(target string) string { return strings.Replace(target, "http://", "https://", 1) },
			wantReason: "SIGNATURE_MISMATCH", wantHint: true,
		},
		{
			name:       "signed for another path",
			signedURL:  func(target string) string { return target + "/other" },
			wantReason: "SIGNATURE_MISMATCH",
		},
		{name: "no signature", sig: "", wantReason: "MISSING_SIGNATURE"},
		{name: "malformed signature", sig: "not base64!", wantReason: "MALFORMED_SIGNATURE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := startApp(t, newTokenVerifier())
			target := a.srv.URL + "/sms"
			var got response
			if tt.signedURL != nil {
				got = postForm(t, target, tt.signedURL(target), smsBody, nil)
			} else {
				h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
				if tt.sig != "" {
					h.Set("X-Twilio-Signature", tt.sig)
				}
				got = do(t, http.MethodPost, target, strings.NewReader(smsBody), h)
			}
			if got.status != http.StatusForbidden {
				t.Fatalf("status = %d; want 403", got.status)
			}
			if got.body != "Forbidden\n" {
				t.Errorf("body = %q; want a short refusal", got.body)
			}
			if a.handlerCalls() != 0 {
				t.Errorf("handler called %d times; want 0", a.handlerCalls())
			}
			rec := a.logs.only(t)
			if rec.level != slog.LevelInfo || rec.attrs["reason"] != tt.wantReason {
				t.Errorf("log = %+v; want Info with reason %s", rec, tt.wantReason)
			}
			if tt.wantHint && !strings.Contains(rec.attrs["hint"], "https") {
				t.Errorf("log hint = %q; want a near-miss hint naming https", rec.attrs["hint"])
			}
			if !strings.Contains(rec.attrs["proxy_hint"], "plain-HTTP") {
				t.Errorf("log proxy_hint = %q; want advice about the plain-HTTP connection", rec.attrs["proxy_hint"])
			}
			if rec.attrs["url"] != target || rec.attrs["peer"] != "127.0.0.1" {
				t.Errorf("log url, peer = %q, %q; want %q, 127.0.0.1", rec.attrs["url"], rec.attrs["peer"], target)
			}
			if strings.Contains(fmt.Sprint(rec.attrs), testToken) {
				t.Errorf("log contains the auth token")
			}
		})
	}
}

func TestVerifierErrors(t *testing.T) {
	t.Parallel()
	// A real, unreachable remote verifier: a port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + l.Addr().String()
	l.Close()

	tests := []struct {
		name     string
		verifier middleware.Verifier
		want     int
		wantBody string
	}{
		{"remote verifier down", twilioguardv1connect.NewVerifierServiceClient(http.DefaultClient, deadURL), 503, "Service Unavailable\n"},
		{"unavailable", errVerifier(connect.NewError(connect.CodeUnavailable, errors.New("store down"))), 503, "Service Unavailable\n"},
		{"deadline", errVerifier(context.DeadlineExceeded), 503, "Service Unavailable\n"},
		{"no verdict", middleware.VerifierFunc(func(context.Context, *twilioguardv1.VerifyWebhookRequest) (*twilioguardv1.VerifyWebhookResponse, error) {
			return nil, nil
		}), 503, "Service Unavailable\n"},
		{"malformed input", errVerifier(connect.NewError(connect.CodeInvalidArgument, errors.New("bad form"))), 400, "Bad Request\n"},
		{"caller refused", errVerifier(connect.NewError(connect.CodePermissionDenied, errors.New("no"))), 503, "Service Unavailable\n"},
		{"caller not authenticated", errVerifier(connect.NewError(connect.CodeUnauthenticated, errors.New("no"))), 503, "Service Unavailable\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := startApp(t, tt.verifier)
			target := a.srv.URL + "/sms"
			got := postForm(t, target, target, smsBody, nil)
			if got.status != tt.want || got.body != tt.wantBody {
				t.Errorf("got %d %q; want %d %q", got.status, got.body, tt.want, tt.wantBody)
			}
			if a.handlerCalls() != 0 {
				t.Errorf("handler called; want fail closed")
			}
			rec := a.logs.only(t)
			wantLevel := slog.LevelError
			if tt.want == 400 {
				wantLevel = slog.LevelInfo
			}
			if rec.attrs["error"] == "" || rec.level != wantLevel {
				t.Errorf("log = %+v; want a %v line with the error", rec, wantLevel)
			}
		})
	}
}

func errVerifier(err error) middleware.Verifier {
	return middleware.VerifierFunc(func(context.Context, *twilioguardv1.VerifyWebhookRequest) (*twilioguardv1.VerifyWebhookResponse, error) {
		return nil, err
	})
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	const limit = 256
	body := smsBody + "&Pad=" + strings.Repeat("x", limit-len(smsBody)-len("&Pad="))
	if len(body) != limit {
		t.Fatalf("test body is %d bytes; want %d", len(body), limit)
	}
	tests := []struct {
		name    string
		body    string
		chunked bool
		want    int
	}{
		{"at the limit", body, false, 200},
		{"at the limit, chunked", body, true, 200},
		{"over the limit", body + "y", false, 413},
		{"over the limit, chunked", body + "y", true, 413},
		{"far over the limit, chunked", body + strings.Repeat("y", 1<<20), true, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := newTokenVerifier()
			a := startApp(t, v, middleware.WithMaxBodyBytes(limit))
			target := a.srv.URL + "/sms"
			params, err := url.ParseQuery(tt.body)
			if err != nil {
				t.Fatal(err)
			}
			var r io.Reader = strings.NewReader(tt.body)
			if tt.chunked {
				r = io.MultiReader(r) // hides the length: sent chunked
			}
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, target, r)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-Twilio-Signature", signature.Sign(testToken, target, params))
			resp, err := http.DefaultClient.Do(req)
			var got response
			switch {
			case err != nil && tt.want == 413 && len(tt.body) > 64<<10:
				// The server answered 413 and closed the connection while the
				// client was still sending a body far over the limit: the
				// client may see the reset before the answer.
				got = response{status: 413, body: "Request Entity Too Large\n"}
			case err != nil:
				t.Fatal(err)
			default:
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				got = response{status: resp.StatusCode, body: string(b)}
			}
			if got.status != tt.want {
				t.Fatalf("status = %d (%q); want %d", got.status, got.body, tt.want)
			}
			if tt.want == 200 && got.body != tt.body {
				t.Errorf("handler read %d bytes; want the %d-byte body unchanged", len(got.body), len(tt.body))
			}
			if tt.want == 413 {
				if got.body != "Request Entity Too Large\n" {
					t.Errorf("body = %q; want a short refusal", got.body)
				}
				if n := len(v.requests()); n != 0 {
					t.Errorf("verifier called %d times; want 0", n)
				}
				if a.handlerCalls() != 0 {
					t.Errorf("handler called; want refused")
				}
			}
		})
	}
}

func TestShadowMode(t *testing.T) {
	t.Parallel()
	t.Run("invalid request is served and reported", func(t *testing.T) {
		t.Parallel()
		a := startApp(t, newTokenVerifier(), middleware.WithShadow())
		target := a.srv.URL + "/sms"
		got := postForm(t, target, "https://elsewhere.example/sms", smsBody, nil)
		if got.status != 200 || got.body != smsBody {
			t.Fatalf("got %d %q; want 200 with the body restored", got.status, got.body)
		}
		if want := "valid=false account=" + testSID + " credential="; got.header.Get("X-Verdict") != want {
			t.Errorf("verdict in context = %q; want %q", got.header.Get("X-Verdict"), want)
		}
		rec := a.logs.only(t)
		if rec.level != slog.LevelInfo || !strings.Contains(rec.msg, "shadow") || rec.attrs["reason"] != "SIGNATURE_MISMATCH" {
			t.Errorf("log = %+v; want an Info shadow line with the reason", rec)
		}
	})
	t.Run("verifier down: served unverified", func(t *testing.T) {
		t.Parallel()
		a := startApp(t, errVerifier(connect.NewError(connect.CodeUnavailable, errors.New("down"))), middleware.WithShadow())
		target := a.srv.URL + "/sms"
		got := postForm(t, target, target, smsBody, nil)
		if got.status != 200 || got.body != smsBody {
			t.Fatalf("got %d %q; want 200 with the body restored", got.status, got.body)
		}
		if v := got.header.Get("X-Verdict"); v != "" {
			t.Errorf("verdict in context = %q; want none", v)
		}
		if rec := a.logs.only(t); rec.level != slog.LevelError || !strings.Contains(rec.msg, "shadow") {
			t.Errorf("log = %+v; want an Error shadow line", rec)
		}
	})
	t.Run("body too large: served with the whole body", func(t *testing.T) {
		t.Parallel()
		a := startApp(t, newTokenVerifier(), middleware.WithShadow(), middleware.WithMaxBodyBytes(16))
		target := a.srv.URL + "/sms"
		for _, chunked := range []bool{false, true} {
			var r io.Reader = strings.NewReader(smsBody)
			if chunked {
				r = io.MultiReader(r)
			}
			got := do(t, http.MethodPost, target, r, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
			if got.status != 200 || got.body != smsBody {
				t.Errorf("chunked=%v: got %d %q; want 200 with the whole body", chunked, got.status, got.body)
			}
		}
	})
}

func TestAccountBinding(t *testing.T) {
	t.Parallel()
	tests := []struct {
		accounts []string
		want     int
	}{
		{[]string{testSID}, 200},
		{[]string{"ACffffffffffffffffffffffffffffffff", testSID}, 200},
		{[]string{"ACffffffffffffffffffffffffffffffff"}, 403},
	}
	for _, tt := range tests {
		v := newTokenVerifier()
		a := startApp(t, v, middleware.WithAccounts(tt.accounts...))
		target := a.srv.URL + "/sms"
		got := postForm(t, target, target, smsBody, nil)
		if got.status != tt.want {
			t.Errorf("accounts %v: status = %d; want %d", tt.accounts, got.status, tt.want)
		}
		if reqs := v.requests(); len(reqs) != 1 || !slices.Equal(reqs[0].GetAllowedAccounts(), tt.accounts) {
			t.Errorf("accounts %v: verifier saw %v", tt.accounts, reqs)
		}
		if tt.want == 403 {
			if rec := a.logs.only(t); rec.attrs["reason"] != "ACCOUNT_NOT_ALLOWED" {
				t.Errorf("log = %+v; want reason ACCOUNT_NOT_ALLOWED", rec)
			}
		}
	}
}

func TestForwardedHeadersFromPeers(t *testing.T) {
	t.Parallel()
	spoof := http.Header{
		"X-Forwarded-Proto": {"https"},
		"X-Forwarded-Host":  {"evil.example"},
		"X-Forwarded-Port":  {"8443"},
		"Forwarded":         {`for=10.0.0.1;proto=https;host="evil.example:8443"`},
		"X-Original-Host":   {"evil.example"},
	}
	const spoofedURL = "https://evil.example:8443/sms"
	tests := []struct {
		name      string
		opts      []middleware.Option
		signedFor string // "" means the URL the test server really has
		want      int
	}{
		{"untrusted peer, signed for the spoofed URL", nil, spoofedURL, 403},
		{"untrusted peer, signed for the real URL", nil, "", 200},
		{"trusted elsewhere, signed for the spoofed URL", []middleware.Option{middleware.WithTrustedProxies("10.0.0.0/8", "::1")}, spoofedURL, 403},
		{"trusted peer, signed for the forwarded URL", []middleware.Option{middleware.WithTrustedProxies("127.0.0.0/8")}, spoofedURL, 200},
		{"trusted peer, signed for the real URL", []middleware.Option{middleware.WithTrustedProxies("127.0.0.1")}, "", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := newTokenVerifier()
			a := startApp(t, v, tt.opts...)
			target := a.srv.URL + "/sms"
			signed := tt.signedFor
			if signed == "" {
				signed = target
			}
			got := postForm(t, target, signed, smsBody, spoof)
			if got.status != tt.want {
				t.Errorf("status = %d; want %d (verifier saw %q)", got.status, tt.want, v.requests()[0].GetUrl())
			}
		})
	}
	t.Run("refusal names the ignored headers", func(t *testing.T) {
		t.Parallel()
		a := startApp(t, newTokenVerifier())
		target := a.srv.URL + "/sms"
		postForm(t, target, spoofedURL, smsBody, spoof)
		rec := a.logs.only(t)
		for _, want := range []string{"Forwarded", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port", "X-Original-Host", "127.0.0.1", "not a trusted proxy"} {
			if !strings.Contains(rec.attrs["proxy_hint"], want) {
				t.Errorf("proxy_hint = %q; want it to mention %q", rec.attrs["proxy_hint"], want)
			}
		}
		if rec.attrs["url"] != target {
			t.Errorf("logged url = %q; want %q", rec.attrs["url"], target)
		}
	})
}

func TestGETAndJSONWebhooks(t *testing.T) {
	t.Parallel()
	v := newTokenVerifier()
	a := startApp(t, v)

	get := a.srv.URL + "/voice?AccountSid=" + testSID + "&CallSid=CA1&Caller=%2B15005550006&Empty="
	got := do(t, http.MethodGet, get, nil, http.Header{"X-Twilio-Signature": {signature.Sign(testToken, get, nil)}})
	if got.status != 200 {
		t.Errorf("GET: status = %d; want 200", got.status)
	}
	if r := v.requests()[0]; r.GetUrl() != get || r.GetBody() != nil || r.GetContentType() != "" {
		t.Errorf("GET: verifier saw url %q body %q content type %q; want the URL only", r.GetUrl(), r.GetBody(), r.GetContentType())
	}

	body := `{"AccountSid":"` + testSID + `","events":[1,2]}`
	jsonURL := a.srv.URL + "/events?bodySHA256=" + signature.BodySHA256([]byte(body))
	h := http.Header{"Content-Type": {"application/json"}, "X-Twilio-Signature": {signature.Sign(testToken, jsonURL, nil)}}
	got = do(t, http.MethodPost, jsonURL, strings.NewReader(body), h)
	if got.status != 200 || got.body != body {
		t.Errorf("JSON: got %d %q; want 200 with the body", got.status, got.body)
	}
	got = do(t, http.MethodPost, jsonURL, strings.NewReader(body+" "), h)
	if got.status != 403 {
		t.Errorf("JSON with a changed body: status = %d; want 403", got.status)
	}
	if recs := a.logs.records(); recs[len(recs)-1].attrs["reason"] != "BODY_HASH_MISMATCH" {
		t.Errorf("JSON with a changed body: log = %+v; want reason BODY_HASH_MISMATCH", recs[len(recs)-1])
	}
}

func TestHTTP2OverTLS(t *testing.T) {
	t.Parallel()
	logs := &logRecorder{}
	m, err := middleware.New(newTokenVerifier(), middleware.WithLogger(slog.New(logs)))
	if err != nil {
		t.Fatal(err)
	}
	calls := new(int)
	srv := httptest.NewUnstartedServer(m.Wrap(echoHandler(calls)))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	target := srv.URL + "/sms?q=a%2Fb"
	params, _ := url.ParseQuery(smsBody)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, target, strings.NewReader(smsBody))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", signature.Sign(testToken, target, params))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 || string(b) != smsBody {
		t.Errorf("got %s %d %q; want HTTP/2 200 with the body", resp.Proto, resp.StatusCode, b)
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		v    middleware.Verifier
		opts []middleware.Option
		want string
	}{
		{"nil verifier", nil, nil, "nil Verifier"},
		{"bad CIDR", newTokenVerifier(), []middleware.Option{middleware.WithTrustedProxies("10.0.0.0/8", "not-a-cidr")}, "not-a-cidr"},
		{"bad base URL", newTokenVerifier(), []middleware.Option{middleware.WithPublicBaseURL("https://u:secretpw@example.com")}, "user info"},
		{"base URL and trusted proxies", newTokenVerifier(), []middleware.Option{middleware.WithPublicBaseURL("https://example.com"), middleware.WithTrustedProxies("10.0.0.0/8")}, "conflict"},
		{"bad proxy header", newTokenVerifier(), []middleware.Option{middleware.WithProxyHeaders("X-Real-IP")}, "X-Real-IP"},
		{"bad body limit", newTokenVerifier(), []middleware.Option{middleware.WithMaxBodyBytes(0)}, "max body bytes"},
		{"nil option", newTokenVerifier(), []middleware.Option{nil}, "nil Option"},
	}
	for _, tt := range tests {
		m, err := middleware.New(tt.v, tt.opts...)
		if err == nil || m != nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: New = %v, %v; want nil and an error mentioning %q", tt.name, m, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "secretpw") {
			t.Errorf("%s: error %q leaks a password", tt.name, err)
		}
	}
	if _, err := middleware.New(newTokenVerifier(), middleware.WithTrustedProxies("", " "), middleware.WithPublicBaseURL(""), middleware.WithAccounts("", "AC1")); err != nil {
		t.Errorf("empty values: New error = %v; want nil", err)
	}
}

func TestVerdictFromEmptyContext(t *testing.T) {
	t.Parallel()
	if v, ok := middleware.VerdictFrom(t.Context()); ok || v != (middleware.Verdict{}) {
		t.Errorf("VerdictFrom(empty) = %v, %v; want the zero Verdict, false", v, ok)
	}
}

func TestForgedHeadersNeverReachTheHandler(t *testing.T) {
	t.Parallel()
	for _, shadow := range []bool{false, true} {
		logs := &logRecorder{}
		opts := []middleware.Option{middleware.WithLogger(slog.New(logs))}
		if shadow {
			opts = append(opts, middleware.WithShadow())
		}
		m, err := middleware.New(newTokenVerifier(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		var seen http.Header
		srv := httptest.NewServer(m.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen = r.Header.Clone()
		})))
		target := srv.URL + "/sms"
		forged := http.Header{
			"X-Twilioguard-Verified":  {"true"},
			"X_twilioguard_verified":  {"true"},
			"X-Twilio-Account-Sid":    {"ACffffffffffffffffffffffffffffffff"},
			"X_twilio_account_sid":    {"ACffffffffffffffffffffffffffffffff"},
			"X-Twilioguard-Duplicate": {"false"},
			"X-Other":                 {"kept"},
		}
		signedFor := target
		if shadow {
			signedFor = "https://elsewhere.example/sms" // invalid, let through
		}
		if got := postForm(t, target, signedFor, smsBody, forged); got.status != 200 {
			t.Fatalf("shadow=%v: status = %d; want 200", shadow, got.status)
		}
		for name := range seen {
			if strings.Contains(strings.ToLower(name), "twilioguard") || strings.Contains(strings.ToLower(strings.ReplaceAll(name, "_", "-")), "twilio-account-sid") {
				t.Errorf("shadow=%v: handler saw forged header %s: %v", shadow, name, seen[name])
			}
		}
		if seen.Get("X-Other") != "kept" {
			t.Errorf("shadow=%v: other headers must be kept; got %v", shadow, seen)
		}
		srv.Close()
	}
}

func TestIdempotencyTokenAndDuplicates(t *testing.T) {
	t.Parallel()
	dup := func(duplicate bool) middleware.Verifier {
		return middleware.VerifierFunc(func(_ context.Context, req *twilioguardv1.VerifyWebhookRequest) (*twilioguardv1.VerifyWebhookResponse, error) {
			if req.GetIdempotencyToken() != "tok-1" {
				return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("idempotency token %q", req.GetIdempotencyToken()))
			}
			return &twilioguardv1.VerifyWebhookResponse{Valid: true, AccountSid: testSID, Credential: "auth_token",
				Duplicate: proto.Bool(duplicate), ReplayCheck: twilioguardv1.ReplayCheck_CHECKED}, nil
		})
	}
	tests := []struct {
		name      string
		duplicate bool
		opts      []middleware.Option
		want      int
	}{
		{"first copy", false, nil, 200},
		{"duplicate let through", true, nil, 200},
		{"first copy, rejecting", false, []middleware.Option{middleware.WithRejectDuplicates()}, 200},
		{"duplicate rejected", true, []middleware.Option{middleware.WithRejectDuplicates()}, 409},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			logs := &logRecorder{}
			m, err := middleware.New(dup(tt.duplicate), append(tt.opts, middleware.WithLogger(slog.New(logs)))...)
			if err != nil {
				t.Fatal(err)
			}
			var v middleware.Verdict
			srv := httptest.NewServer(m.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				v, _ = middleware.VerdictFrom(r.Context())
			})))
			defer srv.Close()
			got := postForm(t, srv.URL+"/sms", srv.URL+"/sms", smsBody, http.Header{"I-Twilio-Idempotency-Token": {"tok-1"}})
			if got.status != tt.want {
				t.Fatalf("status = %d (%q); want %d", got.status, got.body, tt.want)
			}
			if tt.want == 200 && (!v.ReplayChecked || v.Duplicate != tt.duplicate) {
				t.Errorf("verdict = %+v; want ReplayChecked and Duplicate=%v", v, tt.duplicate)
			}
		})
	}
}

func TestRefusalHandler(t *testing.T) {
	t.Parallel()
	var refs []middleware.Refusal
	twiml := func(w http.ResponseWriter, _ *http.Request, ref middleware.Refusal) {
		refs = append(refs, ref)
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(ref.Status)
		_, _ = io.WriteString(w, "<Response><Reject/></Response>")
	}
	a := startApp(t, newTokenVerifier(), middleware.WithRefusalHandler(twiml))
	target := a.srv.URL + "/sms"
	got := postForm(t, target, target+"/other", smsBody, nil)
	if got.status != 403 || got.body != "<Response><Reject/></Response>" || got.header.Get("Content-Type") != "text/xml" {
		t.Errorf("got %d %q %q; want the custom 403 TwiML answer", got.status, got.header.Get("Content-Type"), got.body)
	}
	if len(refs) != 1 || refs[0].Verdict == nil || refs[0].Verdict.Reason != "SIGNATURE_MISMATCH" || refs[0].Err != nil {
		t.Errorf("refusals = %+v; want one with the verdict", refs)
	}
}

func TestLogFieldsAreBounded(t *testing.T) {
	t.Parallel()
	a := startApp(t, newTokenVerifier())
	target := a.srv.URL + "/sms?pad=" + strings.Repeat("x", 6000)
	postForm(t, target, target+"&other", smsBody, nil)
	rec := a.logs.only(t)
	for k, v := range rec.attrs {
		if len(v) > 300 {
			t.Errorf("log attribute %s is %d bytes; want it cut", k, len(v))
		}
	}
}
