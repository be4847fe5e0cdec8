// Package sqlite is the embedded default account store: one SQLite database
// file (pure-Go driver, so CGO_ENABLED=0 builds work) in WAL mode, with every
// secret sealed by store/seal in the form store/atrest defines.
//
// One process at a time uses a database: [Open] takes an exclusive lock on
// the file "<database>.lock", which names the holder's pid, and a second
// [Open] fails with [ErrInUse] until the holder closes the store or exits.
//
// It passes the conformance suite in store/storetest. Migrations are embedded
// and run by [Open].
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	sqlite3 "modernc.org/sqlite"
	sqlite3lib "modernc.org/sqlite/lib"

	"github.com/twilioguard/twilioguard/store"
	"github.com/twilioguard/twilioguard/store/atrest"
	"github.com/twilioguard/twilioguard/store/seal"
)

// busyTimeout is how long a statement waits for a lock held by another
// connection or process before it fails.
const busyTimeout = 5 * time.Second

// defaultPageSize is how many accounts [Store.All], [Store.Reseal] and
// [Store.KeyIDs] read per query.
const defaultPageSize = 1000

// Config configures [Open].
type Config struct {
	// Path is the database file; it is created (mode 0600) when missing,
	// and so is its lock file, Path+".lock". Its directory must exist.
	Path string
	// Keyring seals secrets with its primary key and opens them with any of
	// its keys. Required.
	Keyring *seal.Keyring
}

// Store is an account store in one SQLite file. It is safe for concurrent
// use.
type Store struct {
	// writer has one connection, so writes queue in Go instead of
	// contending for SQLite's write lock.
	writer *sql.DB
	// reader serves read-only transactions, concurrently with the writer
	// (WAL mode).
	reader   *sql.DB
	codec    *atrest.Codec
	lock     *os.File // nil where there is no flock(2)
	pageSize int
	now      func() time.Time

	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating it if needed) the database at cfg.Path and brings its
// schema up to date. It fails with an error wrapping [ErrInUse], naming the
// file and the holder's pid, when another process or another Store of this
// process has the database open.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Path == "" {
		return nil, errors.New("open sqlite store: no database path")
	}
	if strings.ContainsRune(cfg.Path, '?') || strings.HasPrefix(cfg.Path, "file:") {
		return nil, errors.New("open sqlite store: database path must not contain '?' or start with \"file:\"")
	}
	if cfg.Keyring == nil {
		return nil, errors.New("open sqlite store: no keyring")
	}
	lockFile, err := lock(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	s, err := open(ctx, cfg, lockFile)
	if err != nil {
		_ = unlock(lockFile)
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	return s, nil
}

// open opens the database for [Open], which holds its lock.
func open(ctx context.Context, cfg Config, lockFile *os.File) (*Store, error) {
	// Create the file ourselves so that it (and SQLite's -wal and -shm
	// files, which copy its mode) is private to this user.
	f, err := os.OpenFile(cfg.Path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}

	common := url.Values{}
	common.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	common.Add("_pragma", "foreign_keys(1)")

	w := url.Values{"_txlock": {"immediate"}}
	w["_pragma"] = append([]string{"journal_mode(WAL)"}, common["_pragma"]...)
	w.Add("_pragma", "synchronous(NORMAL)")
	writer, err := sql.Open("sqlite", cfg.Path+"?"+w.Encode())
	if err != nil {
		return nil, err
	}
	writer.SetMaxOpenConns(1)
	writer.SetConnMaxIdleTime(0)

	r := url.Values{"_pragma": append(common["_pragma"], "query_only(1)")}
	reader, err := sql.Open("sqlite", cfg.Path+"?"+r.Encode())
	if err != nil {
		writer.Close()
		return nil, err
	}
	n := max(4, runtime.GOMAXPROCS(0))
	reader.SetMaxOpenConns(n)
	reader.SetMaxIdleConns(n)

	s := &Store{writer: writer, reader: reader, codec: atrest.New(cfg.Keyring), pageSize: defaultPageSize, now: time.Now}
	// The writer opens first: it switches the file to WAL mode.
	if err := s.migrate(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	if err := reader.PingContext(ctx); err != nil {
		_ = s.Close()
		return nil, wrapErr(err)
	}
	s.lock = lockFile
	return s, nil
}

// Close closes the database and then releases its lock. Calls after the
// first return the first's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = errors.Join(s.reader.Close(), s.writer.Close())
		s.closeErr = errors.Join(s.closeErr, unlock(s.lock))
	})
	return s.closeErr
}

// Ping reports whether the database can be read.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.reader.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("ping sqlite store: %w", wrapErr(err))
	}
	return nil
}

