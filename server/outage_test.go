package server_test

import (
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"
	healthv1 "google.golang.org/grpc/health/grpc_health_v1"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/gen/twilioguard/v1/twilioguardv1connect"
)

// health calls grpc.health.v1.Health/Check for service over p.
func (h *harness) health(t *testing.T, p protocol, service string) (healthv1.HealthCheckResponse_ServingStatus, error) {
	t.Helper()
	c := connect.NewClient[healthv1.HealthCheckRequest, healthv1.HealthCheckResponse](
		h.httpClient(p), h.baseURL+"/grpc.health.v1.Health/Check", p.opts...)
	resp, err := c.CallUnary(t.Context(), connect.NewRequest(&healthv1.HealthCheckRequest{Service: service}))
	if err != nil {
		return 0, err
	}
	return resp.Msg.Status, nil
}

func TestStoreDownBeforeFirstLoad(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{storeDown: true})
	req := signedParams(token1, hookURL, smsParams(sid1))
	for _, p := range protocols {
		_, err := h.verifier(p).VerifyWebhook(t.Context(), req)
		cerr := wantCode(t, p.name+": VerifyWebhook before any load", err, connect.CodeUnavailable)
		if !strings.Contains(cerr.Message(), "not loaded") {
			t.Errorf("%s: message %q does not say the accounts are not loaded", p.name, cerr.Message())
		}
		_, err = h.admin(p, adminToken).GetAccount(t.Context(), &twilioguardv1.GetAccountRequest{Account: sid1})
		wantCode(t, p.name+": GetAccount with the store down", err, connect.CodeUnavailable)

		status, err := h.health(t, p, "")
		if err != nil || status != healthv1.HealthCheckResponse_NOT_SERVING {
			t.Errorf("%s: health Check = %v, %v; want NOT_SERVING", p.name, status, err)
		}
	}
	if code, body := h.get(t, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "not ready") {
		t.Errorf("GET /readyz = %d %q; want 503 not ready", code, body)
	}
	if code, _ := h.get(t, "/healthz"); code != http.StatusOK {
		t.Errorf("GET /healthz = %d; want 200 (the process is alive)", code)
	}
	if _, body := h.get(t, "/metrics"); !strings.Contains(body, "twilioguard_cache_loaded 0") {
		t.Errorf("/metrics does not report twilioguard_cache_loaded 0:\n%s", body)
	}

	// The store comes back: after a load everything works.
	h.store.SetDown(false)
	if err := h.srv.Load(t.Context()); err != nil {
		t.Fatalf("Load: %v", err)
	}
	for _, p := range protocols {
		got, err := h.verifier(p).VerifyWebhook(t.Context(), req)
		if err != nil || !got.Valid {
			t.Errorf("%s: VerifyWebhook after the store came back = %v, %v; want valid", p.name, got, err)
		}
		if status, err := h.health(t, p, ""); err != nil || status != healthv1.HealthCheckResponse_SERVING {
			t.Errorf("%s: health Check once loaded = %v, %v; want SERVING", p.name, status, err)
		}
	}
	if code, body := h.get(t, "/readyz"); code != http.StatusOK || !strings.HasPrefix(body, "ready: 2 accounts") {
		t.Errorf("GET /readyz = %d %q; want 200 ready: 2 accounts", code, body)
	}
}

func TestStoreDownAfterLoad(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{})
	h.store.SetDown(true)
	h.srv.CheckStore(t.Context())

	req := signedParams(token1, hookURL, smsParams(sid1))
	for _, p := range protocols {
		got, err := h.verifier(p).VerifyWebhook(t.Context(), req)
		if err != nil || !got.Valid {
			t.Errorf("%s: VerifyWebhook from the cache = %v, %v; want valid", p.name, got, err)
		}
		got, err = h.verifier(p).VerifyWebhook(t.Context(), signedParams(token2, hookURL, smsParams(sid1)))
		if err != nil || got.Reason != twilioguardv1.Reason_SIGNATURE_MISMATCH {
			t.Errorf("%s: bad signature from the cache = %v, %v; want SIGNATURE_MISMATCH", p.name, got, err)
		}

		admin := h.admin(p, adminToken)
		_, err = admin.PutAccount(t.Context(), &twilioguardv1.PutAccountRequest{Account: &twilioguardv1.Account{Sid: sid3, AuthToken: token3}})
		cerr := wantCode(t, p.name+": PutAccount with the store down", err, connect.CodeUnavailable)
		if !strings.Contains(cerr.Message(), "store is unavailable") {
			t.Errorf("%s: PutAccount message %q does not say the store is unavailable", p.name, cerr.Message())
		}
		_, err = admin.ListAccounts(t.Context(), &twilioguardv1.ListAccountsRequest{})
		wantCode(t, p.name+": ListAccounts with the store down", err, connect.CodeUnavailable)
		_, err = admin.RotateAuthToken(t.Context(), &twilioguardv1.RotateAuthTokenRequest{Account: sid1, NewAuthToken: token3New})
		wantCode(t, p.name+": RotateAuthToken with the store down", err, connect.CodeUnavailable)
		_, err = admin.DeleteAccount(t.Context(), &twilioguardv1.DeleteAccountRequest{Account: sid1})
		wantCode(t, p.name+": DeleteAccount with the store down", err, connect.CodeUnavailable)

		for _, service := range []string{"", twilioguardv1connect.VerifierServiceName, twilioguardv1connect.AccountServiceName} {
			status, err := h.health(t, p, service)
			if err != nil || status != healthv1.HealthCheckResponse_SERVING {
				t.Errorf("%s: health Check(%q) = %v, %v; want SERVING (verification goes on)", p.name, service, status, err)
			}
		}
		_, err = h.health(t, p, "no.such.Service")
		wantCode(t, p.name+": health Check of an unknown service", err, connect.CodeNotFound)
	}
	if code, body := h.get(t, "/readyz"); code != http.StatusOK || !strings.Contains(body, "degraded") {
		t.Errorf("GET /readyz = %d %q; want 200 degraded", code, body)
	}
	if _, body := h.get(t, "/metrics"); !strings.Contains(body, "twilioguard_store_up 0") {
		t.Errorf("/metrics does not report twilioguard_store_up 0")
	}
	if logs := h.logs.String(); !strings.Contains(logs, "store unreachable") {
		t.Errorf("log does not report the store outage:\n%s", logs)
	}

	// Failed writes left the cache alone.
	got, err := h.verifier(protocols[0]).VerifyWebhook(t.Context(), signedParams(token3, hookURL, smsParams(sid3)))
	if err != nil || got.Valid {
		t.Errorf("account of the failed PutAccount: VerifyWebhook = %v, %v; want not valid", got, err)
	}

	// The store recovers.
	h.store.SetDown(false)
	h.srv.CheckStore(t.Context())
	if code, body := h.get(t, "/readyz"); code != http.StatusOK || !strings.HasPrefix(body, "ready") {
		t.Errorf("GET /readyz after recovery = %d %q; want 200 ready", code, body)
	}
	if _, body := h.get(t, "/metrics"); !strings.Contains(body, "twilioguard_store_up 1") {
		t.Errorf("/metrics does not report twilioguard_store_up 1 after recovery")
	}
	if _, err := h.admin(protocols[0], adminToken).PutAccount(t.Context(), &twilioguardv1.PutAccountRequest{
		Account: &twilioguardv1.Account{Sid: sid3, AuthToken: token3},
	}); err != nil {
		t.Errorf("PutAccount after recovery: %v", err)
	}
}
