package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/twilioguard/twilioguard/store"
)

// load reads the accounts matching where (a condition on accounts.sid that
// may end in ORDER BY sid and LIMIT) with their aliases and shared keys, in
// SID order, and opens their secrets.
func (s *Store) load(ctx context.Context, tx *sql.Tx, where string, args ...any) ([]*store.Account, error) {
	rows, err := tx.QueryContext(ctx, `
		SELECT sid, friendly_name, auth_token, previous_auth_token,
			previous_expire_time, create_time, update_time, version
		FROM accounts WHERE `+where, args...)
	if err != nil {
		return nil, wrapErr(err)
	}
	type sealedAccount struct {
		authToken, previousAuthToken string
	}
	var (
		accounts []*store.Account
		sealed   []sealedAccount
	)
	for rows.Next() {
		var (
			a                store.Account
			sa               sealedAccount
			expire           sql.NullInt64
			created, updated int64
		)
		if err := rows.Scan(&a.SID, &a.FriendlyName, &sa.authToken, &sa.previousAuthToken,
			&expire, &created, &updated, &a.Version); err != nil {
			rows.Close()
			return nil, wrapErr(err)
		}
		if expire.Valid {
			a.PreviousExpireTime = time.Unix(0, expire.Int64).UTC()
		}
		a.CreateTime = time.Unix(0, created).UTC()
		a.UpdateTime = time.Unix(0, updated).UTC()
		accounts = append(accounts, &a)
		sealed = append(sealed, sa)
	}
	if err := closeRows(rows); err != nil {
		return nil, err
	}
	if len(accounts) == 0 {
		return nil, nil
	}

	bySID := make(map[string]*store.Account, len(accounts))
	for i, a := range accounts {
		bySID[a.SID] = a
		if a.AuthToken, err = s.open(sealed[i].authToken, a.SID, fieldAuthToken); err != nil {
			return nil, err
		}
		if sealed[i].previousAuthToken != "" {
			if a.PreviousAuthToken, err = s.open(sealed[i].previousAuthToken, a.SID, fieldPreviousAuthToken); err != nil {
				return nil, err
			}
		}
	}
	first, last := accounts[0].SID, accounts[len(accounts)-1].SID

	rows, err = tx.QueryContext(ctx, `
		SELECT sid, alias FROM account_aliases
		WHERE sid >= ? AND sid <= ? ORDER BY sid, position`, first, last)
	if err != nil {
		return nil, wrapErr(err)
	}
	for rows.Next() {
		var sid, alias string
		if err := rows.Scan(&sid, &alias); err != nil {
			rows.Close()
			return nil, wrapErr(err)
		}
		if a := bySID[sid]; a != nil {
			a.Aliases = append(a.Aliases, alias)
		}
	}
	if err := closeRows(rows); err != nil {
		return nil, err
	}

	rows, err = tx.QueryContext(ctx, `
		SELECT sid, key_id, secret, algorithms FROM shared_keys
		WHERE sid >= ? AND sid <= ? ORDER BY sid, position`, first, last)
	if err != nil {
		return nil, wrapErr(err)
	}
	type sealedKey struct {
		sid, id, secret, algorithms string
	}
	var keys []sealedKey
	for rows.Next() {
		var k sealedKey
		if err := rows.Scan(&k.sid, &k.id, &k.secret, &k.algorithms); err != nil {
			rows.Close()
			return nil, wrapErr(err)
		}
		keys = append(keys, k)
	}
	if err := closeRows(rows); err != nil {
		return nil, err
	}
	for _, k := range keys {
		a := bySID[k.sid]
		if a == nil {
			continue
		}
		secret, err := s.open(k.secret, k.sid, sharedKeyField(k.id))
		if err != nil {
			return nil, fmt.Errorf("shared key %q: %w", k.id, err)
		}
		a.SharedKeys = append(a.SharedKeys, store.SharedKey{ID: k.id, Secret: secret, Algorithms: splitAlgorithms(k.algorithms)})
	}
	return accounts, nil
}
