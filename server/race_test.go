package server_test

import (
	"sync"
	"testing"
	"time"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/store"
)

// assertStoredTokenVerifies checks that the auth token the store holds for
// sid is the one VerifyWebhook accepts as the primary token.
func assertStoredTokenVerifies(t *testing.T, h *harness, sid string) {
	t.Helper()
	a, err := h.store.Get(t.Context(), sid)
	if err != nil {
		t.Fatalf("store Get(%s): %v", sid, err)
	}
	got, err := h.verifier(protocols[0]).VerifyWebhook(t.Context(), signedParams(a.AuthToken.Reveal(), hookURL, smsParams(sid)))
	if err != nil {
		t.Fatalf("VerifyWebhook: %v", err)
	}
	if !got.Valid || got.Credential != "auth_token" {
		t.Errorf("the stored auth token (version %d, %s) does not verify as auth_token: %v; the cache holds an older version",
			a.Version, a.AuthToken.Fingerprint(), got)
	}
}

// TestConcurrentPutsCacheKeepsNewest interleaves two PutAccount calls for
// one account so that the older write returns last. The cache must end up
// with what the store holds, not with whichever call finished last.
func TestConcurrentPutsCacheKeepsNewest(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{})
	admin := h.admin(protocols[0], adminToken)
	firstStored, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hook := func(a *store.Account) {
		if a.AuthToken == token3 {
			once.Do(func() { close(firstStored); <-release })
		}
	}
	h.store.afterPut.Store(&hook)

	first := make(chan error, 1)
	go func() {
		_, err := admin.PutAccount(t.Context(), &twilioguardv1.PutAccountRequest{Account: &twilioguardv1.Account{Sid: sid2, AuthToken: token3}})
		first <- err
	}()
	<-firstStored
	second := make(chan error, 1)
	go func() {
		_, err := admin.PutAccount(t.Context(), &twilioguardv1.PutAccountRequest{Account: &twilioguardv1.Account{Sid: sid2, AuthToken: token3New}})
		second <- err
	}()
	// Let the second write finish first (a server that serialises writes to
	// one account would instead wait for the first: then release it).
	var err2 error
	select {
	case err2 = <-second:
		close(release)
	case <-time.After(time.Second):
		close(release)
		err2 = <-second
	}
	if err := <-first; err != nil {
		t.Fatalf("first PutAccount: %v", err)
	}
	if err2 != nil {
		t.Fatalf("second PutAccount: %v", err2)
	}
	assertStoredTokenVerifies(t, h, sid2)
}

// TestResyncDoesNotUndoRotation runs a full cache load (as Run does every
// ResyncInterval) whose snapshot is taken before a RotateAuthToken and
// installed after it. The rotation must not be undone.
func TestResyncDoesNotUndoRotation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{})
	snapshotted, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hook := func() { once.Do(func() { close(snapshotted); <-release }) }
	h.store.afterSnapshot.Store(&hook)

	loaded := make(chan error, 1)
	go func() { loaded <- h.srv.Load(t.Context()) }()
	<-snapshotted
	rotated := make(chan error, 1)
	go func() {
		_, err := h.admin(protocols[0], adminToken).RotateAuthToken(t.Context(),
			&twilioguardv1.RotateAuthTokenRequest{Account: sid2, NewAuthToken: token3New})
		rotated <- err
	}()
	// Let the rotation finish before the load installs its snapshot (a
	// server that orders writes after loads would instead wait for the
	// load: then release it).
	var err error
	select {
	case err = <-rotated:
		close(release)
	case <-time.After(time.Second):
		close(release)
		err = <-rotated
	}
	if err != nil {
		t.Fatalf("RotateAuthToken: %v", err)
	}
	if err := <-loaded; err != nil {
		t.Fatalf("Load: %v", err)
	}
	assertStoredTokenVerifies(t, h, sid2)
}
