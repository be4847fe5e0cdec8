package extauthz_test

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
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/twilioguard/twilioguard/extauthz"
	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/internal/testserver"
)

// fakeVerifier answers VerifyWebhook with a fixed response or error and
// records the requests it got.
type fakeVerifier struct {
	resp *twilioguardv1.VerifyWebhookResponse
	err  error

	mu   sync.Mutex
	reqs []*twilioguardv1.VerifyWebhookRequest
}

func (f *fakeVerifier) VerifyWebhook(_ context.Context, req *twilioguardv1.VerifyWebhookRequest) (*twilioguardv1.VerifyWebhookResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, req)
	return f.resp, f.err
}

func (f *fakeVerifier) requests() []*twilioguardv1.VerifyWebhookRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reqs
}

var _ extauthz.Verifier = (*fakeVerifier)(nil)

// transports start s behind each way it can be served and return a grpc-go
// client for it, as Envoy would call it.
var transports = map[string]func(t testing.TB, s *extauthz.Server) authv3.AuthorizationClient{
	"connect-h2c": func(t testing.TB, s *extauthz.Server) authv3.AuthorizationClient {
		mux := http.NewServeMux()
		mux.Handle(s.Handler())
		srv := httptest.NewUnstartedServer(mux)
		srv.Config.Protocols = new(http.Protocols)
		srv.Config.Protocols.SetHTTP1(true)
		srv.Config.Protocols.SetUnencryptedHTTP2(true)
		srv.Start()
		t.Cleanup(srv.Close)
		return dial(t, srv.Listener.Addr().String())
	},
	"grpc-go": func(t testing.TB, s *extauthz.Server) authv3.AuthorizationClient {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		g := grpc.NewServer()
		s.RegisterGRPC(g)
		go func() { _ = g.Serve(lis) }()
		t.Cleanup(g.Stop)
		return dial(t, lis.Addr().String())
	},
}

func dial(t testing.TB, addr string) authv3.AuthorizationClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("ext_authz"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return authv3.NewAuthorizationClient(cc)
}

const formBody = "AccountSid=AC123&Body=hi"

// check returns a CheckRequest for a signed form POST on a route with the
// given context extensions.
func check(ext map[string]string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "POST", Path: "/twilio/sms?x=1", Host: "127.0.0.1:10000", Scheme: "http",
			Headers: map[string]string{
				"content-type": "application/x-www-form-urlencoded", "content-length": "24",
				"x-twilio-signature": "c2lnbmF0dXJl", "x-request-id": "rid-1",
				"i-twilio-idempotency-token": "tok-1",
			},
			RawBody: []byte(formBody),
		}},
		ContextExtensions: ext,
	}}
}

func header(ok *authv3.OkHttpResponse, key string) []string {
	var vals []string
	for _, h := range ok.GetHeaders() {
		if h.GetHeader().GetKey() == key {
			if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
				vals = append(vals, "append action "+h.GetAppendAction().String())
			}
			vals = append(vals, h.GetHeader().GetValue())
		}
	}
	return vals
}

