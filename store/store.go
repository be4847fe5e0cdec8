// Package store defines the account and credential types that every storage
// backend keeps, and the errors they report.
//
// Backends live in subpackages (store/sqlite, store/postgres) and pass the
// conformance suite in store/storetest. The interface a backend satisfies is
// declared by its user (package server), not here.
package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Errors reported by every backend. Callers test them with [errors.Is].
var (
	// ErrNotFound means no account has the SID or alias asked for.
	ErrNotFound = errors.New("account not found")
	// ErrVersionMismatch means an optimistic-concurrency check failed: the
	// stored version is not the expected one.
	ErrVersionMismatch = errors.New("account version mismatch")
	// ErrAliasTaken means an alias is already used by another account.
	ErrAliasTaken = errors.New("alias already used by another account")
	// ErrUnavailable means the backend cannot be reached now; the caller may
	// retry later.
	ErrUnavailable = errors.New("store unavailable")
)

// Secret is a credential value. It never prints, logs or marshals its
// value: String, GoString, LogValue, MarshalJSON and MarshalText all give
// "[redacted]".
type Secret string

// String returns "[redacted]".
func (Secret) String() string { return "[redacted]" }

// GoString returns "[redacted]".
func (Secret) GoString() string { return "[redacted]" }

// LogValue implements [slog.LogValuer] and returns "[redacted]".
func (Secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// MarshalJSON returns "[redacted]" as a JSON string, so that encoding a
// struct that holds a Secret (slog's JSON handler does) never reveals it.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"[redacted]"`), nil }

// MarshalText returns "[redacted]", for encoders that use text marshalling.
func (Secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// Reveal returns the secret's value. Call it only where the value is used.
func (s Secret) Reveal() string { return string(s) }

// Fingerprint returns a short, non-reversible identifier of the secret (the
// first 8 hex digits of its SHA-256), or "" for an empty secret. It lets
// operators tell secrets apart without seeing them.
func (s Secret) Fingerprint() string {
	if s == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:4])
}

// Algorithm is a webhook signature algorithm a SharedKey may use.
type Algorithm string

// The algorithms Twilio signs webhooks with.
const (
	HMACSHA1   Algorithm = "HMAC_SHA1"
	HMACSHA256 Algorithm = "HMAC_SHA256"
)

// SharedKey is a Twilio webhook SharedKey and the algorithms it may sign with.
type SharedKey struct {
	ID         string
	Secret     Secret
	Algorithms []Algorithm
}

// Account is a Twilio account (or subaccount) and its webhook secrets.
type Account struct {
	// SID is "AC" followed by 32 lowercase hexadecimal digits.
	SID string
	// Aliases are other unique names of the account.
	Aliases      []string
	FriendlyName string
	// AuthToken is the primary auth token. A stored account always has
	// one; it reads back empty only when it is unreadable (see Unreadable).
	AuthToken Secret
	// PreviousAuthToken is accepted until PreviousExpireTime.
	PreviousAuthToken  Secret
	PreviousExpireTime time.Time
	SharedKeys         []SharedKey
	// Suspended marks an account that is suspended at Twilio. Its webhooks
	// still verify.
	Suspended bool
	// CreateTime, UpdateTime and Version are set by the backend on Put.
	CreateTime time.Time
	UpdateTime time.Time
	// Version starts at 1 and grows by one with every change.
	Version int64
	// Unreadable names the secrets a backend could not read back (sealed
	// under a key it does not hold, or damaged), in this order:
	// "auth_token", "previous_auth_token", then "shared_key:<id>" for each
	// such shared key, or "shared_keys" when the whole list is damaged.
	// Those secrets are empty (an unreadable shared key keeps its ID); every
	// other field is filled. Backends set it on reads and ignore it on Put:
	// putting fresh secrets is how such an account is repaired.
	Unreadable []string
}

// Clone returns a deep copy of a.
func (a *Account) Clone() *Account {
	c := *a
	c.Aliases = append([]string(nil), a.Aliases...)
	c.Unreadable = append([]string(nil), a.Unreadable...)
	c.SharedKeys = make([]SharedKey, len(a.SharedKeys))
	for i, k := range a.SharedKeys {
		k.Algorithms = append([]Algorithm(nil), k.Algorithms...)
		c.SharedKeys[i] = k
	}
	if a.SharedKeys == nil {
		c.SharedKeys = nil
	}
	return &c
}

// Check reports why a cannot be stored, or nil: every backend refuses an
// account without a SID or auth token, with an empty or repeated alias, or
// with a SharedKey whose id is empty or repeated, whose secret is empty or
// whose algorithm is unknown. Backends add the limits of their own schema.
func (a *Account) Check() error {
	switch {
	case a == nil:
		return errors.New("nil account")
	case a.SID == "":
		return errors.New("empty SID")
	case a.AuthToken == "":
		return fmt.Errorf("account %s: empty auth token", a.SID)
	}
	aliases := make(map[string]bool, len(a.Aliases))
	for _, alias := range a.Aliases {
		if alias == "" {
			return fmt.Errorf("account %s: empty alias", a.SID)
		}
		if aliases[alias] {
			return fmt.Errorf("account %s: alias %q given twice", a.SID, alias)
		}
		aliases[alias] = true
	}
	ids := make(map[string]bool, len(a.SharedKeys))
	for _, k := range a.SharedKeys {
		switch {
		case k.ID == "":
			return fmt.Errorf("account %s: shared key with an empty id", a.SID)
		case ids[k.ID]:
			return fmt.Errorf("account %s: shared key id %q given twice", a.SID, k.ID)
		case k.Secret == "":
			return fmt.Errorf("account %s: shared key %s: empty secret", a.SID, k.ID)
		}
		ids[k.ID] = true
		for _, alg := range k.Algorithms {
			if alg != HMACSHA1 && alg != HMACSHA256 {
				return fmt.Errorf("account %s: shared key %s: unknown algorithm", a.SID, k.ID)
			}
		}
	}
	return nil
}