// Get returns the account whose SID or alias is key, or an error wrapping
// [store.ErrNotFound]. Secrets that cannot be read are named in
// store.Account.Unreadable; they fail nothing.
func (s *Store) Get(ctx context.Context, key string) (*store.Account, error) {
	tx, err := s.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("get account: %w", wrapErr(err))
	}
	defer tx.Rollback()
	var sid string
	err = tx.QueryRowContext(ctx, `
		SELECT sid FROM accounts WHERE sid = ?1
		UNION ALL
		SELECT sid FROM account_aliases WHERE alias = ?1
		LIMIT 1`, key).Scan(&sid)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get account %q: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get account: %w", wrapErr(err))
	}
	accounts, err := s.load(ctx, tx, "sid = ?", sid)
	if err != nil {
		return nil, fmt.Errorf("get account %s: %w", sid, err)
	}
	if len(accounts) == 0 {
		return nil, fmt.Errorf("get account %q: %w", key, store.ErrNotFound)
	}
	return accounts[0], nil
}

// List returns up to limit accounts whose SID sorts after afterSID, in SID
// order. Pass "" to start at the beginning. A limit below 1 is an error.
func (s *Store) List(ctx context.Context, afterSID string, limit int) ([]*store.Account, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("list accounts: limit %d, want > 0", limit)
	}
	tx, err := s.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", wrapErr(err))
	}
	defer tx.Rollback()
	accounts, err := s.load(ctx, tx, "sid > ? ORDER BY sid LIMIT ?", afterSID, limit)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	return accounts, nil
}

// All calls fn with every account, in SID order, from one consistent
// snapshot. It reads a page of accounts at a time, so memory use does not
// grow with the number of accounts. It stops at and returns fn's first error.
func (s *Store) All(ctx context.Context, fn func(*store.Account) error) error {
	tx, err := s.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("read all accounts: %w", wrapErr(err))
	}
	defer tx.Rollback()
	after := ""
	for {
		page, err := s.load(ctx, tx, "sid > ? ORDER BY sid LIMIT ?", after, s.pageSize)
		if err != nil {
			return fmt.Errorf("read all accounts: %w", err)
		}
		for _, a := range page {
			if err := fn(a); err != nil {
				return err
			}
		}
		if len(page) < s.pageSize {
			return nil
		}
		after = page[len(page)-1].SID
	}
}

