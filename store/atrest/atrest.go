// Package atrest is the form in which every store backend keeps an account's
// secrets: each one sealed by store/seal and bound to its account and field,
// so that a sealed value copied to another account or field does not open.
//
// A secret of account sid in field is sealed with the additional data
//
//	"twilioguard account\x00" + sid + "\x00" + field
//
// where field is "auth_token", "previous_auth_token" or
// "shared_key\x00" + the key's id. Databases written with this format must
// keep opening: never change it, add a new one beside it.
//
// [Codec.Open] never fails: a secret it cannot open is left empty and named
// in [store.Account.Unreadable], so one damaged record affects only its own
// account. [Codec.Reseal] and [KeyIDs] walk every stored record a page at a
// time through the small [DB] interface each backend implements.
package atrest

import (
	"context"
	"fmt"

	"github.com/twilioguard/twilioguard/store"
	"github.com/twilioguard/twilioguard/store/seal"
)

// Names of the secrets in [store.Account.Unreadable].
const (
	unreadableAuthToken         = "auth_token"
	unreadablePreviousAuthToken = "previous_auth_token"
	unreadableSharedKeys        = "shared_keys"
	unreadableSharedKeyPrefix   = "shared_key:"
)

// Field names bound into each sealed value.
const (
	fieldAuthToken         = "auth_token"
	fieldPreviousAuthToken = "previous_auth_token"
)

func sharedKeyField(id string) string { return "shared_key\x00" + id }

// aad is the additional data a secret of account sid in field is sealed with.
func aad(sid, field string) string { return "twilioguard account\x00" + sid + "\x00" + field }

// Secrets is the sealed form of one account's secrets.
type Secrets struct {
	// AuthToken is the sealed auth token.
	AuthToken string
	// PreviousAuthToken is the sealed previous auth token, or "" when there
	// is none.
	PreviousAuthToken string
	// SharedKeys are the account's shared keys, in order, with sealed
	// secrets.
	SharedKeys []SharedKey
	// SharedKeysDamaged is set by a backend that keeps the shared keys as
	// one value and could not decode it: the keys are then all unreadable,
	// and a backend's [Tx.Write] must leave the stored value as it is.
	SharedKeysDamaged bool
}

// SharedKey is a shared key with its secret sealed. Its JSON form is the one
// store/postgres keeps.
type SharedKey struct {
	ID         string            `json:"id"`
	Secret     string            `json:"secret"` // sealed
	Algorithms []store.Algorithm `json:"algorithms"`
}

// Record is the sealed secrets of one stored account.
type Record struct {
	SID string
	Secrets
}

// Codec seals and opens the secrets of accounts with a keyring. It is safe
// for concurrent use.
type Codec struct {
	keys *seal.Keyring
}

// New returns a codec that seals with the primary key of keys and opens with
// any of its keys.
func New(keys *seal.Keyring) *Codec { return &Codec{keys: keys} }

// Seal returns the secrets of a sealed with the primary key. The error
// names the secret, never its value.
func (c *Codec) Seal(a *store.Account) (Secrets, error) {
	var out Secrets
	var err error
	if out.AuthToken, err = c.keys.Seal(a.AuthToken.Reveal(), aad(a.SID, fieldAuthToken)); err != nil {
		return Secrets{}, fmt.Errorf("seal auth token: %w", err)
	}
	if a.PreviousAuthToken != "" {
		if out.PreviousAuthToken, err = c.keys.Seal(a.PreviousAuthToken.Reveal(), aad(a.SID, fieldPreviousAuthToken)); err != nil {
			return Secrets{}, fmt.Errorf("seal previous auth token: %w", err)
		}
	}
	out.SharedKeys = make([]SharedKey, len(a.SharedKeys))
	for i, k := range a.SharedKeys {
		sealed, err := c.keys.Seal(k.Secret.Reveal(), aad(a.SID, sharedKeyField(k.ID)))
		if err != nil {
			return Secrets{}, fmt.Errorf("seal shared key %q: %w", k.ID, err)
		}
		out.SharedKeys[i] = SharedKey{ID: k.ID, Secret: sealed, Algorithms: k.Algorithms}
	}
	return out, nil
}

// Open opens sealed, the stored secrets of account a (whose SID is set), into
// a's AuthToken, PreviousAuthToken and SharedKeys. What it cannot open (sealed
// under a key the keyring does not hold, tampered, bound to another account
// or field, not a sealed value, or a shared key with an unknown algorithm) it
// leaves empty and names in a.Unreadable; an unreadable shared key keeps only
// its ID.
func (c *Codec) Open(a *store.Account, sealed Secrets) {
	a.AuthToken, a.PreviousAuthToken, a.SharedKeys, a.Unreadable = "", "", nil, nil
	var ok bool
	if a.AuthToken, ok = c.open(sealed.AuthToken, a.SID, fieldAuthToken); !ok {
		a.Unreadable = append(a.Unreadable, unreadableAuthToken)
	}
	if sealed.PreviousAuthToken != "" {
		if a.PreviousAuthToken, ok = c.open(sealed.PreviousAuthToken, a.SID, fieldPreviousAuthToken); !ok {
			a.Unreadable = append(a.Unreadable, unreadablePreviousAuthToken)
		}
	}
	if sealed.SharedKeysDamaged {
		a.Unreadable = append(a.Unreadable, unreadableSharedKeys)
		return
	}
	for _, k := range sealed.SharedKeys {
		key := store.SharedKey{ID: k.ID}
		secret, ok := c.open(k.Secret, a.SID, sharedKeyField(k.ID))
		if ok && knownAlgorithms(k.Algorithms) {
			key.Secret = secret
			key.Algorithms = append([]store.Algorithm(nil), k.Algorithms...)
		} else {
			a.Unreadable = append(a.Unreadable, unreadableSharedKeyPrefix+k.ID)
		}
		a.SharedKeys = append(a.SharedKeys, key)
	}
}

