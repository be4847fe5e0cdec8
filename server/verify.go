package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/internal/bound"
	"github.com/twilioguard/twilioguard/signature"
	"github.com/twilioguard/twilioguard/store"
)

// Credential names reported in VerifyWebhookResponse.credential.
const (
	credAuthToken     = "auth_token"
	credPreviousToken = "previous_auth_token"
)

// maxAllowedAccounts bounds VerifyWebhookRequest.allowed_accounts.
const maxAllowedAccounts = 100

// maxSignatureBytes bounds the signature header; anything longer is
// malformed whatever it contains (HMAC-SHA256 in base64 is 44 bytes).
const maxSignatureBytes = 512

// VerifyWebhook checks the signature of one webhook request against the
// credentials of the account that claims to have sent it.
//
// It logs a refused request at Info (account, reason, credential, route,
// latency, hint), a request it could not decide at Info (malformed input) or
// Warn (anything else), and a verified request only at Debug: the counters
// and histograms carry the volume, so the default level writes no line per
// verified webhook.
func (s *Server) VerifyWebhook(ctx context.Context, req *twilioguardv1.VerifyWebhookRequest) (*twilioguardv1.VerifyWebhookResponse, error) {
	start := time.Now()
	resp, err := s.verify(req)
	if err == nil {
		err = s.checkReplay(ctx, req, resp)
	}
	elapsed := time.Since(start)
	route := s.routes.Value(req.GetRoute())
	if err != nil {
		code := connect.CodeOf(err)
		s.metrics.observe("error", code.String(), "", route, "", elapsed)
		level := slog.LevelWarn
		if code == connect.CodeInvalidArgument {
			level = slog.LevelInfo
		}
		if s.log.Enabled(ctx, level) {
			s.log.LogAttrs(ctx, level, "webhook not decided",
				slog.String("route", route), slog.String("code", code.String()),
				slog.String("error", bound.Text(err.Error(), bound.TextBytes)), slog.Duration("latency", elapsed))
		}
		return nil, err
	}
	result, reason, level, msg := "valid", "none", slog.LevelDebug, "webhook verified"
	if !resp.Valid {
		result, reason, level, msg = "invalid", resp.Reason.String(), slog.LevelInfo, "webhook refused"
	}
	s.metrics.observe(result, reason, resp.Credential, route, resp.AccountSid, elapsed)
	if !s.log.Enabled(ctx, level) {
		return resp, nil
	}
	attrs := []slog.Attr{
		slog.String("account_sid", resp.AccountSid),
		slog.String("reason", reason),
		slog.String("credential", resp.Credential),
		slog.String("route", route),
		slog.Duration("latency", elapsed),
	}
	if resp.Hint != "" {
		attrs = append(attrs, slog.String("hint", resp.Hint))
	}
	attrs = replayAttrs(attrs, resp)
	s.log.LogAttrs(ctx, level, msg, attrs...)
	return resp, nil
}