func TestCheck(t *testing.T) {
	t.Parallel()
	route := map[string]string{"public_base_url": "https://hooks.example.com", "twilio_accounts": "AC123", "route": "sms"}
	shadow := map[string]string{"public_base_url": "https://hooks.example.com", "mode": "shadow"}
	valid := &twilioguardv1.VerifyWebhookResponse{Valid: true, AccountSid: "AC123", Credential: "auth_token"}
	mismatch := &twilioguardv1.VerifyWebhookResponse{AccountSid: "AC123", Reason: twilioguardv1.Reason_SIGNATURE_MISMATCH, Hint: "secret diagnosis"}
	rejecting := map[string]string{"public_base_url": "https://hooks.example.com", "duplicates": "reject"}
	shadowRejecting := map[string]string{"public_base_url": "https://hooks.example.com", "duplicates": "reject", "mode": "shadow"}
	replayed := func(dup *bool, check twilioguardv1.ReplayCheck) *twilioguardv1.VerifyWebhookResponse {
		return &twilioguardv1.VerifyWebhookResponse{Valid: true, AccountSid: "AC123", Credential: "auth_token",
			Duplicate: dup, ReplayCheck: check, FirstSeenTime: timestamppb.New(time.Unix(1e9, 0))}
	}
	yes, no := true, false
	duplicate, first := replayed(&yes, twilioguardv1.ReplayCheck_CHECKED), replayed(&no, twilioguardv1.ReplayCheck_CHECKED)
	unknown := replayed(nil, twilioguardv1.ReplayCheck_UNAVAILABLE)

	tests := []struct {
		name      string
		ext       map[string]string
		mutate    func(*authv3.CheckRequest)
		resp      *twilioguardv1.VerifyWebhookResponse
		err       error
		wantCode  codes.Code // gRPC status of the call
		wantAuthz codes.Code // CheckResponse.status.code, when the call succeeds
		wantHTTP  int        // denied_response status, 0 when allowed
		wantCalls int
		wantHdr   map[string][]string // injected headers, when allowed
	}{
		{
			name: "valid", ext: route, resp: valid, wantAuthz: codes.OK, wantCalls: 1,
			wantHdr: map[string][]string{"x-twilioguard-verified": {"true"}, "x-twilio-account-sid": {"AC123"}},
		},
		{name: "bad signature", ext: route, resp: mismatch, wantAuthz: codes.PermissionDenied, wantHTTP: 403, wantCalls: 1},
		{
			name: "duplicate allowed and flagged", ext: route, resp: duplicate, wantAuthz: codes.OK, wantCalls: 1,
			wantHdr: map[string][]string{"x-twilioguard-verified": {"true"}, "x-twilio-account-sid": {"AC123"}, "x-twilioguard-duplicate": {"true"}},
		},
		{name: "duplicate on a route that rejects them", ext: rejecting, resp: duplicate, wantAuthz: codes.AlreadyExists, wantHTTP: 409, wantCalls: 1},
		{
			name: "first copy on a route that rejects duplicates", ext: rejecting, resp: first, wantAuthz: codes.OK, wantCalls: 1,
			wantHdr: map[string][]string{"x-twilioguard-verified": {"true"}, "x-twilioguard-duplicate": nil},
		},
		{
			name: "duplicate unknown on a route that rejects duplicates", ext: rejecting, resp: unknown, wantAuthz: codes.OK, wantCalls: 1,
			wantHdr: map[string][]string{"x-twilioguard-verified": {"true"}, "x-twilioguard-duplicate": nil},
		},
		{
			name: "shadow: duplicate on a rejecting route allowed", ext: shadowRejecting, resp: duplicate, wantAuthz: codes.OK, wantCalls: 1,
			wantHdr: map[string][]string{"x-twilioguard-shadow": {"duplicate"}, "x-twilioguard-verified": {"true"}, "x-twilioguard-duplicate": {"true"}},
		},
		{
			name: "unknown duplicates setting", ext: map[string]string{"duplicates": "drop"}, resp: valid,
			wantCode: codes.FailedPrecondition,
		},
		{
			name: "verifier says malformed", ext: route,
			err:       connect.NewError(connect.CodeInvalidArgument, errors.New("body is not a form")),
			wantAuthz: codes.InvalidArgument, wantHTTP: 400, wantCalls: 1,
		},
		{
			name: "verifier unavailable", ext: route,
			err:      connect.NewError(connect.CodeUnavailable, errors.New("store down")),
			wantCode: codes.Unavailable, wantCalls: 1,
		},
		{
			name: "verifier fails without a code", ext: route,
			err:      errors.New("boom"),
			wantCode: codes.Unavailable, wantCalls: 1,
		},
		{
			name: "shadow: bad signature allowed", ext: shadow, resp: mismatch, wantAuthz: codes.OK, wantCalls: 1,
			wantHdr: map[string][]string{"x-twilioguard-shadow": {"invalid; reason=SIGNATURE_MISMATCH"}},
		},
		{
			name: "shadow: verifier unavailable allowed", ext: shadow,
			err:       connect.NewError(connect.CodeUnavailable, errors.New("store down")),
			wantAuthz: codes.OK, wantCalls: 1,
			wantHdr: map[string][]string{"x-twilioguard-shadow": {"error"}},
		},
		{
			name: "misspelled context extension", ext: map[string]string{"twilio_account": "AC123"}, resp: valid,
			wantCode: codes.FailedPrecondition,
		},
		{
			name: "partial body", ext: route, resp: valid,
			mutate: func(c *authv3.CheckRequest) {
				c.Attributes.Request.Http.Headers["x-envoy-auth-partial-body"] = "true"
			},
			wantAuthz: codes.InvalidArgument, wantHTTP: 413,
		},
		{
			name: "body not sent", ext: route, resp: valid,
			mutate:   func(c *authv3.CheckRequest) { c.Attributes.Request.Http.RawBody = nil },
			wantCode: codes.FailedPrecondition,
		},
	}
	for tname, start := range transports {
		for _, tt := range tests {
			t.Run(tname+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				fake := &fakeVerifier{resp: tt.resp, err: tt.err}
				client := start(t, mustServer(extauthz.NewServer(fake)))
				req := check(tt.ext)
				if tt.mutate != nil {
					tt.mutate(req)
				}
				resp, err := client.Check(t.Context(), req)
				if got := status.Code(err); got != tt.wantCode {
					t.Fatalf("Check() code = %v (%v); want %v", got, err, tt.wantCode)
				}
				if got := len(fake.requests()); got != tt.wantCalls {
					t.Errorf("verifier calls = %d; want %d", got, tt.wantCalls)
				}
				if err != nil {
					return
				}
				if got := codes.Code(resp.GetStatus().GetCode()); got != tt.wantAuthz {
					t.Errorf("CheckResponse status = %v; want %v", got, tt.wantAuthz)
				}
				if got := int(resp.GetDeniedResponse().GetStatus().GetCode()); got != tt.wantHTTP {
					t.Errorf("denied HTTP status = %d; want %d", got, tt.wantHTTP)
				}
				if d := resp.GetDeniedResponse(); d != nil {
					if strings.Contains(d.GetBody(), "diagnosis") || strings.Contains(d.GetBody(), "MISMATCH") {
						t.Errorf("denied body %q carries a diagnosis", d.GetBody())
					}
					return
				}
				for k, want := range tt.wantHdr {
					if got := header(resp.GetOkResponse(), k); !cmp.Equal(got, want) {
						t.Errorf("header %s = %q; want %q", k, got, want)
					}
				}
			})
		}
	}
}

