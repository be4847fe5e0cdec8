package server

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/internal/bound"
	"github.com/twilioguard/twilioguard/store"
)

// Limits on account fields.
const (
	maxAliases       = 32
	maxSharedKeys    = 16
	maxSecretBytes   = 512
	defaultPageSize  = 100
	maxPageSize      = 1000
	maxFriendlyBytes = 256
	// Expiry times must fall in these years (every store can hold them).
	minYear = 2000
	maxYear = 2200
	// maxGrace bounds RotateAuthToken's grace window.
	maxGrace = 366 * 24 * time.Hour
)

// Names of unreadable secrets (store.Account.Unreadable).
const (
	unreadableAuthToken  = "auth_token"
	unreadableSharedKeys = "shared_keys"
)

var (
	sidPattern   = regexp.MustCompile(`^AC[0-9a-f]{32}$`)
	aliasPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
)

// PutAccount creates an account or replaces it. Secrets left empty on a
// replace keep their stored values.
func (s *Server) PutAccount(ctx context.Context, req *twilioguardv1.PutAccountRequest) (*twilioguardv1.PutAccountResponse, error) {
	in := req.GetAccount()
	if in == nil {
		return nil, invalid("account is required")
	}
	if !sidPattern.MatchString(in.Sid) {
		return nil, invalid("account.sid %q: must be AC followed by 32 lowercase hex digits", bound.Text(in.Sid, 40))
	}
	if in.Version < 0 {
		return nil, invalid("account.version must not be negative")
	}
	for attempt := 0; ; attempt++ {
		existing, err := s.cfg.Store.Get(ctx, in.Sid)
		switch {
		case errors.Is(err, store.ErrNotFound):
			existing = nil
		case err != nil:
			return nil, s.storeError("read account", err)
		}
		if existing != nil && existing.SID != in.Sid {
			// in.Sid matched another account's alias; that cannot be, since
			// aliases never look like SIDs, but never overwrite the wrong row.
			existing = nil
		}
		a, err := s.accountFromProto(req, existing)
		if err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, err)
		}
		if in.Version > 0 && existing == nil {
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("account %s not found (version %d given)", in.Sid, in.Version))
		}
		// What was kept from the stored account must still be current when
		// the write lands: an unconditional replace is conditional on the
		// version just read, and retried if a concurrent change won.
		expected := in.Version
		if expected == 0 && existing != nil {
			expected = existing.Version
		}
		stored, err := s.cfg.Store.Put(ctx, a, expected)
		if errors.Is(err, store.ErrVersionMismatch) && in.Version == 0 && attempt < 3 {
			continue
		}
		if err != nil {
			return nil, s.storeError("store account", err)
		}
		s.cache.set(stored)
		s.logWrite(ctx, "put account", stored.SID, stored.Version)
		return &twilioguardv1.PutAccountResponse{Account: accountToProto(stored)}, nil
	}
}

// GetAccount returns one account without its secrets.
func (s *Server) GetAccount(ctx context.Context, req *twilioguardv1.GetAccountRequest) (*twilioguardv1.GetAccountResponse, error) {
	a, err := s.get(ctx, req.Account)
	if err != nil {
		return nil, err
	}
	return &twilioguardv1.GetAccountResponse{Account: accountToProto(a)}, nil
}

// ListAccounts returns one page of accounts ordered by SID.
func (s *Server) ListAccounts(ctx context.Context, req *twilioguardv1.ListAccountsRequest) (*twilioguardv1.ListAccountsResponse, error) {
	size := int(req.PageSize)
	switch {
	case size < 0:
		return nil, invalid("pageSize must not be negative")
	case size == 0:
		size = defaultPageSize
	case size > maxPageSize:
		size = maxPageSize
	}
	after := ""
	if req.PageToken != "" {
		b, err := base64.RawURLEncoding.DecodeString(req.PageToken)
		if err != nil || !sidPattern.Match(b) {
			return nil, invalid("pageToken is not one returned by ListAccounts")
		}
		after = string(b)
	}
	list, err := s.cfg.Store.List(ctx, after, size+1)
	if err != nil {
		return nil, s.storeError("list accounts", err)
	}
	resp := &twilioguardv1.ListAccountsResponse{}
	if len(list) > size {
		list = list[:size]
		resp.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(list[size-1].SID))
	}
	for _, a := range list {
		resp.Accounts = append(resp.Accounts, accountToProto(a))
	}
	return resp, nil
}

