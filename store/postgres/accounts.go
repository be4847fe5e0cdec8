package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/twilioguard/twilioguard/store"
	"github.com/twilioguard/twilioguard/store/atrest"
)

// columns lists the accounts columns in the order each reads them.
const columns = `sid, aliases, friendly_name, auth_token, previous_auth_token,
	previous_expire_time, shared_keys, suspended, create_time, update_time, version`

// Get returns the account whose SID or alias is key, or an error wrapping
// [store.ErrNotFound]. Secrets that cannot be read are named in
// store.Account.Unreadable; they fail nothing.
func (s *Store) Get(ctx context.Context, key string) (*store.Account, error) {
	if key == "" {
		return nil, fmt.Errorf("get account: empty SID or alias: %w", store.ErrNotFound)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+columns+` FROM accounts
		WHERE sid = $1 OR sid = (SELECT sid FROM account_aliases WHERE alias = $1)
		ORDER BY sid = $1 DESC LIMIT 1`, key)
	if err != nil {
		return nil, wrap("get account", err)
	}
	var got *store.Account
	err = s.each(rows, func(a *store.Account) error { got = a; return nil })
	if err != nil {
		return nil, wrap("get account", err)
	}
	if got == nil {
		return nil, fmt.Errorf("get account %q: %w", key, store.ErrNotFound)
	}
	return got, nil
}

// List returns up to limit accounts whose SIDs sort after afterSID, in SID
// order. A limit below 1 is an error.
func (s *Store) List(ctx context.Context, afterSID string, limit int) ([]*store.Account, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("list accounts: limit %d, want > 0", limit)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+columns+` FROM accounts
		WHERE sid > $1 ORDER BY sid LIMIT $2`, afterSID, limit)
	if err != nil {
		return nil, wrap("list accounts", err)
	}
	var list []*store.Account
	if err := s.each(rows, func(a *store.Account) error { list = append(list, a); return nil }); err != nil {
		return nil, wrap("list accounts", err)
	}
	return list, nil
}

// All calls fn for every account, in SID order, streaming them from one
// query. It stops at and returns the first error fn returns.
func (s *Store) All(ctx context.Context, fn func(*store.Account) error) error {
	rows, err := s.pool.Query(ctx, `SELECT `+columns+` FROM accounts ORDER BY sid`)
	if err != nil {
		return wrap("read all accounts", err)
	}
	var fnErr error
	err = s.each(rows, func(a *store.Account) error {
		fnErr = fn(a)
		return fnErr
	})
	if fnErr != nil {
		return fnErr
	}
	return wrap("read all accounts", err)
}

// Put stores a, creating the account or replacing it, and returns it as
// stored: with CreateTime, UpdateTime and Version set by the store (the
// values in a, and a.Unreadable, are ignored). With expectedVersion 0 the
// write is unconditional; otherwise the account must exist
// ([store.ErrNotFound]) with that version ([store.ErrVersionMismatch]). An
// alias used by another account (as alias or SID), or a SID that is another
// account's alias, fails with [store.ErrAliasTaken].
func (s *Store) Put(ctx context.Context, a *store.Account, expectedVersion int64) (*store.Account, error) {
	if err := a.Check(); err != nil {
		return nil, fmt.Errorf("put account: %w", err)
	}
	if expectedVersion < 0 {
		return nil, fmt.Errorf("put account %s: negative expected version %d", a.SID, expectedVersion)
	}
	out := a.Clone()
	out.Unreadable = nil
	if out.Aliases == nil {
		out.Aliases = []string{}
	}
	sealed, err := s.codec.Seal(a)
	if err != nil {
		return nil, fmt.Errorf("put account %s: %w", a.SID, err)
	}
	keys, err := json.Marshal(sealed.SharedKeys)
	if err != nil {
		return nil, fmt.Errorf("put account %s: encode shared keys: %w", a.SID, err)
	}
	var prevExpire pgtype.Timestamptz
	if !a.PreviousExpireTime.IsZero() {
		out.PreviousExpireTime = a.PreviousExpireTime.UTC().Truncate(time.Microsecond)
		prevExpire = pgtype.Timestamptz{Time: out.PreviousExpireTime, Valid: true}
	}
	now := time.Now().UTC().Truncate(time.Microsecond)

	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		args := []any{a.SID, out.Aliases, a.FriendlyName, sealed.AuthToken, sealed.PreviousAuthToken,
			prevExpire, keys, a.Suspended, now}
		var row pgx.Row
		if expectedVersion == 0 {
			row = tx.QueryRow(ctx, `INSERT INTO accounts AS a (sid, aliases, friendly_name,
					auth_token, previous_auth_token, previous_expire_time, shared_keys,
					suspended, create_time, update_time, version)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, 1)
				ON CONFLICT (sid) DO UPDATE SET aliases = EXCLUDED.aliases,
					friendly_name = EXCLUDED.friendly_name, auth_token = EXCLUDED.auth_token,
					previous_auth_token = EXCLUDED.previous_auth_token,
					previous_expire_time = EXCLUDED.previous_expire_time,
					shared_keys = EXCLUDED.shared_keys, suspended = EXCLUDED.suspended,
					update_time = EXCLUDED.update_time, version = a.version + 1
				RETURNING create_time, version`, args...)
		} else {
			row = tx.QueryRow(ctx, `UPDATE accounts SET aliases = $2, friendly_name = $3,
					auth_token = $4, previous_auth_token = $5, previous_expire_time = $6,
					shared_keys = $7, suspended = $8, update_time = $9, version = version + 1
				WHERE sid = $1 AND version = $10
				RETURNING create_time, version`, append(args, expectedVersion)...)
		}
		err := row.Scan(&out.CreateTime, &out.Version)
		if errors.Is(err, pgx.ErrNoRows) {
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM accounts WHERE sid = $1)`, a.SID).Scan(&exists); err != nil {
				return err
			}
			if exists {
				return fmt.Errorf("put account %s: want version %d: %w", a.SID, expectedVersion, store.ErrVersionMismatch)
			}
			return fmt.Errorf("put account %s: %w", a.SID, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		return putAliases(ctx, tx, a.SID, out.Aliases)
	})
	if err != nil {
		if isStoreErr(err) {
			return nil, err
		}
		return nil, wrap("put account "+a.SID, err)
	}
	out.CreateTime = out.CreateTime.UTC()
	out.UpdateTime = now
	return out, nil
}

// putAliases makes aliases the aliases of sid, failing with
// [store.ErrAliasTaken] when one names another account.
func putAliases(ctx context.Context, tx pgx.Tx, sid string, aliases []string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM account_aliases WHERE sid = $1`, sid); err != nil {
		return err
	}
	// A SID may not be another account's alias, nor an alias another's SID.
	var clash string
	err := tx.QueryRow(ctx, `SELECT alias FROM account_aliases WHERE alias = $1
		UNION ALL SELECT sid FROM accounts WHERE sid = ANY ($2) AND sid <> $1
		LIMIT 1`, sid, aliases).Scan(&clash)
	if err == nil {
		return fmt.Errorf("put account %s: %q: %w", sid, clash, store.ErrAliasTaken)
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	if len(aliases) == 0 {
		return nil
	}
	_, err = tx.Exec(ctx, `INSERT INTO account_aliases (alias, sid)
		SELECT unnest($2::text[]), $1`, sid, aliases)
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == "23505" { // unique_violation
		return fmt.Errorf("put account %s: %w", sid, store.ErrAliasTaken)
	}
	return err
}

