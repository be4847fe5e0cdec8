package twilioapi

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/store"
)

// memAccounts is an in-memory AccountService with the admin API's
// semantics that the importer relies on: write-only secrets answered as
// fingerprints, replace keeping what is left empty, versions, rotation with
// a grace. It records the write calls.
type memAccounts struct {
	mu       sync.Mutex
	accounts map[string]*memAccount
	writes   []string // "put AC…", "rotate AC…", "delete AC…"
	grace    time.Duration
	// fail, when set, answers every call with this error.
	fail error
}

type memAccount struct {
	proto           *twilioguardv1.Account
	token, previous store.Secret
}

func newMemAccounts() *memAccounts {
	return &memAccounts{accounts: map[string]*memAccount{}, grace: 24 * time.Hour}
}

var _ AccountService = (*memAccounts)(nil)

func (m *memAccounts) out(a *memAccount) *twilioguardv1.Account {
	p := proto.Clone(a.proto).(*twilioguardv1.Account)
	p.AuthTokenFingerprint = a.token.Fingerprint()
	p.PreviousAuthTokenFingerprint = a.previous.Fingerprint()
	for _, k := range p.SharedKeys {
		k.SecretFingerprint, k.Secret = store.Secret(k.Secret).Fingerprint(), ""
	}
	return p
}

func (m *memAccounts) GetAccount(_ context.Context, req *twilioguardv1.GetAccountRequest) (*twilioguardv1.GetAccountResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return nil, m.fail
	}
	for _, a := range m.accounts {
		if a.proto.Sid == req.Account || slices.Contains(a.proto.Aliases, req.Account) {
			return &twilioguardv1.GetAccountResponse{Account: m.out(a)}, nil
		}
	}
	return nil, connect.NewError(connect.CodeNotFound, errors.New("account not found"))
}

func (m *memAccounts) ListAccounts(_ context.Context, req *twilioguardv1.ListAccountsRequest) (*twilioguardv1.ListAccountsResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return nil, m.fail
	}
	var sids []string
	for sid := range m.accounts {
		if sid > req.PageToken {
			sids = append(sids, sid)
		}
	}
	slices.Sort(sids)
	resp := &twilioguardv1.ListAccountsResponse{}
	// Pages of two, so that callers must follow next_page_token.
	if len(sids) > 2 {
		sids = sids[:2]
		resp.NextPageToken = sids[1]
	}
	for _, sid := range sids {
		resp.Accounts = append(resp.Accounts, m.out(m.accounts[sid]))
	}
	return resp, nil
}

func (m *memAccounts) PutAccount(_ context.Context, req *twilioguardv1.PutAccountRequest) (*twilioguardv1.PutAccountResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return nil, m.fail
	}
	in := req.Account
	old := m.accounts[in.Sid]
	switch {
	case old != nil && in.Version != 0 && in.Version != old.proto.Version:
		return nil, connect.NewError(connect.CodeAborted, errors.New("account version mismatch"))
	case old == nil && in.AuthToken == "":
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("account.authToken is required"))
	}
	a := &memAccount{proto: &twilioguardv1.Account{
		Sid: in.Sid, Aliases: in.Aliases, FriendlyName: in.FriendlyName, Suspended: in.Suspended,
		SharedKeys: in.SharedKeys, Version: 1,
	}, token: store.Secret(in.AuthToken)}
	if old != nil {
		a.proto.Version = old.proto.Version + 1
		a.previous, a.proto.PreviousExpireTime = old.previous, old.proto.PreviousExpireTime
		if a.token == "" {
			a.token = old.token
		}
		if len(in.SharedKeys) == 0 {
			a.proto.SharedKeys = old.proto.SharedKeys
		}
	}
	m.accounts[in.Sid] = a
	m.writes = append(m.writes, "put "+in.Sid)
	return &twilioguardv1.PutAccountResponse{Account: m.out(a)}, nil
}

func (m *memAccounts) DeleteAccount(_ context.Context, req *twilioguardv1.DeleteAccountRequest) (*twilioguardv1.DeleteAccountResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return nil, m.fail
	}
	a := m.accounts[req.Account]
	switch {
	case a == nil:
		return nil, connect.NewError(connect.CodeNotFound, errors.New("account not found"))
	case req.Version != 0 && req.Version != a.proto.Version:
		return nil, connect.NewError(connect.CodeAborted, errors.New("account version mismatch"))
	}
	delete(m.accounts, req.Account)
	m.writes = append(m.writes, "delete "+req.Account)
	return &twilioguardv1.DeleteAccountResponse{}, nil
}

func (m *memAccounts) RotateAuthToken(_ context.Context, req *twilioguardv1.RotateAuthTokenRequest) (*twilioguardv1.RotateAuthTokenResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return nil, m.fail
	}
	a := m.accounts[req.Account]
	switch {
	case a == nil:
		return nil, connect.NewError(connect.CodeNotFound, errors.New("account not found"))
	case a.token.Reveal() == req.NewAuthToken:
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("newAuthToken is already the account's auth token"))
	}
	grace := m.grace
	if req.Grace != nil {
		grace = req.Grace.AsDuration()
	}
	a.previous, a.token = a.token, store.Secret(req.NewAuthToken)
	a.proto.PreviousExpireTime = timestamppb.New(time.Now().Add(grace))
	a.proto.Version++
	m.writes = append(m.writes, "rotate "+req.Account)
	return &twilioguardv1.RotateAuthTokenResponse{Account: m.out(a)}, nil
}

// put stores an account directly (test setup), not recorded as a write.
func (m *memAccounts) put(a *twilioguardv1.Account, token, previous string, previousExpire time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a = proto.Clone(a).(*twilioguardv1.Account)
	a.Version = 1
	if previous != "" {
		a.PreviousExpireTime = timestamppb.New(previousExpire)
	}
	m.accounts[a.Sid] = &memAccount{proto: a, token: store.Secret(token), previous: store.Secret(previous)}
}

// get returns an account as the service answers it, or nil.
func (m *memAccounts) get(sid string) *twilioguardv1.Account {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a := m.accounts[sid]; a != nil {
		return m.out(a)
	}
	return nil
}

func (m *memAccounts) writeLog() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.writes)
}
