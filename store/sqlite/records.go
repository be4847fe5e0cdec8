package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/twilioguard/twilioguard/store/atrest"
)

// Reseal seals again, with the keyring's primary key, every stored secret
// that was sealed with another key, and returns how many it rewrote. Run it
// after rotating the key; once it returns, old keys are no longer needed.
// It changes no account's version or update time. Secrets no key of the
// keyring opens are left as they are.
func (s *Store) Reseal(ctx context.Context) (int, error) {
	n, err := s.codec.Reseal(ctx, records{s}, s.pageSize)
	if err != nil {
		return n, fmt.Errorf("reseal secrets: %w", err)
	}
	return n, nil
}

// KeyIDs counts the stored sealed secrets by the id of the key that sealed
// them (seal.KeyID); damaged values count under "". A keyring that has none
// of the ids ([seal.Keyring.Has]) cannot read the store: it is the wrong key.
func (s *Store) KeyIDs(ctx context.Context) (map[string]int, error) {
	ids, err := atrest.KeyIDs(ctx, records{s}, s.pageSize)
	if err != nil {
		return nil, fmt.Errorf("count secret key ids: %w", err)
	}
	return ids, nil
}

// records is the [atrest.DB] of a store: reads on the reader, writes on the
// writer, whose immediate transactions hold SQLite's write lock.
type records struct{ s *Store }

func (r records) View(ctx context.Context, fn func(atrest.Tx) error) error {
	tx, err := r.s.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return wrapErr(err)
	}
	defer tx.Rollback()
	return fn(recordsTx{tx})
}

func (r records) Update(ctx context.Context, fn func(atrest.Tx) error) error {
	tx, err := r.s.writer.BeginTx(ctx, nil)
	if err != nil {
		return wrapErr(err)
	}
	defer tx.Rollback()
	if err := fn(recordsTx{tx}); err != nil {
		return err
	}
	return wrapErr(tx.Commit())
}

type recordsTx struct{ tx *sql.Tx }

func (t recordsTx) Records(ctx context.Context, after string, limit int) ([]atrest.Record, error) {
	rows, err := t.tx.QueryContext(ctx,
		"SELECT sid, auth_token, previous_auth_token FROM accounts WHERE sid > ? ORDER BY sid LIMIT ?", after, limit)
	if err != nil {
		return nil, wrapErr(err)
	}
	var page []atrest.Record
	for rows.Next() {
		var r atrest.Record
		if err := rows.Scan(&r.SID, &r.AuthToken, &r.PreviousAuthToken); err != nil {
			rows.Close()
			return nil, wrapErr(err)
		}
		page = append(page, r)
	}
	if err := closeRows(rows); err != nil || len(page) == 0 {
		return nil, err
	}
	keys, err := sharedKeys(ctx, t.tx, page[0].SID, page[len(page)-1].SID)
	if err != nil {
		return nil, err
	}
	for i := range page {
		page[i].SharedKeys = keys[page[i].SID]
	}
	return page, nil
}

func (t recordsTx) Write(ctx context.Context, r atrest.Record) error {
	if _, err := t.tx.ExecContext(ctx, "UPDATE accounts SET auth_token = ?, previous_auth_token = ? WHERE sid = ?",
		r.AuthToken, r.PreviousAuthToken, r.SID); err != nil {
		return wrapErr(err)
	}
	for _, k := range r.SharedKeys {
		if _, err := t.tx.ExecContext(ctx, "UPDATE shared_keys SET secret = ? WHERE sid = ? AND key_id = ?",
			k.Secret, r.SID, k.ID); err != nil {
			return wrapErr(err)
		}
	}
	return nil
}

// sharedKeys reads the sealed shared keys of the accounts with SIDs from
// first to last, by SID, each account's in order.
func sharedKeys(ctx context.Context, tx *sql.Tx, first, last string) (map[string][]atrest.SharedKey, error) {
	rows, err := tx.QueryContext(ctx, `
		SELECT sid, key_id, secret, algorithms FROM shared_keys
		WHERE sid >= ? AND sid <= ? ORDER BY sid, position`, first, last)
	if err != nil {
		return nil, wrapErr(err)
	}
	keys := map[string][]atrest.SharedKey{}
	for rows.Next() {
		var (
			sid, algorithms string
			k               atrest.SharedKey
		)
		if err := rows.Scan(&sid, &k.ID, &k.Secret, &algorithms); err != nil {
			rows.Close()
			return nil, wrapErr(err)
		}
		k.Algorithms = splitAlgorithms(algorithms)
		keys[sid] = append(keys[sid], k)
	}
	return keys, closeRows(rows)
}

// closeRows closes rows and reports any error met while iterating them.
func closeRows(rows *sql.Rows) error {
	if err := rows.Close(); err != nil {
		return wrapErr(err)
	}
	return wrapErr(rows.Err())
}
