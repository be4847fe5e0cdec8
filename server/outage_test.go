package server_test

import (
	"strings"
	"testing"

	"connectrpc.com/connect"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
)

func TestStoreDownBeforeFirstLoad(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{storeDown: true})
	req := signedParams(token1, hookURL, smsParams(sid1))
	for _, p := range protocols {
		_, err := h.verifier(p).VerifyWebhook(t.Context(), req)
		cerr := wantCodeErr(t, p.name+": VerifyWebhook before any load", err, connect.CodeUnavailable)
		if !strings.Contains(cerr.Message(), "not loaded") {
			t.Errorf("%s: message %q does not say the accounts are not loaded", p.name, cerr.Message())
		}
		_, err = h.admin(p, adminToken).GetAccount(t.Context(), &twilioguardv1.GetAccountRequest{Account: sid1})
		wantCode(t, p.name+": GetAccount with the store down", err, connect.CodeUnavailable)
	}
	if st := h.srv.Status(); st.Loaded || st.LoadProblem != "store unreachable" {
		t.Errorf("Status = %+v; want not loaded because the store is unreachable", st)
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
	}
	if st := h.srv.Status(); !st.Loaded || st.Accounts != 2 || !st.StoreUp || st.LoadProblem != "" {
		t.Errorf("Status = %+v; want loaded with 2 accounts and the store up", st)
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
		cerr := wantCodeErr(t, p.name+": PutAccount with the store down", err, connect.CodeUnavailable)
		if !strings.Contains(cerr.Message(), "store is unavailable") {
			t.Errorf("%s: PutAccount message %q does not say the store is unavailable", p.name, cerr.Message())
		}
		_, err = admin.ListAccounts(t.Context(), &twilioguardv1.ListAccountsRequest{})
		wantCode(t, p.name+": ListAccounts with the store down", err, connect.CodeUnavailable)
		_, err = admin.RotateAuthToken(t.Context(), &twilioguardv1.RotateAuthTokenRequest{Account: sid1, NewAuthToken: token3New})
		wantCode(t, p.name+": RotateAuthToken with the store down", err, connect.CodeUnavailable)
		_, err = admin.DeleteAccount(t.Context(), &twilioguardv1.DeleteAccountRequest{Account: sid1})
		wantCode(t, p.name+": DeleteAccount with the store down", err, connect.CodeUnavailable)
	}
	if st := h.srv.Status(); !st.Loaded || st.StoreUp {
		t.Errorf("Status = %+v; want loaded (verification goes on) with the store down", st)
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
	if st := h.srv.Status(); !st.StoreUp {
		t.Errorf("Status after recovery = %+v; want the store up", st)
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
