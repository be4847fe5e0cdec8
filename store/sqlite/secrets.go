package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/twilioguard/twilioguard/store"
)

// Field names bound into each sealed value, so that a sealed value copied to
// another account or column does not open.
const (
	fieldAuthToken         = "auth_token"
	fieldPreviousAuthToken = "previous_auth_token"
)

func sharedKeyField(id string) string { return "shared_key\x00" + id }

// aad is the additional data a secret of account sid in field is sealed with.
func aad(sid, field string) string { return "twilioguard account\x00" + sid + "\x00" + field }

// sealedSecrets holds the sealed secrets of one account.
type sealedSecrets struct {
	authToken         string
	previousAuthToken string // "" when there is none
	sharedKeys        []string
}

// sealAccount seals every secret of a with the primary key.
func (s *Store) sealAccount(a *store.Account) (sealedSecrets, error) {
	var out sealedSecrets
	var err error
	if out.authToken, err = s.keys.Seal(a.AuthToken.Reveal(), aad(a.SID, fieldAuthToken)); err != nil {
		return out, fmt.Errorf("seal auth token: %w", err)
	}
	if a.PreviousAuthToken != "" {
		if out.previousAuthToken, err = s.keys.Seal(a.PreviousAuthToken.Reveal(), aad(a.SID, fieldPreviousAuthToken)); err != nil {
			return out, fmt.Errorf("seal previous auth token: %w", err)
		}
	}
	out.sharedKeys = make([]string, len(a.SharedKeys))
	for i, k := range a.SharedKeys {
		if out.sharedKeys[i], err = s.keys.Seal(k.Secret.Reveal(), aad(a.SID, sharedKeyField(k.ID))); err != nil {
			return out, fmt.Errorf("seal shared key %q: %w", k.ID, err)
		}
	}
	return out, nil
}

// open opens a secret of account sid in field.
func (s *Store) open(sealed, sid, field string) (store.Secret, error) {
	plain, err := s.keys.Open(sealed, aad(sid, field))
	if err != nil {
		return "", fmt.Errorf("account %s: %w", sid, err)
	}
	return store.Secret(plain), nil
}

// Reseal seals again, with the keyring's primary key, every stored secret
// that was sealed with another key, and returns how many it rewrote. Run it
// after rotating the key; once it returns, old keys are no longer needed.
// It changes no account's version or update time.
func (s *Store) Reseal(ctx context.Context) (int, error) {
	total := 0
	after := ""
	for {
		n, last, err := s.resealPage(ctx, after)
		if err != nil {
			return total, fmt.Errorf("reseal secrets: %w", err)
		}
		total += n
		if last == "" {
			return total, nil
		}
		after = last
	}
}

// resealPage reseals the secrets of up to pageSize accounts after the SID
// after, in one transaction. It returns how many secrets it rewrote and the
// last SID it looked at ("" when there were none).
func (s *Store) resealPage(ctx context.Context, after string) (int, string, error) {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return 0, "", wrapErr(err)
	}
	defer tx.Rollback()

	type row struct{ sid, authToken, previousAuthToken string }
	var accounts []row
	rows, err := tx.QueryContext(ctx,
		"SELECT sid, auth_token, previous_auth_token FROM accounts WHERE sid > ? ORDER BY sid LIMIT ?", after, s.pageSize)
	if err != nil {
		return 0, "", wrapErr(err)
	}
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.sid, &r.authToken, &r.previousAuthToken); err != nil {
			rows.Close()
			return 0, "", wrapErr(err)
		}
		accounts = append(accounts, r)
	}
	if err := closeRows(rows); err != nil {
		return 0, "", err
	}
	if len(accounts) == 0 {
		return 0, "", nil
	}
	first, last := accounts[0].sid, accounts[len(accounts)-1].sid

	n := 0
	reseal := func(sealed, sid, field string) (string, bool, error) {
		if sealed == "" || !s.keys.NeedsReseal(sealed) {
			return sealed, false, nil
		}
		plain, err := s.open(sealed, sid, field)
		if err != nil {
			return "", false, err
		}
		out, err := s.keys.Seal(plain.Reveal(), aad(sid, field))
		if err != nil {
			return "", false, fmt.Errorf("account %s: %w", sid, err)
		}
		n++
		return out, true, nil
	}
	for _, r := range accounts {
		tok, changed1, err := reseal(r.authToken, r.sid, fieldAuthToken)
		if err != nil {
			return 0, "", err
		}
		prev, changed2, err := reseal(r.previousAuthToken, r.sid, fieldPreviousAuthToken)
		if err != nil {
			return 0, "", err
		}
		if changed1 || changed2 {
			if _, err := tx.ExecContext(ctx, "UPDATE accounts SET auth_token = ?, previous_auth_token = ? WHERE sid = ?", tok, prev, r.sid); err != nil {
				return 0, "", wrapErr(err)
			}
		}
	}

	type key struct{ sid, id, secret string }
	var keys []key
	rows, err = tx.QueryContext(ctx, "SELECT sid, key_id, secret FROM shared_keys WHERE sid >= ? AND sid <= ?", first, last)
	if err != nil {
		return 0, "", wrapErr(err)
	}
	for rows.Next() {
		var k key
		if err := rows.Scan(&k.sid, &k.id, &k.secret); err != nil {
			rows.Close()
			return 0, "", wrapErr(err)
		}
		keys = append(keys, k)
	}
	if err := closeRows(rows); err != nil {
		return 0, "", err
	}
	for _, k := range keys {
		secret, changed, err := reseal(k.secret, k.sid, sharedKeyField(k.id))
		if err != nil {
			return 0, "", fmt.Errorf("shared key %q: %w", k.id, err)
		}
		if changed {
			if _, err := tx.ExecContext(ctx, "UPDATE shared_keys SET secret = ? WHERE sid = ? AND key_id = ?", secret, k.sid, k.id); err != nil {
				return 0, "", wrapErr(err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, "", wrapErr(err)
	}
	return n, last, nil
}

// closeRows closes rows and reports any error met while iterating them.
func closeRows(rows *sql.Rows) error {
	if err := rows.Close(); err != nil {
		return wrapErr(err)
	}
	return wrapErr(rows.Err())
}