// DeleteAccount removes an account.
func (s *Server) DeleteAccount(ctx context.Context, req *twilioguardv1.DeleteAccountRequest) (*twilioguardv1.DeleteAccountResponse, error) {
	if req.Version < 0 {
		return nil, invalid("version must not be negative")
	}
	a, err := s.get(ctx, req.Account)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.Delete(ctx, a.SID, req.Version); err != nil {
		return nil, s.storeError("delete account", err)
	}
	s.cache.remove(a.SID)
	s.logWrite(ctx, "delete account", a.SID, a.Version)
	return &twilioguardv1.DeleteAccountResponse{}, nil
}

// RotateAuthToken makes new_auth_token primary and keeps the current token
// as the previous one until now + grace.
func (s *Server) RotateAuthToken(ctx context.Context, req *twilioguardv1.RotateAuthTokenRequest) (*twilioguardv1.RotateAuthTokenResponse, error) {
	if err := checkSecret("newAuthToken", req.NewAuthToken); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	grace := s.cfg.DefaultGrace
	if req.Grace != nil {
		if err := req.Grace.CheckValid(); err != nil {
			return nil, invalid("grace: %v", err)
		}
		grace = req.Grace.AsDuration()
		if grace <= 0 || grace > maxGrace {
			return nil, invalid("grace must be positive and at most %s (omit it for the default of %s)", maxGrace, s.cfg.DefaultGrace)
		}
	}
	for attempt := 0; ; attempt++ {
		a, err := s.get(ctx, req.Account)
		if err != nil {
			return nil, err
		}
		if a.AuthToken.Reveal() == req.NewAuthToken {
			return nil, invalid("newAuthToken is already the account's auth token")
		}
		version := a.Version
		a.PreviousAuthToken = a.AuthToken
		a.PreviousExpireTime = s.cfg.Now().Add(grace).UTC()
		if a.AuthToken == "" { // unreadable: nothing to keep; the rotation repairs it
			a.PreviousAuthToken, a.PreviousExpireTime = "", time.Time{}
		}
		a.AuthToken = store.Secret(req.NewAuthToken)
		stored, err := s.cfg.Store.Put(ctx, a, version)
		if errors.Is(err, store.ErrVersionMismatch) && attempt < 3 {
			continue // changed concurrently: rotate the newer version
		}
		if err != nil {
			return nil, s.storeError("rotate auth token", err)
		}
		s.cache.set(stored)
		s.logWrite(ctx, "rotate auth token", stored.SID, stored.Version, slog.Time("previous_expire_time", stored.PreviousExpireTime))
		return &twilioguardv1.RotateAuthTokenResponse{Account: accountToProto(stored)}, nil
	}
}

// logWrite logs one admin write at Info: what, which account and the
// version it left, never a secret.
func (s *Server) logWrite(ctx context.Context, action, sid string, version int64, more ...slog.Attr) {
	s.log.LogAttrs(ctx, slog.LevelInfo, "admin: "+action,
		append([]slog.Attr{slog.String("account_sid", sid), slog.Int64("version", version)}, more...)...)
}

// get reads an account by SID or alias from the store.
func (s *Server) get(ctx context.Context, key string) (*store.Account, error) {
	if key == "" {
		return nil, invalid("account is required (a SID or an alias)")
	}
	a, err := s.cfg.Store.Get(ctx, key)
	if err != nil {
		return nil, s.storeError("read account", err)
	}
	return a, nil
}

// storeError maps store errors to connect codes with messages that say what
// to do, never including secrets.
func (s *Server) storeError(op string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return connect.NewError(connect.CodeNotFound, errors.New("account not found"))
	case errors.Is(err, store.ErrVersionMismatch):
		return connect.NewError(connect.CodeAborted, errors.New("account version mismatch: it changed since it was read; read it again and retry"))
	case errors.Is(err, store.ErrAliasTaken):
		return connect.NewError(connect.CodeAlreadyExists, errors.New("an alias is already used by another account"))
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		s.log.Warn("store unavailable", "op", op, "error", err)
		return connect.NewError(connect.CodeUnavailable, fmt.Errorf("%s: the account store is unavailable; try again later", op))
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, err)
	}
	s.log.Error("store failure", "op", op, "error", err)
	return connect.NewError(connect.CodeInternal, fmt.Errorf("%s: internal store error", op))
}

func invalid(format string, args ...any) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(format, args...))
}