// verify decides one request. Errors are connect errors with code
// InvalidArgument or Unavailable.
func (s *Server) verify(req *twilioguardv1.VerifyWebhookRequest) (*twilioguardv1.VerifyWebhookResponse, error) {
	sreq, err := s.signatureRequest(req)
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	if loaded, _, _ := s.cache.status(); !loaded {
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("accounts not loaded yet: the store is unreachable"))
	}

	settings, keyReason, err := parseSettings(req.SignatureSettings)
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}

	resp := &twilioguardv1.VerifyWebhookResponse{}
	claimed := signature.AccountSids(sreq)
	acct, reason, hint := s.resolveAccount(req, claimed)
	if acct != nil {
		resp.AccountSid = acct.sid
	}
	if req.Signature == "" {
		resp.Reason = twilioguardv1.Reason_MISSING_SIGNATURE
		return resp, nil
	}
	if len(req.Signature) > maxSignatureBytes {
		resp.Reason = twilioguardv1.Reason_MALFORMED_SIGNATURE
		return resp, nil
	}
	if reason == twilioguardv1.Reason_UNKNOWN_ACCOUNT {
		resp.Reason, resp.Hint = reason, hint
		if hint != "" && emptyForm(sreq) {
			resp.Hint = emptyFormHint
		}
		return resp, nil
	}

	var buf [3]signature.Credential
	creds, keyReason := s.credentials(acct, settings, keyReason, buf[:])
	match, err := signature.Check(sreq, creds)
	if err != nil && len(acct.unreadable) > 0 && !errors.Is(err, signature.ErrMalformedRequest) {
		// A secret that cannot be read might have verified it: no answer
		// can be given for this account until an operator repairs it.
		return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf(
			"account %s: its %s cannot be read (sealed under a key this service does not hold, or damaged); "+
				"an operator must put new values", acct.sid, strings.Join(acct.unreadable, ", ")))
	}
	other := ""
	if req.Account == "" && len(claimed) > 1 && errors.Is(err, signature.ErrMismatch) {
		other = s.signedByOther(sreq, claimed, acct.sid, settings)
	}
	switch {
	case err == nil && reason == twilioguardv1.Reason_ACCOUNT_NOT_ALLOWED:
		// Genuine, but signed by an account this route does not accept.
		resp.Reason = reason
	case err == nil && namesOther(claimed, acct.sid):
		// Genuine, but the request also names another account, which an
		// application may read instead of the verified one.
		resp.Reason = twilioguardv1.Reason_ACCOUNT_MISMATCH
	case err == nil:
		c := creds[match.Credential]
		resp.Valid = true
		resp.Credential = c.Name
		resp.MatchedUrl = signature.RedactURL(match.URL)
		resp.Algorithm = algorithmToProto(c.Algorithm)
		return resp, nil
	case errors.Is(err, signature.ErrMalformedRequest):
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	case keyReason != twilioguardv1.Reason_REASON_UNSPECIFIED &&
		(errors.Is(err, signature.ErrMismatch) || errors.Is(err, signature.ErrMalformedSignature)):
		resp.Reason = keyReason
	case errors.Is(err, signature.ErrMissingSignature):
		resp.Reason = twilioguardv1.Reason_MISSING_SIGNATURE
	case errors.Is(err, signature.ErrMalformedSignature):
		resp.Reason = twilioguardv1.Reason_MALFORMED_SIGNATURE
	case errors.Is(err, signature.ErrMissingBodyHash):
		resp.Reason = twilioguardv1.Reason_MISSING_BODY_HASH
	case errors.Is(err, signature.ErrBodyHashMismatch):
		resp.Reason = twilioguardv1.Reason_BODY_HASH_MISMATCH
	case errors.Is(err, signature.ErrAlgorithmNotAllowed):
		resp.Reason = twilioguardv1.Reason_ALGORITHM_NOT_ALLOWED
	case other != "":
		// Signed by another account the request names further on.
		resp.AccountSid, resp.Reason = other, twilioguardv1.Reason_ACCOUNT_MISMATCH
	default: // ErrMismatch, ErrNoCredentials
		resp.Reason = twilioguardv1.Reason_SIGNATURE_MISMATCH
		resp.Hint = s.diagnose(sreq, creds)
	}
	if resp.Reason == twilioguardv1.Reason_SIGNATURE_MISMATCH && resp.Hint == "" && emptyForm(sreq) {
		resp.Hint = emptyFormHint
	}
	return resp, nil
}

// diagnose looks for a near miss within the hint budgets: a number of
// diagnoses and a number of bytes hashed per second, each diagnosis itself
// bounded by the size of its request (signature.DefaultDiagnoseBudget), so
// that invalid requests cannot buy much more CPU than valid ones.
func (s *Server) diagnose(sreq *signature.Request, creds []signature.Credential) string {
	now := time.Now()
	limit := signature.DefaultDiagnoseBudget(sreq.Size())
	if limit == 0 || !s.hintBytes.spend(now, limit) || !s.hints.take(now) {
		return ""
	}
	hint, _ := signature.DiagnoseBudget(sreq, creds, limit)
	return hint
}