// Delete removes the account with this SID and its aliases. With
// expectedVersion 0 the delete is unconditional; otherwise the stored
// version must match ([store.ErrVersionMismatch]). A missing account fails
// with [store.ErrNotFound].
func (s *Store) Delete(ctx context.Context, sid string, expectedVersion int64) error {
	if expectedVersion < 0 {
		return fmt.Errorf("delete account %s: negative expected version %d", sid, expectedVersion)
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM accounts WHERE sid = $1 AND ($2 = 0 OR version = $2)`,
		sid, expectedVersion)
	if err != nil {
		return wrap("delete account "+sid, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM accounts WHERE sid = $1)`, sid).Scan(&exists); err != nil {
		return wrap("delete account "+sid, err)
	}
	if exists {
		return fmt.Errorf("delete account %s: want version %d: %w", sid, expectedVersion, store.ErrVersionMismatch)
	}
	return fmt.Errorf("delete account %s: %w", sid, store.ErrNotFound)
}

// isStoreErr reports whether err is one of the store's own sentinel errors,
// already worded for the caller.
func isStoreErr(err error) bool {
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrVersionMismatch) ||
		errors.Is(err, store.ErrAliasTaken)
}

// each scans every row into an account, opens its secrets and calls fn,
// closing rows. A secret that cannot be opened marks its account
// (store.Account.Unreadable) and fails nothing.
func (s *Store) each(rows pgx.Rows, fn func(*store.Account) error) error {
	defer rows.Close()
	for rows.Next() {
		var (
			a          store.Account
			sealed     atrest.Secrets
			prevExpire pgtype.Timestamptz
			keys       []byte
		)
		if err := rows.Scan(&a.SID, &a.Aliases, &a.FriendlyName, &sealed.AuthToken, &sealed.PreviousAuthToken,
			&prevExpire, &keys, &a.Suspended, &a.CreateTime, &a.UpdateTime, &a.Version); err != nil {
			return err
		}
		sealed.SharedKeys, sealed.SharedKeysDamaged = decodeKeys(keys)
		s.codec.Open(&a, sealed)
		if prevExpire.Valid {
			a.PreviousExpireTime = prevExpire.Time.UTC()
		}
		a.CreateTime = a.CreateTime.UTC()
		a.UpdateTime = a.UpdateTime.UTC()
		if err := fn(&a); err != nil {
			return err
		}
	}
	return rows.Err()
}

// decodeKeys decodes the shared_keys column, a JSON array of
// [atrest.SharedKey], and reports whether it is damaged.
func decodeKeys(b []byte) (keys []atrest.SharedKey, damaged bool) {
	if err := json.Unmarshal(b, &keys); err != nil {
		return nil, true
	}
	return keys, false
}