// accountFromProto validates the request's account and merges it with the
// stored one: what it leaves empty keeps its stored value unless the request
// clears it.
func (s *Server) accountFromProto(req *twilioguardv1.PutAccountRequest, existing *store.Account) (*store.Account, error) {
	in := req.Account
	a := &store.Account{SID: in.Sid, FriendlyName: in.FriendlyName, Suspended: in.Suspended}
	if len(in.FriendlyName) > maxFriendlyBytes {
		return nil, fmt.Errorf("account.friendlyName: longer than %d bytes", maxFriendlyBytes)
	}
	switch {
	case in.FriendlyName != "" && req.ClearFriendlyName:
		return nil, errors.New("account.friendlyName given with clearFriendlyName")
	case in.FriendlyName == "" && !req.ClearFriendlyName && existing != nil:
		a.FriendlyName = existing.FriendlyName
	}
	if len(in.Aliases) > maxAliases {
		return nil, fmt.Errorf("account.aliases: more than %d", maxAliases)
	}
	seen := map[string]bool{}
	for _, al := range in.Aliases {
		if !aliasPattern.MatchString(al) || sidPattern.MatchString(al) {
			return nil, fmt.Errorf("account.aliases: %q must be 1-64 letters, digits, '.', '_' or '-' and not look like a SID", bound.Text(al, 70))
		}
		if seen[al] {
			return nil, fmt.Errorf("account.aliases: %q given twice", al)
		}
		seen[al] = true
		a.Aliases = append(a.Aliases, al)
	}
	switch {
	case len(in.Aliases) > 0 && req.ClearAliases:
		return nil, errors.New("account.aliases given with clearAliases")
	case len(in.Aliases) == 0 && !req.ClearAliases && existing != nil:
		a.Aliases = slices.Clone(existing.Aliases)
	}

	a.AuthToken = store.Secret(in.AuthToken)
	if in.AuthToken == "" && existing != nil {
		if slices.Contains(existing.Unreadable, unreadableAuthToken) {
			return nil, errors.New("account.authToken: the stored one cannot be read (sealed under another key, or damaged); give it again")
		}
		a.AuthToken = existing.AuthToken
	}
	if err := checkSecret("account.authToken", a.AuthToken.Reveal()); err != nil {
		return nil, err
	}

	switch {
	case in.PreviousAuthToken != "":
		if err := checkSecret("account.previousAuthToken", in.PreviousAuthToken); err != nil {
			return nil, err
		}
		if in.PreviousExpireTime == nil {
			return nil, errors.New("account.previousExpireTime is required with previousAuthToken")
		}
		a.PreviousAuthToken = store.Secret(in.PreviousAuthToken)
	case req.ClearPreviousAuthToken:
		if in.PreviousExpireTime != nil {
			return nil, errors.New("account.previousExpireTime given with clearPreviousAuthToken")
		}
	case existing != nil && existing.PreviousAuthToken != "":
		a.PreviousAuthToken = existing.PreviousAuthToken
		a.PreviousExpireTime = existing.PreviousExpireTime
	case in.PreviousExpireTime != nil:
		return nil, errors.New("account.previousExpireTime given without previousAuthToken")
	}
	if in.PreviousExpireTime != nil {
		if err := in.PreviousExpireTime.CheckValid(); err != nil {
			return nil, fmt.Errorf("account.previousExpireTime: %w", err)
		}
		t := in.PreviousExpireTime.AsTime().UTC()
		if t.Year() < minYear || t.Year() > maxYear {
			return nil, fmt.Errorf("account.previousExpireTime: year %d is outside %d-%d", t.Year(), minYear, maxYear)
		}
		// The grace window of a rotation is capped; a write cannot extend
		// a previous token's life past the same cap.
		if limit := s.cfg.Now().Add(maxGrace); t.After(limit) {
			return nil, fmt.Errorf("account.previousExpireTime: more than %s from now; a previous token is accepted at most that long", maxGrace)
		}
		a.PreviousExpireTime = t
	}
	// An expired previous token is of no use: it is dropped, never stored
	// again.
	if a.PreviousAuthToken != "" && !s.cfg.Now().Before(a.PreviousExpireTime) {
		a.PreviousAuthToken, a.PreviousExpireTime = "", time.Time{}
	}

	if len(in.SharedKeys) == 0 && !req.ClearSharedKeys && existing != nil {
		for _, k := range existing.SharedKeys {
			if k.Secret == "" {
				return nil, fmt.Errorf("account.sharedKeys: the stored secret of key %q cannot be read; give the keys again or clear them", k.ID)
			}
		}
		if slices.Contains(existing.Unreadable, unreadableSharedKeys) {
			return nil, errors.New("account.sharedKeys: the stored keys cannot be read; give them again or clear them")
		}
		a.SharedKeys = existing.SharedKeys
		return a, nil
	}
	if len(in.SharedKeys) > maxSharedKeys {
		return nil, fmt.Errorf("account.sharedKeys: more than %d", maxSharedKeys)
	}
	ids := map[string]bool{}
	for i, k := range in.SharedKeys {
		if !keyIDPattern.MatchString(k.Id) {
			return nil, fmt.Errorf("account.sharedKeys[%d].id %q: must be 1-128 letters, digits, '.', '_' or '-'", i, bound.Text(k.Id, 40))
		}
		if ids[k.Id] || k.Id == credAuthToken || k.Id == credPreviousToken {
			return nil, fmt.Errorf("account.sharedKeys[%d].id %q: duplicate or reserved", i, k.Id)
		}
		ids[k.Id] = true
		sk := store.SharedKey{ID: k.Id, Secret: store.Secret(k.Secret)}
		if k.Secret == "" && existing != nil {
			for _, old := range existing.SharedKeys {
				if old.ID == k.Id {
					sk.Secret = old.Secret
				}
			}
			if sk.Secret == "" && slices.Contains(existing.Unreadable, "shared_key:"+k.Id) {
				return nil, fmt.Errorf("account.sharedKeys[%d].secret: the stored one cannot be read; give it again", i)
			}
		}
		if err := checkSecret(fmt.Sprintf("account.sharedKeys[%d].secret", i), sk.Secret.Reveal()); err != nil {
			return nil, err
		}
		if len(k.Algorithms) == 0 {
			sk.Algorithms = []store.Algorithm{store.HMACSHA256}
		}
		for _, alg := range k.Algorithms {
			switch alg {
			case twilioguardv1.Algorithm_HMAC_SHA1:
				sk.Algorithms = append(sk.Algorithms, store.HMACSHA1)
			case twilioguardv1.Algorithm_HMAC_SHA256:
				sk.Algorithms = append(sk.Algorithms, store.HMACSHA256)
			default:
				return nil, fmt.Errorf("account.sharedKeys[%d].algorithms: %v is not HMAC_SHA1 or HMAC_SHA256", i, alg)
			}
		}
		a.SharedKeys = append(a.SharedKeys, sk)
	}
	return a, nil
}