func TestCheckVerifyRequest(t *testing.T) {
	t.Parallel()
	fake := &fakeVerifier{resp: &twilioguardv1.VerifyWebhookResponse{Valid: true, AccountSid: "AC123"}}
	client := transports["connect-h2c"](t, mustServer(extauthz.NewServer(fake)))
	_, err := client.Check(t.Context(), check(map[string]string{
		"public_base_url": "https://hooks.example.com/", "twilio_accounts": "AC123, sales", "route": "sms",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := []*twilioguardv1.VerifyWebhookRequest{{
		Url: "https://hooks.example.com/twilio/sms?x=1", Body: []byte(formBody),
		ContentType: "application/x-www-form-urlencoded", Signature: "c2lnbmF0dXJl", IdempotencyToken: "tok-1",
		AllowedAccounts: []string{"AC123", "sales"}, Route: "sms",
	}}
	if diff := cmp.Diff(want, fake.requests(), protocmp.Transform()); diff != "" {
		t.Errorf("VerifyWebhook requests mismatch (-want +got):\n%s", diff)
	}
}

func TestCheckMetricsAndLogs(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	var logs testserver.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	valid := mustServer(extauthz.NewServer(&fakeVerifier{resp: &twilioguardv1.VerifyWebhookResponse{Valid: true, AccountSid: "AC123"}},
		extauthz.WithRegisterer(reg), extauthz.WithLogger(log)))
	// A second server on the same registry shares the collectors.
	invalid := mustServer(extauthz.NewServer(&fakeVerifier{resp: &twilioguardv1.VerifyWebhookResponse{
		AccountSid: "AC123", Reason: twilioguardv1.Reason_SIGNATURE_MISMATCH, Hint: "signature matches the https:// form",
	}}, extauthz.WithRegisterer(reg), extauthz.WithLogger(log)))

	ext := map[string]string{"route": "sms"}
	for range 2 {
		if _, err := valid.Check(t.Context(), check(ext)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := invalid.Check(t.Context(), check(ext)); err != nil {
		t.Fatal(err)
	}
	if _, err := invalid.Check(t.Context(), check(map[string]string{"route": "sms", "mode": "shadow"})); err != nil {
		t.Fatal(err)
	}

	got := counters(t, reg, "twilioguard_extauthz_checks_total")
	want := map[string]float64{
		"mode=enforce,reason=,result=valid,route=sms":                     2,
		"mode=enforce,reason=SIGNATURE_MISMATCH,result=invalid,route=sms": 1,
		"mode=shadow,reason=SIGNATURE_MISMATCH,result=invalid,route=sms":  1,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("checks_total mismatch (-want +got):\n%s", diff)
	}
	if got := histogramCount(t, reg, "twilioguard_extauthz_check_duration_seconds"); got != 4 {
		t.Errorf("check_duration_seconds count = %d; want 4", got)
	}

	out := logs.String()
	for _, want := range []string{
		`"msg":"webhook verified"`, `"msg":"webhook denied"`, `"msg":"webhook would be denied (shadow mode: allowed)"`,
		`"reason":"SIGNATURE_MISMATCH"`, `"hint":"signature matches the https:// form"`, `"account_sid":"AC123"`,
		`"path":"/twilio/sms"`, `"request_id":"rid-1"`, `"route":"sms"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %s:\n%s", want, out)
		}
	}
	for _, secret := range []string{"c2lnbmF0dXJl", "Body=hi", "x=1"} {
		if strings.Contains(out, secret) {
			t.Errorf("logs contain %q:\n%s", secret, out)
		}
	}
}

func TestHandlerConnectJSON(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.Handle(mustServer(extauthz.NewServer(&fakeVerifier{resp: &twilioguardv1.VerifyWebhookResponse{Reason: twilioguardv1.Reason_MISSING_SIGNATURE}})).Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	body := `{"attributes":{"request":{"http":{"path":"/sms","host":"h.example","scheme":"https","headers":{"content-type":"application/x-www-form-urlencoded"},"rawBody":"QT0x"}}}}`
	resp, err := http.Post(srv.URL+"/envoy.service.auth.v3.Authorization/Check", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.Contains(got, []byte(`"deniedResponse"`)) || !bytes.Contains(got, []byte(`"reason":"MISSING_SIGNATURE"`)) {
		t.Errorf("POST Check = %d %s; want 200 with a denied response and the reason in dynamic metadata", resp.StatusCode, got)
	}

	resp, err = http.Post(srv.URL+"/envoy.service.auth.v3.Authorization/Other", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST Other = %d; want 404", resp.StatusCode)
	}
}

// counters returns the values of a counter vector keyed by "l1=v1,l2=v2".
func counters(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			got[strings.Join(labels, ",")] = m.GetCounter().GetValue()
		}
	}
	return got
}

// histogramCount returns the total sample count of a histogram vector.
func histogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}

// TestCheckConcurrent runs checks from many goroutines against one server,
// whose answers to valid requests are shared between calls (run with -race).
func TestCheckConcurrent(t *testing.T) {
	t.Parallel()
	for name, start := range transports {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			client := start(t, mustServer(extauthz.NewServer(nopVerifier{&twilioguardv1.VerifyWebhookResponse{Valid: true, AccountSid: "AC123"}})))
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					for range 25 {
						resp, err := client.Check(t.Context(), check(map[string]string{"route": "sms"}))
						if err != nil {
							t.Error(err)
							return
						}
						if got := header(resp.GetOkResponse(), "x-twilio-account-sid"); !cmp.Equal(got, []string{"AC123"}) {
							t.Errorf("x-twilio-account-sid = %q; want [AC123]", got)
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}

// mustServer returns s, or panics on a construction error (test setup only).
func mustServer(s *extauthz.Server, err error) *extauthz.Server {
	if err != nil {
		panic(err)
	}
	return s
}

// TestCallerChosenRoutesAreBounded sends Checks with thousands of distinct
// route names, and with huge ones: the metric series, the route cache and
// the log lines stay bounded, and a huge context extension is a
// configuration error, not a new series.
func TestCallerChosenRoutesAreBounded(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	var logs testserver.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	s := mustServer(extauthz.NewServer(&fakeVerifier{resp: &twilioguardv1.VerifyWebhookResponse{Reason: twilioguardv1.Reason_MISSING_SIGNATURE}},
		extauthz.WithRegisterer(reg), extauthz.WithLogger(log)))
	for i := range 3000 {
		if _, err := s.Check(t.Context(), check(map[string]string{"route": fmt.Sprintf("route-%d", i)})); err != nil {
			t.Fatal(err)
		}
	}
	long := strings.Repeat("r", 4000) // under the extension limit, over the label limit
	if _, err := s.Check(t.Context(), check(map[string]string{"route": long})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Check(t.Context(), check(map[string]string{"route": strings.Repeat("r", 2<<20)})); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("a 2 MB route: %v; want FailedPrecondition (misconfigured route)", err)
	}
	got := counters(t, reg, "twilioguard_extauthz_checks_total")
	if len(got) > 102 {
		t.Errorf("%d series of checks_total; want at most 102 (100 routes, other, and the misconfigured route's error)", len(got))
	}
	if got["mode=enforce,reason=MISSING_SIGNATURE,result=invalid,route=other"] < 2900 {
		t.Errorf("routes past the cap were not counted as other: %v", got["mode=enforce,reason=MISSING_SIGNATURE,result=invalid,route=other"])
	}
	for line := range strings.SplitSeq(logs.String(), "\n") {
		if len(line) > 2000 {
			t.Fatalf("a log line of %d bytes; want every caller string cut", len(line))
		}
	}
}
