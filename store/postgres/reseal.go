package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// resealPageSize is how many accounts one Reseal transaction rewrites.
const resealPageSize = 500

// Reseal seals again, with the keyring's primary key, every stored secret
// that was sealed with another key, and returns how many it rewrote. Run it
// after rotating the key; once it returns, old keys are no longer needed.
// It changes no account's version or update time.
func (s *Store) Reseal(ctx context.Context) (int, error) {
	total, after := 0, ""
	for {
		n, last, err := s.resealPage(ctx, after)
		total += n
		if err != nil {
			return total, wrap("reseal secrets", err)
		}
		if last == "" {
			return total, nil
		}
		after = last
	}
}

// resealPage reseals the secrets of up to resealPageSize accounts after the
// SID after, in one transaction. It returns how many secrets it rewrote and
// the last SID it looked at ("" when there were none).
func (s *Store) resealPage(ctx context.Context, after string) (int, string, error) {
	type row struct {
		sid, authToken, prevToken string
		keys                      []byte
	}
	n, last := 0, ""
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		n, last = 0, ""
		rows, err := tx.Query(ctx, `SELECT sid, auth_token, previous_auth_token, shared_keys
			FROM accounts WHERE sid > $1 ORDER BY sid LIMIT $2 FOR UPDATE`, after, resealPageSize)
		if err != nil {
			return err
		}
		page, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			err := r.Scan(&x.sid, &x.authToken, &x.prevToken, &x.keys)
			return x, err
		})
		if err != nil {
			return err
		}
		reseal := func(sealed, sid, field string) (string, bool, error) {
			if sealed == "" || !s.keys.NeedsReseal(sealed) {
				return sealed, false, nil
			}
			plain, err := s.keys.Open(sealed, aad(sid, field))
			if err != nil {
				return "", false, fmt.Errorf("account %s: %w", sid, err)
			}
			out, err := s.keys.Seal(plain, aad(sid, field))
			if err != nil {
				return "", false, fmt.Errorf("account %s: %w", sid, err)
			}
			n++
			return out, true, nil
		}
		for _, r := range page {
			last = r.sid
			tok, c1, err := reseal(r.authToken, r.sid, fieldAuthToken)
			if err != nil {
				return err
			}
			prev, c2, err := reseal(r.prevToken, r.sid, fieldPreviousAuthToken)
			if err != nil {
				return err
			}
			var keys []sharedKeyJSON
			if err := json.Unmarshal(r.keys, &keys); err != nil {
				return fmt.Errorf("account %s: decode shared keys: %w", r.sid, err)
			}
			c3 := false
			for i, k := range keys {
				secret, c, err := reseal(k.Secret, r.sid, sharedKeyField(k.ID))
				if err != nil {
					return fmt.Errorf("shared key %q: %w", k.ID, err)
				}
				keys[i].Secret, c3 = secret, c3 || c
			}
			if !c1 && !c2 && !c3 {
				continue
			}
			encoded, err := json.Marshal(keys)
			if err != nil {
				return fmt.Errorf("account %s: encode shared keys: %w", r.sid, err)
			}
			if _, err := tx.Exec(ctx, `UPDATE accounts SET auth_token = $2, previous_auth_token = $3,
				shared_keys = $4 WHERE sid = $1`, r.sid, tok, prev, encoded); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, "", err
	}
	return n, last, nil
}
