package twilioapi

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/signature"
	"github.com/twilioguard/twilioguard/store"
)

// Defaults for the zero values of [RotateConfig].
const (
	// DefaultPropagationDelay is how long a rotation waits after twilioguard
	// accepted the new token before it promotes it at Twilio: a change
	// reaches every replica of a PostgreSQL store within a second
	// (LISTEN/NOTIFY), so two seconds leave a margin.
	DefaultPropagationDelay = 2 * time.Second
	// DefaultProbeTimeout bounds the wait for a probe signed with the new
	// token to verify.
	DefaultProbeTimeout = 30 * time.Second
)

// probeURL is the URL rotation probes are signed for (.invalid is never a
// real host).
const probeURL = "https://rotation-probe.twilioguard.invalid/probe"

// RotateConfig configures [Rotate].
type RotateConfig struct {
	// Twilio holds either the account's own SID and current auth token, or
	// credentials of its parent (or an API key) to look that token up.
	Twilio *Client
	// Accounts is twilioguard's admin API.
	Accounts AccountService
	// Verifiers must each verify a probe signed with the new token before
	// it is promoted: the service, and optionally each replica.
	Verifiers []Verifier
	// Grace is how long twilioguard keeps accepting the old token (zero:
	// the service's default, 24 h).
	Grace time.Duration
	// PropagationDelay is waited after twilioguard accepted the new token,
	// for replicas no verifier reaches (default [DefaultPropagationDelay]).
	PropagationDelay time.Duration
	// ProbeTimeout bounds the wait for the probes (default
	// [DefaultProbeTimeout]).
	ProbeTimeout time.Duration
	// Progress, when set, receives one line per step done.
	Progress func(format string, args ...any)
}

// RotateError says which step of a rotation failed, what state Twilio and
// twilioguard are in, and how to finish or undo the rotation.
type RotateError struct {
	Account string
	Step    string
	Err     error
	// State, Finish and Undo are sentences for the operator.
	State, Finish, Undo string
}

func (e *RotateError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rotate %s: %s: %v\nstate: %s", e.Account, e.Step, e.Err, e.State)
	if e.Finish != "" {
		b.WriteString("\nto finish: " + e.Finish)
	}
	if e.Undo != "" {
		b.WriteString("\nto undo: " + e.Undo)
	}
	return b.String()
}

func (e *RotateError) Unwrap() error { return e.Err }

// Rotate rotates an account's auth token through Twilio with no moment at
// which a webhook signed by Twilio fails:
//
//  1. It checks that the token twilioguard holds is the one Twilio has.
//  2. It creates a secondary auth token at Twilio, authenticated as the
//     account with its current token.
//  3. twilioguard accepts it (RotateAuthToken): the new token becomes
//     primary and the old one stays accepted as previous for the grace.
//  4. It waits PropagationDelay, then until every verifier verifies a probe
//     signed with the new token.
//  5. It promotes the secondary token at Twilio, which signs webhooks with it
//     from then on.
//
// account is a SID or an alias. On failure it stops and returns a
// *RotateError.
func Rotate(ctx context.Context, account string, cfg RotateConfig) (*twilioguardv1.Account, error) {
	if cfg.Twilio == nil || cfg.Accounts == nil || len(cfg.Verifiers) == 0 {
		return nil, errors.New("rotate: a Twilio client, the account service and a verifier are required")
	}
	if cfg.PropagationDelay <= 0 {
		cfg.PropagationDelay = DefaultPropagationDelay
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = DefaultProbeTimeout
	}
	progress := cfg.Progress
	if progress == nil {
		progress = func(string, ...any) {}
	}
	nothing := "nothing was changed, at Twilio or in twilioguard"

	got, err := cfg.Accounts.GetAccount(ctx, &twilioguardv1.GetAccountRequest{Account: account})
	if err != nil {
		return nil, &RotateError{Account: account, Step: "read the account from twilioguard", Err: err, State: nothing}
	}
	held := got.Account
	sid := held.Sid
	fail := func(step string, err error, state, finish, undo string) error {
		return &RotateError{Account: sid, Step: step, Err: err, State: state, Finish: finish, Undo: undo}
	}

	current, err := cfg.Twilio.currentToken(ctx, sid)
	if err != nil {
		return nil, fail("look up the current auth token at Twilio", err, nothing, "", "")
	}
	switch fp := current.Fingerprint(); {
	case fp == held.PreviousAuthTokenFingerprint && held.AuthTokenFingerprint != fp:
		return nil, fail("check the current auth token", fmt.Errorf("twilioguard holds a newer token (%s) and accepts Twilio's (%s) only as the previous one", held.AuthTokenFingerprint, fp),
			"a rotation was started and not finished; "+nothing,
			"promote the secondary token at Twilio ("+promoteHow(sid)+")",
			"make Twilio's token primary again in twilioguard: TWILIOGUARD_NEW_AUTH_TOKEN=<Twilio's token> twilioguard accounts rotate "+sid)
	case fp != held.AuthTokenFingerprint:
		return nil, fail("check the current auth token", fmt.Errorf("twilioguard holds %s, Twilio has %s", held.AuthTokenFingerprint, fp),
			nothing, "bring twilioguard up to date first (twilioguard accounts import), or give this account's current token in "+EnvAuthToken, "")
	}
	self := Credentials{AccountSID: sid, Secret: current}

	secondary, err := cfg.Twilio.createSecondaryToken(ctx, self)
	if err != nil {
		return nil, fail("create a secondary auth token at Twilio", err,
			"twilioguard was not changed; if Twilio created a secondary token anyway, it is unused",
			"run this command again (a new secondary token replaces any other)", "")
	}
	progress("created a secondary auth token at Twilio (%s)", secondary.Fingerprint())

	req := &twilioguardv1.RotateAuthTokenRequest{Account: sid, NewAuthToken: secondary.Reveal()}
	if cfg.Grace > 0 {
		req.Grace = durationpb.New(cfg.Grace)
	}
	rotated, err := cfg.Accounts.RotateAuthToken(ctx, req)
	if err != nil {
		// The answer may be lost after the change was made: look.
		after, gerr := cfg.Accounts.GetAccount(ctx, &twilioguardv1.GetAccountRequest{Account: sid})
		if gerr != nil || after.Account.AuthTokenFingerprint != secondary.Fingerprint() {
			return nil, fail("make twilioguard accept the new token", err,
				"Twilio has an unused secondary auth token; twilioguard still verifies with the current one (webhooks are unaffected)",
				"run this command again (a new secondary token replaces this one)",
				"delete the secondary token at Twilio ("+deleteSecondaryHow(sid)+")")
		}
		rotated = &twilioguardv1.RotateAuthTokenResponse{Account: after.Account}
	}
	expires := rotated.Account.GetPreviousExpireTime().AsTime().UTC().Format(time.RFC3339)
	progress("twilioguard accepts the new token; the old one stays accepted until %s", expires)
	halfway := fmt.Sprintf("twilioguard verifies with the new token and accepts the old one until %s; Twilio still signs webhooks with the old token, so they verify until then", expires)
	finish := "check that every replica is up and current, then promote the secondary token at Twilio (" + promoteHow(sid) + ") before " + expires
	undo := "make the old token primary again (TWILIOGUARD_NEW_AUTH_TOKEN=<old token> twilioguard accounts rotate " + sid +
		") and delete the secondary token at Twilio (" + deleteSecondaryHow(sid) + ")"

	if err := sleepCtx(ctx, cfg.PropagationDelay); err != nil {
		return nil, fail("wait for the replicas", err, halfway, finish, undo)
	}
	for i, v := range cfg.Verifiers {
		if err := awaitProbe(ctx, v, sid, secondary, cfg.ProbeTimeout); err != nil {
			return nil, fail(fmt.Sprintf("confirm that verifier %d accepts the new token", i+1), err, halfway, finish, undo)
		}
	}
	progress("a webhook signed with the new token verifies (%d verifier(s), after %s)", len(cfg.Verifiers), cfg.PropagationDelay)

	// Authenticated with the new token, so that a retry after a lost answer
	// still authenticates once the promotion happened.
	promoted, err := cfg.Twilio.promoteSecondaryToken(ctx, Credentials{AccountSID: sid, Secret: secondary})
	if err != nil {
		return nil, fail("promote the new token at Twilio", err, halfway+" (if Twilio shows the new token promoted, nothing is left to do)", finish, undo)
	}
	if promoted != "" && promoted != secondary {
		return nil, fail("promote the new token at Twilio", fmt.Errorf("the token promoted at Twilio (%s) is not the one twilioguard accepted (%s)", promoted.Fingerprint(), secondary.Fingerprint()),
			"Twilio signs with a token twilioguard may not hold; webhooks may fail", "run twilioguard accounts import now", "")
	}
	progress("promoted the new token at Twilio: it signs webhooks with it from now on")
	return rotated.Account, nil
}