// signatureRequest validates the request's shape and limits and turns it
// into the signature package's form. Its errors are meant for the caller.
func (s *Server) signatureRequest(req *twilioguardv1.VerifyWebhookRequest) (*signature.Request, error) {
	if err := s.checkURL(req.Url); err != nil {
		return nil, err
	}
	if len(req.AllowedAccounts) > maxAllowedAccounts {
		return nil, fmt.Errorf("too many allowedAccounts: %d (at most %d)", len(req.AllowedAccounts), maxAllowedAccounts)
	}
	sreq := &signature.Request{URL: req.Url, Signature: req.Signature}
	if len(req.Params) > s.cfg.MaxParams {
		return nil, fmt.Errorf("too many params: %d (at most %d)", len(req.Params), s.cfg.MaxParams)
	}
	if len(req.Params) > 0 {
		sreq.Fields = make([]signature.Field, len(req.Params))
		for i, p := range req.Params {
			sreq.Fields[i] = signature.Field{Key: p.Key, Value: p.Value}
		}
	}
	if len(req.Body) == 0 && req.ContentType == "" {
		return sreq, signature.Validate(sreq)
	}
	if len(req.Body) > s.cfg.MaxBodyBytes {
		return nil, fmt.Errorf("body too large: %d bytes (at most %d)", len(req.Body), s.cfg.MaxBodyBytes)
	}
	if req.ContentType == "" {
		return nil, errors.New("contentType is required with body (the request's Content-Type header)")
	}
	mediaType, _, err := mime.ParseMediaType(req.ContentType)
	if err != nil {
		return nil, fmt.Errorf("contentType %q: %w", bound.Text(req.ContentType, 100), err)
	}
	if mediaType == "application/x-www-form-urlencoded" {
		if n := bytes.Count(req.Body, []byte("&")) + 1; n > s.cfg.MaxParams {
			return nil, fmt.Errorf("too many form fields in body: %d (at most %d)", n, s.cfg.MaxParams)
		}
	}
	// The signature package parses form bodies itself, exactly as Twilio
	// encodes them, and checks any other body against bodySHA256.
	sreq.Body, sreq.ContentType, sreq.HasBody = req.Body, mediaType, true
	// Malformed input is refused before any account is looked up, so the
	// answer does not depend on which accounts exist.
	return sreq, signature.Validate(sreq)
}

// checkURL applies the server's limits to the URL; its form is checked by
// signature.Validate, the one owner of that rule.
func (s *Server) checkURL(raw string) error {
	switch {
	case raw == "":
		return errors.New("url is required: the full URL Twilio requested")
	case len(raw) > s.cfg.MaxURLBytes:
		return fmt.Errorf("url too long: %d bytes (at most %d)", len(raw), s.cfg.MaxURLBytes)
	}
	return nil
}

// resolveAccount finds the account a request names: the account field,
// else the AccountSid field of the params, the query or a JSON body, else
// the only allowed account. It also enforces allowedAccounts.
func (s *Server) resolveAccount(req *twilioguardv1.VerifyWebhookRequest, claimed []string) (*credentials, twilioguardv1.Reason, string) {
	key := req.Account
	if key == "" && len(claimed) > 0 {
		key = claimed[0] // only selects the credentials to try
	}
	if key == "" && len(req.AllowedAccounts) == 1 {
		key = req.AllowedAccounts[0]
	}
	if key == "" {
		return nil, twilioguardv1.Reason_UNKNOWN_ACCOUNT,
			"no account named: set account or allowedAccounts, or send the AccountSid field"
	}
	acct, ok := s.cache.lookup(key)
	if !ok {
		return nil, twilioguardv1.Reason_UNKNOWN_ACCOUNT, ""
	}
	if len(req.AllowedAccounts) > 0 {
		allowed := false
		for _, a := range req.AllowedAccounts {
			if sid, ok := s.cache.resolve(a); ok && sid == acct.sid {
				allowed = true
				break
			}
		}
		if !allowed {
			return acct, twilioguardv1.Reason_ACCOUNT_NOT_ALLOWED, ""
		}
	}
	return acct, twilioguardv1.Reason_REASON_UNSPECIFIED, ""
}

