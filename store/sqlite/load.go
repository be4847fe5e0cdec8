package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/twilioguard/twilioguard/store"
	"github.com/twilioguard/twilioguard/store/atrest"
)

// load reads the accounts matching where (a condition on accounts.sid that
// may end in ORDER BY sid and LIMIT) with their aliases and shared keys, in
// SID order, and opens their secrets. A secret that cannot be opened marks
// its account (store.Account.Unreadable) and fails nothing.
func (s *Store) load(ctx context.Context, tx *sql.Tx, where string, args ...any) ([]*store.Account, error) {
	rows, err := tx.QueryContext(ctx, `
		SELECT sid, friendly_name, auth_token, previous_auth_token,
			previous_expire_time, suspended, create_time, update_time, version
		FROM accounts WHERE `+where, args...)
	if err != nil {
		return nil, wrapErr(err)
	}
	var (
		accounts []*store.Account
		sealed   []atrest.Secrets
	)
	for rows.Next() {
		var (
			a                store.Account
			secrets          atrest.Secrets
			expire           sql.NullInt64
			created, updated int64
		)
		if err := rows.Scan(&a.SID, &a.FriendlyName, &secrets.AuthToken, &secrets.PreviousAuthToken,
			&expire, &a.Suspended, &created, &updated, &a.Version); err != nil {
			rows.Close()
			return nil, wrapErr(err)
		}
		if expire.Valid {
			a.PreviousExpireTime = time.Unix(0, expire.Int64).UTC()
		}
		a.CreateTime = time.Unix(0, created).UTC()
		a.UpdateTime = time.Unix(0, updated).UTC()
		accounts = append(accounts, &a)
		sealed = append(sealed, secrets)
	}
	if err := closeRows(rows); err != nil || len(accounts) == 0 {
		return nil, err
	}
	first, last := accounts[0].SID, accounts[len(accounts)-1].SID

	keys, err := sharedKeys(ctx, tx, first, last)
	if err != nil {
		return nil, err
	}
	bySID := make(map[string]*store.Account, len(accounts))
	for i, a := range accounts {
		bySID[a.SID] = a
		sealed[i].SharedKeys = keys[a.SID]
		s.codec.Open(a, sealed[i])
	}

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
	return accounts, nil
}
