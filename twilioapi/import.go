package twilioapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"connectrpc.com/connect"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
)

// maxFriendlyBytes is the longest friendly name twilioguard stores.
const maxFriendlyBytes = 256

// Summary counts what an import did to the accounts Twilio listed.
type Summary struct {
	// Added are accounts twilioguard did not hold.
	Added int `json:"added"`
	// Updated are accounts whose auth token (rotated in with the service's
	// default grace), suspension or friendly name changed.
	Updated int `json:"updated"`
	// Removed are accounts closed at Twilio, deleted from twilioguard.
	Removed int `json:"removed"`
	// Unchanged are accounts twilioguard already held as Twilio has them.
	Unchanged int `json:"unchanged"`
}

// String returns "added N, updated N, removed N, unchanged N".
func (s Summary) String() string {
	return fmt.Sprintf("added %d, updated %d, removed %d, unchanged %d", s.Added, s.Updated, s.Removed, s.Unchanged)
}

// change is what an import does to one account.
type change int

const (
	unchanged change = iota
	added
	updated
	removed
)

// Import brings twilioguard's accounts in line with Twilio: the account of
// tw's credentials and all its subaccounts, every page. It is idempotent.
//
//   - An account twilioguard does not hold is added with its auth token,
//     friendly name and suspension.
//   - An auth token changed at Twilio is rotated in with RotateAuthToken and
//     the service's default grace, so the old token keeps verifying. A
//     Twilio token equal to the previous token twilioguard still accepts is
//     a rotation in progress ([Rotate]) and left alone.
//   - A change of suspension or friendly name replaces the account, keeping
//     its aliases, SharedKeys and previous token.
//   - An account closed at Twilio is deleted; one suspended is kept and
//     marked.
//
// Accounts twilioguard holds that Twilio does not list are left alone
// ([Audit] reports them). Every change is logged at info with the account
// SID, never a token. Twilio is read completely before anything changes,
// so an error from Twilio changes nothing; an error of the service stops
// the import, and the returned Summary counts what was done before it.
func Import(ctx context.Context, tw *Client, svc AccountService, log *slog.Logger) (Summary, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var sum Summary
	twAccounts, held, err := readAccounts(ctx, tw, svc)
	if err != nil {
		return sum, err
	}
	for _, ta := range twAccounts {
		c, err := reconcile(ctx, svc, ta, held[ta.SID], log)
		if err != nil {
			return sum, fmt.Errorf("import stopped at %s (%s so far): %w", ta.SID, sum, err)
		}
		switch c {
		case added:
			sum.Added++
		case updated:
			sum.Updated++
		case removed:
			sum.Removed++
		case unchanged:
			if ta.Status != StatusClosed {
				sum.Unchanged++
			}
		}
	}
	return sum, nil
}

// reconcile brings one account in line with Twilio. held is what the
// service listed (nil: not held); after a concurrent change (another
// replica syncing) it reads the account again and retries.
func reconcile(ctx context.Context, svc AccountService, ta Account, held *twilioguardv1.Account, log *slog.Logger) (change, error) {
	for attempt := 0; ; attempt++ {
		c, err := apply(ctx, svc, ta, held, log)
		if connect.CodeOf(err) != connect.CodeAborted || attempt == 2 {
			return c, err
		}
		got, gerr := svc.GetAccount(ctx, &twilioguardv1.GetAccountRequest{Account: ta.SID})
		switch {
		case connect.CodeOf(gerr) == connect.CodeNotFound:
			held = nil
		case gerr != nil:
			return unchanged, serviceError("read account "+ta.SID, gerr)
		default:
			held = got.Account
		}
	}
}

func apply(ctx context.Context, svc AccountService, ta Account, held *twilioguardv1.Account, log *slog.Logger) (change, error) {
	suspended := ta.Status == StatusSuspended
	friendly := truncate(ta.FriendlyName, maxFriendlyBytes)
	if friendly == "" && held != nil {
		friendly = held.FriendlyName // Twilio gave none: keep twilioguard's
	}
	switch {
	case ta.Status == StatusClosed && held == nil:
		return unchanged, nil
	case ta.Status == StatusClosed:
		_, err := svc.DeleteAccount(ctx, &twilioguardv1.DeleteAccountRequest{Account: ta.SID, Version: held.Version})
		if connect.CodeOf(err) == connect.CodeNotFound {
			return unchanged, nil // deleted meanwhile
		}
		if err != nil {
			return unchanged, serviceError("delete account "+ta.SID, err)
		}
		log.Info("twilio import: account removed (closed at Twilio)", "account", ta.SID)
		return removed, nil
	case held == nil:
		_, err := svc.PutAccount(ctx, &twilioguardv1.PutAccountRequest{Account: &twilioguardv1.Account{
			Sid: ta.SID, FriendlyName: friendly, AuthToken: ta.AuthToken.Reveal(), Suspended: suspended,
		}})
		if err != nil {
			return unchanged, serviceError("add account "+ta.SID, err)
		}
		log.Info("twilio import: account added", "account", ta.SID, "suspended", suspended)
		return added, nil
	}

	c := unchanged
	if tokenChanged(ta, held, time.Now()) {
		resp, err := svc.RotateAuthToken(ctx, &twilioguardv1.RotateAuthTokenRequest{Account: ta.SID, NewAuthToken: ta.AuthToken.Reveal()})
		if connect.CodeOf(err) == connect.CodeInvalidArgument {
			// Refused as already the account's auth token when another
			// replica rotated it in first.
			if got, gerr := svc.GetAccount(ctx, &twilioguardv1.GetAccountRequest{Account: ta.SID}); gerr == nil &&
				got.Account.AuthTokenFingerprint == ta.AuthToken.Fingerprint() {
				held, err = got.Account, nil
			}
		}
		if err != nil {
			return unchanged, serviceError("rotate in the new auth token of "+ta.SID, err)
		}
		if resp != nil {
			log.Info("twilio import: auth token changed at Twilio, rotated in; the old one stays accepted for the grace window",
				"account", ta.SID, "previous_expire_time", resp.Account.GetPreviousExpireTime().AsTime().Format(time.RFC3339))
			held, c = resp.Account, updated
		}
	}
	if held.Suspended != suspended || held.FriendlyName != friendly {
		_, err := svc.PutAccount(ctx, &twilioguardv1.PutAccountRequest{Account: &twilioguardv1.Account{
			Sid: ta.SID, Aliases: held.Aliases, FriendlyName: friendly, Suspended: suspended, Version: held.Version,
		}})
		if err != nil {
			return c, serviceError("update account "+ta.SID, err)
		}
		log.Info("twilio import: account updated", "account", ta.SID, "suspended", suspended,
			"friendly_name_changed", held.FriendlyName != friendly)
		c = updated
	}
	return c, nil
}

// tokenChanged reports whether Twilio's token for an account differs from
// the one twilioguard holds, comparing fingerprints (the service never
// returns tokens). Twilio's token equal to the previous token twilioguard
// still accepts means twilioguard is ahead: a rotation whose promotion at
// Twilio has not happened yet.
func tokenChanged(ta Account, held *twilioguardv1.Account, now time.Time) bool {
	fp := ta.AuthToken.Fingerprint()
	if fp == held.AuthTokenFingerprint {
		return false
	}
	inGrace := held.PreviousExpireTime != nil && held.PreviousExpireTime.AsTime().After(now)
	return !(fp == held.PreviousAuthTokenFingerprint && inGrace)
}

// serviceError names what twilioguard was asked to do.
func serviceError(op string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", op, err)
	}
	return fmt.Errorf("twilioguard: %s: %w", op, err)
}