// Put creates or replaces the account a.SID, with its aliases and shared
// keys, in one transaction, and returns the stored copy. a is not modified.
//
// expectedVersion 0 writes unconditionally; otherwise the account must exist
// ([store.ErrNotFound]) with that version ([store.ErrVersionMismatch]). Put
// sets Version (1 on create, one more on replace), CreateTime (kept on
// replace) and UpdateTime, and ignores a.Unreadable. An alias used by
// another account (as alias or SID), or a SID that is another account's
// alias, fails with [store.ErrAliasTaken]. Secrets are sealed with the
// keyring's primary key.
func (s *Store) Put(ctx context.Context, a *store.Account, expectedVersion int64) (*store.Account, error) {
	if err := validate(a, expectedVersion); err != nil {
		return nil, fmt.Errorf("put account: %w", err)
	}
	out := a.Clone()
	out.Unreadable = nil
	out.PreviousExpireTime = a.PreviousExpireTime.UTC()
	sealed, err := s.codec.Seal(out)
	if err != nil {
		return nil, fmt.Errorf("put account %s: %w", a.SID, err)
	}

	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("put account %s: %w", a.SID, wrapErr(err))
	}
	defer tx.Rollback()

	var version, created int64
	err = tx.QueryRowContext(ctx, "SELECT version, create_time FROM accounts WHERE sid = ?", a.SID).Scan(&version, &created)
	exists := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("put account %s: %w", a.SID, wrapErr(err))
	}
	if err := checkVersion(exists, version, expectedVersion); err != nil {
		return nil, fmt.Errorf("put account %s: %w", a.SID, err)
	}
	// A SID may not be another account's alias, nor an alias another's SID.
	for _, name := range append([]string{a.SID}, a.Aliases...) {
		var taken bool
		if err := tx.QueryRowContext(ctx, `SELECT
			EXISTS (SELECT 1 FROM account_aliases WHERE alias = ?1 AND sid <> ?2) OR
			(?1 <> ?2 AND EXISTS (SELECT 1 FROM accounts WHERE sid = ?1))`, name, a.SID).Scan(&taken); err != nil {
			return nil, fmt.Errorf("put account %s: %w", a.SID, wrapErr(err))
		}
		if taken {
			return nil, fmt.Errorf("put account %s: %q: %w", a.SID, name, store.ErrAliasTaken)
		}
	}

	now := s.now().UTC()
	out.Version, out.CreateTime, out.UpdateTime = 1, now, now
	if exists {
		out.Version = version + 1
		out.CreateTime = time.Unix(0, created).UTC()
		if now.Before(out.CreateTime) {
			out.UpdateTime = out.CreateTime
		}
	}
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO accounts (sid, friendly_name, auth_token, previous_auth_token,
			previous_expire_time, suspended, create_time, update_time, version)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (sid) DO UPDATE SET
			friendly_name = excluded.friendly_name,
			auth_token = excluded.auth_token,
			previous_auth_token = excluded.previous_auth_token,
			previous_expire_time = excluded.previous_expire_time,
			suspended = excluded.suspended,
			update_time = excluded.update_time,
			version = excluded.version`,
		out.SID, out.FriendlyName, sealed.AuthToken, sealed.PreviousAuthToken,
		nanos(out.PreviousExpireTime), out.Suspended, out.CreateTime.UnixNano(), out.UpdateTime.UnixNano(), out.Version,
	); err != nil {
		return nil, fmt.Errorf("put account %s: %w", a.SID, wrapErr(err))
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM account_aliases WHERE sid = ?", a.SID); err != nil {
		return nil, fmt.Errorf("put account %s: %w", a.SID, wrapErr(err))
	}
	for i, alias := range out.Aliases {
		if _, err := tx.ExecContext(ctx, "INSERT INTO account_aliases (alias, sid, position) VALUES (?, ?, ?)", alias, a.SID, i); err != nil {
			return nil, fmt.Errorf("put account %s: alias %q: %w", a.SID, alias, wrapErr(err))
		}
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM shared_keys WHERE sid = ?", a.SID); err != nil {
		return nil, fmt.Errorf("put account %s: %w", a.SID, wrapErr(err))
	}
	for i, k := range sealed.SharedKeys {
		if _, err := tx.ExecContext(ctx,
			"INSERT INTO shared_keys (sid, key_id, position, secret, algorithms) VALUES (?, ?, ?, ?, ?)",
			a.SID, k.ID, i, k.Secret, joinAlgorithms(k.Algorithms),
		); err != nil {
			return nil, fmt.Errorf("put account %s: shared key %q: %w", a.SID, k.ID, wrapErr(err))
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("put account %s: %w", a.SID, wrapErr(err))
	}
	return out, nil
}

// Delete removes the account sid with its aliases and shared keys.
// expectedVersion 0 deletes unconditionally; otherwise it must equal the
// stored version ([store.ErrVersionMismatch]). A missing account is
// [store.ErrNotFound].
func (s *Store) Delete(ctx context.Context, sid string, expectedVersion int64) error {
	if expectedVersion < 0 {
		return fmt.Errorf("delete account %s: expected version %d, want >= 0", sid, expectedVersion)
	}
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("delete account %s: %w", sid, wrapErr(err))
	}
	defer tx.Rollback()
	var version int64
	err = tx.QueryRowContext(ctx, "SELECT version FROM accounts WHERE sid = ?", sid).Scan(&version)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("delete account %s: %w", sid, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("delete account %s: %w", sid, wrapErr(err))
	}
	if err := checkVersion(true, version, expectedVersion); err != nil {
		return fmt.Errorf("delete account %s: %w", sid, err)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM accounts WHERE sid = ?", sid); err != nil {
		return fmt.Errorf("delete account %s: %w", sid, wrapErr(err))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("delete account %s: %w", sid, wrapErr(err))
	}
	return nil
}

// validate reports why a cannot be stored, or nil: [store.Account.Check]
// plus the limits of this schema.
func validate(a *store.Account, expectedVersion int64) error {
	if err := a.Check(); err != nil {
		return err
	}
	if expectedVersion < 0 {
		return fmt.Errorf("expected version %d, want >= 0", expectedVersion)
	}
	if t := a.PreviousExpireTime; !t.IsZero() && (t.Before(minTime) || t.After(maxTime)) {
		return errors.New("previous expire time out of range (years 1678 to 2262)")
	}
	return nil
}

// checkVersion applies the optimistic-concurrency rule.
func checkVersion(exists bool, stored, expected int64) error {
	switch {
	case expected == 0:
		return nil
	case !exists:
		return store.ErrNotFound
	case stored != expected:
		return fmt.Errorf("stored version %d, expected %d: %w", stored, expected, store.ErrVersionMismatch)
	}
	return nil
}

// The range of times representable as int64 Unix nanoseconds.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// nanos returns t as Unix nanoseconds, or nil (NULL) for the zero time.
func nanos(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func joinAlgorithms(algs []store.Algorithm) string {
	s := make([]string, len(algs))
	for i, a := range algs {
		s[i] = string(a)
	}
	return strings.Join(s, ",")
}

func splitAlgorithms(s string) []store.Algorithm {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	algs := make([]store.Algorithm, len(parts))
	for i, p := range parts {
		algs[i] = store.Algorithm(p)
	}
	return algs
}

// wrapErr marks errors that mean "try again later" with
// [store.ErrUnavailable].
func wrapErr(err error) error {
	var se *sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3lib.SQLITE_BUSY, sqlite3lib.SQLITE_LOCKED:
			return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
		}
	}
	return err
}