// namesOther reports whether claimed (the accounts a request names
// wherever an application may read them, see signature.AccountSids) holds
// an account other than sid.
func namesOther(claimed []string, sid string) bool {
	for _, c := range claimed {
		if c != sid {
			return true
		}
	}
	return false
}

// signedByOther looks, among the other accounts a request names, for one
// whose credentials verify it: a request signed by one account that names
// another first. It returns that account's SID, or "".
func (s *Server) signedByOther(sreq *signature.Request, claimed []string, tried string, st signature.Settings) string {
	for _, c := range claimed {
		if c == tried {
			continue
		}
		acct, ok := s.cache.lookup(c)
		if !ok || acct.sid == tried {
			continue
		}
		var buf [3]signature.Credential
		creds, _ := s.credentials(acct, st, twilioguardv1.Reason_REASON_UNSPECIFIED, buf[:])
		if _, err := signature.Check(sreq, creds); err == nil {
			return acct.sid
		}
	}
	return ""
}

// parseSettings reads the X-Twilio-Webhooks-Signature-Settings header. An
// algorithm no SharedKey may use is not an error: keyReason says so and the
// auth tokens are still tried.
func parseSettings(h string) (signature.Settings, twilioguardv1.Reason, error) {
	if h == "" {
		return signature.Settings{}, twilioguardv1.Reason_REASON_UNSPECIFIED, nil
	}
	st, err := signature.ParseSettings(h)
	switch {
	case errors.Is(err, signature.ErrAlgorithmNotAllowed):
		return signature.Settings{}, twilioguardv1.Reason_ALGORITHM_NOT_ALLOWED, nil
	case err != nil:
		return signature.Settings{}, twilioguardv1.Reason_REASON_UNSPECIFIED, fmt.Errorf("signatureSettings: %w", err)
	}
	return st, twilioguardv1.Reason_UNKNOWN_SHARED_KEY, nil
}

// credentials lists the secrets to try, in order: the SharedKey named by the
// settings header (when the account has it and allows the algorithm), the
// auth token, and the previous auth token while it is unexpired. keyReason
// says why a named SharedKey could not be used (UNKNOWN_SHARED_KEY until one
// is found).
func (s *Server) credentials(acct *credentials, st signature.Settings, keyReason twilioguardv1.Reason, buf []signature.Credential) ([]signature.Credential, twilioguardv1.Reason) {
	creds := buf[:0]
	if st.KeyID != "" {
		for _, k := range acct.sharedKeys {
			if k.id != st.KeyID {
				continue
			}
			keyReason = twilioguardv1.Reason_ALGORITHM_NOT_ALLOWED
			if signature.CheckAlgorithm(st.Algorithm, k.algorithms) == nil {
				keyReason = twilioguardv1.Reason_REASON_UNSPECIFIED
				creds = append(creds, k.creds[slices.Index(k.algorithms, st.Algorithm)])
			}
		}
	}
	creds = append(creds, signature.Credential{Name: credAuthToken, Secret: acct.authToken, Algorithm: signature.HMACSHA1})
	if acct.previousToken != "" && s.cfg.Now().Before(acct.previousUntil) {
		creds = append(creds, signature.Credential{Name: credPreviousToken, Secret: acct.previousToken, Algorithm: signature.HMACSHA1})
	}
	return creds, keyReason
}

func algorithmFromStore(a store.Algorithm) signature.Algorithm {
	if a == store.HMACSHA1 {
		return signature.HMACSHA1
	}
	return signature.HMACSHA256
}

func algorithmToProto(a signature.Algorithm) twilioguardv1.Algorithm {
	switch a {
	case signature.HMACSHA1:
		return twilioguardv1.Algorithm_HMAC_SHA1
	case signature.HMACSHA256:
		return twilioguardv1.Algorithm_HMAC_SHA256
	}
	return twilioguardv1.Algorithm_ALGORITHM_UNSPECIFIED
}
