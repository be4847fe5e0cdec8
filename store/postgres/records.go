package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/twilioguard/twilioguard/store/atrest"
)

// recordsPageSize is how many accounts one transaction of Reseal or KeyIDs
// reads.
const recordsPageSize = 500

// Reseal seals again, with the keyring's primary key, every stored secret
// that was sealed with another key, and returns how many it rewrote. Run it
// after rotating the key; once it returns, old keys are no longer needed.
// It changes no account's version or update time. Secrets no key of the
// keyring opens are left as they are.
func (s *Store) Reseal(ctx context.Context) (int, error) {
	n, err := s.codec.Reseal(ctx, records{s}, recordsPageSize)
	return n, wrap("reseal secrets", err)
}

// KeyIDs counts the stored sealed secrets by the id of the key that sealed
// them (seal.KeyID); damaged values count under "". A keyring that has none
// of the ids ([seal.Keyring.Has]) cannot read the store: it is the wrong key.
func (s *Store) KeyIDs(ctx context.Context) (map[string]int, error) {
	ids, err := atrest.KeyIDs(ctx, records{s}, recordsPageSize)
	if err != nil {
		return nil, wrap("count secret key ids", err)
	}
	return ids, nil
}

// records is the [atrest.DB] of a store.
type records struct{ s *Store }

func (r records) View(ctx context.Context, fn func(atrest.Tx) error) error {
	return pgx.BeginTxFunc(ctx, r.s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		return fn(recordsTx{tx: tx})
	})
}

func (r records) Update(ctx context.Context, fn func(atrest.Tx) error) error {
	return pgx.BeginFunc(ctx, r.s.pool, func(tx pgx.Tx) error {
		return fn(recordsTx{tx: tx, forUpdate: true})
	})
}

type recordsTx struct {
	tx pgx.Tx
	// forUpdate locks the rows read until the transaction ends, so that no
	// Put lands between reading a secret and writing it back resealed.
	forUpdate bool
}

func (t recordsTx) Records(ctx context.Context, after string, limit int) ([]atrest.Record, error) {
	q := `SELECT sid, auth_token, previous_auth_token, shared_keys
		FROM accounts WHERE sid > $1 ORDER BY sid LIMIT $2`
	if t.forUpdate {
		q += " FOR UPDATE"
	}
	rows, err := t.tx.Query(ctx, q, after, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (atrest.Record, error) {
		var (
			r    atrest.Record
			keys []byte
		)
		err := row.Scan(&r.SID, &r.AuthToken, &r.PreviousAuthToken, &keys)
		r.SharedKeys, r.SharedKeysDamaged = decodeKeys(keys)
		return r, err
	})
}

func (t recordsTx) Write(ctx context.Context, r atrest.Record) error {
	if r.SharedKeysDamaged {
		// Keep the damaged list for whoever repairs it.
		_, err := t.tx.Exec(ctx, `UPDATE accounts SET auth_token = $2, previous_auth_token = $3
			WHERE sid = $1`, r.SID, r.AuthToken, r.PreviousAuthToken)
		return err
	}
	keys, err := json.Marshal(r.SharedKeys)
	if err != nil {
		return fmt.Errorf("account %s: encode shared keys: %w", r.SID, err)
	}
	_, err = t.tx.Exec(ctx, `UPDATE accounts SET auth_token = $2, previous_auth_token = $3,
		shared_keys = $4 WHERE sid = $1`, r.SID, r.AuthToken, r.PreviousAuthToken, keys)
	return err
}