// checkSecret refuses empty, oversized and whitespace-carrying secrets. Its
// message names the field, never the value.
func checkSecret(field, v string) error {
	if v == "" {
		return fmt.Errorf("%s is required and must not be empty", field)
	}
	if len(v) > maxSecretBytes {
		return fmt.Errorf("%s: longer than %d bytes", field, maxSecretBytes)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c == 0x7f {
			return fmt.Errorf("%s: contains whitespace or a control character", field)
		}
	}
	return nil
}

// accountToProto converts a stored account for a response: fingerprints,
// never secrets.
func accountToProto(a *store.Account) *twilioguardv1.Account {
	out := &twilioguardv1.Account{
		Sid:                          a.SID,
		Aliases:                      a.Aliases,
		FriendlyName:                 a.FriendlyName,
		AuthTokenFingerprint:         a.AuthToken.Fingerprint(),
		PreviousAuthTokenFingerprint: a.PreviousAuthToken.Fingerprint(),
		Version:                      a.Version,
		Suspended:                    a.Suspended,
		UnreadableSecrets:            a.Unreadable,
	}
	if !a.PreviousExpireTime.IsZero() && a.PreviousAuthToken != "" {
		out.PreviousExpireTime = timestamppb.New(a.PreviousExpireTime)
	}
	if !a.CreateTime.IsZero() {
		out.CreateTime = timestamppb.New(a.CreateTime)
	}
	if !a.UpdateTime.IsZero() {
		out.UpdateTime = timestamppb.New(a.UpdateTime)
	}
	for _, k := range a.SharedKeys {
		pk := &twilioguardv1.SharedKey{Id: k.ID, SecretFingerprint: k.Secret.Fingerprint()}
		for _, alg := range k.Algorithms {
			if alg == store.HMACSHA1 {
				pk.Algorithms = append(pk.Algorithms, twilioguardv1.Algorithm_HMAC_SHA1)
			} else {
				pk.Algorithms = append(pk.Algorithms, twilioguardv1.Algorithm_HMAC_SHA256)
			}
		}
		out.SharedKeys = append(out.SharedKeys, pk)
	}
	return out
}