// open opens one sealed secret and reports whether it could.
func (c *Codec) open(sealed, sid, field string) (store.Secret, bool) {
	plain, err := c.keys.Open(sealed, aad(sid, field))
	if err != nil {
		return "", false
	}
	return store.Secret(plain), true
}

func knownAlgorithms(algs []store.Algorithm) bool {
	for _, alg := range algs {
		if alg != store.HMACSHA1 && alg != store.HMACSHA256 {
			return false
		}
	}
	return true
}

// reseal seals again with the primary key every secret of r that another
// key sealed, in place, and returns how many it rewrote. A secret that
// cannot be opened is left as it is.
func (c *Codec) reseal(r *Record) int {
	n := 0
	again := func(sealed *string, field string) {
		if *sealed == "" || !c.keys.NeedsReseal(*sealed) {
			return
		}
		plain, err := c.keys.Open(*sealed, aad(r.SID, field))
		if err != nil {
			return
		}
		out, err := c.keys.Seal(plain, aad(r.SID, field))
		if err != nil {
			return
		}
		*sealed = out
		n++
	}
	again(&r.AuthToken, fieldAuthToken)
	again(&r.PreviousAuthToken, fieldPreviousAuthToken)
	for i := range r.SharedKeys {
		again(&r.SharedKeys[i].Secret, sharedKeyField(r.SharedKeys[i].ID))
	}
	return n
}

// DB is how [Codec.Reseal] and [KeyIDs] reach a backend's records.
type DB interface {
	// View runs fn in a read-only transaction.
	View(ctx context.Context, fn func(Tx) error) error
	// Update runs fn in a read-write transaction, committed when fn
	// returns nil, in which the records Records returns stay locked
	// against other writers until the end.
	Update(ctx context.Context, fn func(Tx) error) error
}

// Tx is one transaction of a [DB].
type Tx interface {
	// Records returns the records of up to limit accounts whose SID sorts
	// after after, in SID order.
	Records(ctx context.Context, after string, limit int) ([]Record, error)
	// Write stores the sealed secrets of account r.SID and changes nothing
	// else about it (not its version, not its update time).
	Write(ctx context.Context, r Record) error
}

// Reseal seals again, with the primary key, every stored secret that
// another key sealed, pageSize accounts per transaction, and returns how
// many it rewrote (in the transactions that committed, also on error). Run
// it after rotating the key; once it returns, the old keys open nothing the
// primary key does not. Secrets that cannot be opened are left as they are:
// they were unreadable before and stay so.
func (c *Codec) Reseal(ctx context.Context, db DB, pageSize int) (int, error) {
	return pages(ctx, db.Update, pageSize, func(ctx context.Context, tx Tx, page []Record) (int, error) {
		total := 0
		for _, r := range page {
			n := c.reseal(&r)
			if n == 0 {
				continue
			}
			if err := tx.Write(ctx, r); err != nil {
				return 0, err
			}
			total += n
		}
		return total, nil
	})
}

// KeyIDs counts the sealed values of every stored account by the id of the
// key each names ([seal.KeyID]), reading pageSize accounts per transaction.
// A value that names no key (damaged) counts under "", and so does a
// damaged list of shared keys, once. Comparing the ids with the keys of a
// keyring ([seal.Keyring.Has]) tells whether the keyring can read the store.
func KeyIDs(ctx context.Context, db DB, pageSize int) (map[string]int, error) {
	counts := map[string]int{}
	count := func(sealed string) {
		id, _ := seal.SealedBy(sealed) // "" when malformed
		counts[id]++
	}
	_, err := pages(ctx, db.View, pageSize, func(_ context.Context, _ Tx, page []Record) (int, error) {
		for _, r := range page {
			count(r.AuthToken)
			if r.PreviousAuthToken != "" {
				count(r.PreviousAuthToken)
			}
			if r.SharedKeysDamaged {
				counts[""]++
			}
			for _, k := range r.SharedKeys {
				count(k.Secret)
			}
		}
		return 0, nil
	})
	if err != nil {
		return nil, err
	}
	return counts, nil
}

// pages calls fn with every page of up to pageSize records, in SID order,
// each in its own transaction begun by begin, and returns the sum of what fn
// returned for the pages whose transaction committed.
func pages(ctx context.Context, begin func(context.Context, func(Tx) error) error, pageSize int,
	fn func(context.Context, Tx, []Record) (int, error)) (int, error) {
	if pageSize <= 0 {
		return 0, fmt.Errorf("page size %d, want > 0", pageSize)
	}
	total, after := 0, ""
	for {
		var (
			page []Record
			n    int
		)
		err := begin(ctx, func(tx Tx) error {
			var err error
			if page, err = tx.Records(ctx, after, pageSize); err != nil {
				return err
			}
			n, err = fn(ctx, tx, page)
			return err
		})
		if err != nil {
			return total, err
		}
		total += n
		if len(page) < pageSize {
			return total, nil
		}
		after = page[len(page)-1].SID
	}
}