// currentToken returns an account's current auth token: the client's own
// when its credentials are that account's auth token, else looked up with
// them (a parent account's credentials, or an API key).
func (c *Client) currentToken(ctx context.Context, sid string) (store.Secret, error) {
	if c.creds.AccountSID == sid && c.creds.APIKey == "" {
		return c.creds.Secret, nil
	}
	a, err := c.account(ctx, sid)
	if err != nil {
		return "", err
	}
	if a.Status == StatusClosed {
		return "", fmt.Errorf("%s is closed at Twilio", sid)
	}
	return a.AuthToken, nil
}

// awaitProbe asks v to verify a webhook signed with token until it is
// valid with the auth token credential, or timeout.
func awaitProbe(ctx context.Context, v Verifier, sid string, token store.Secret, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	params := url.Values{"AccountSid": {sid}, "Probe": {rand.Text()}}
	req := &twilioguardv1.VerifyWebhookRequest{
		Url:       probeURL,
		Signature: signature.Sign(token.Reveal(), probeURL, params),
		Account:   sid,
		Route:     "twilioguard-rotation-probe",
	}
	for k, vs := range params {
		req.Params = append(req.Params, &twilioguardv1.Param{Key: k, Value: vs[0]})
	}
	var last error
	for {
		resp, err := v.VerifyWebhook(ctx, req)
		switch {
		case err == nil && resp.Valid && resp.Credential == "auth_token":
			return nil
		case err == nil && resp.Valid:
			last = fmt.Errorf("the new token verifies as %s, not yet as the auth token", resp.Credential)
		case err == nil:
			last = fmt.Errorf("the new token does not verify yet (%s)", resp.Reason)
		case connect.CodeOf(err) != connect.CodeUnavailable && connect.CodeOf(err) != connect.CodeDeadlineExceeded && ctx.Err() == nil:
			return err
		default:
			last = err
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return fmt.Errorf("not accepted within %s: %w", timeout, last)
		}
	}
}

func promoteHow(sid string) string {
	return "Twilio Console > Account > API keys & tokens > Promote, or curl -X POST https://accounts.twilio.com/v1/AuthTokens/Promote -u " + sid + ":<current auth token>"
}

func deleteSecondaryHow(sid string) string {
	return "Twilio Console > Account > API keys & tokens, or curl -X DELETE https://accounts.twilio.com/v1/AuthTokens/Secondary -u " + sid + ":<current auth token>"
}
