// Package postgres keeps accounts in PostgreSQL, for running several replicas
// of the service on one database.
//
// Secrets are sealed with the service's secret key ([seal.Keyring]) before
// they reach the database, in the form store/atrest defines; a secret that
// cannot be opened marks its account instead of failing reads. Every change
// made through any replica (or by hand) is announced with NOTIFY on channel
// twilioguard_accounts, which [Store.Watch] follows so that every replica can
// refresh its cache within a moment of the change. The schema is created and
// upgraded by embedded migrations that [Open] runs under an advisory lock, so
// replicas may start together.
//
// Errors caused by an unreachable database wrap
// [github.com/twilioguard/twilioguard/store.ErrUnavailable].
package postgres

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/twilioguard/twilioguard/store/atrest"
	"github.com/twilioguard/twilioguard/store/seal"
)

// Config configures [Open].
type Config struct {
	// DSN is a PostgreSQL connection string, as a URL
	// (postgres://user@host:5432/db?sslmode=require) or in key=value form.
	// Passwords may also come from PGPASSWORD or a .pgpass file.
	DSN string
	// Keyring seals and opens secrets. Required.
	Keyring *seal.Keyring
	// Logger receives connection and watch events. Nil discards them.
	Logger *slog.Logger
}

// defaultConnectTimeout bounds a connection attempt when the DSN sets no
// connect_timeout, so an unreachable host fails a call instead of hanging it.
const defaultConnectTimeout = 5 * time.Second

// Store is an account store in PostgreSQL. It is safe for concurrent use.
type Store struct {
	pool  *pgxpool.Pool
	codec *atrest.Codec
	log   *slog.Logger
}

// Open connects to the database named by cfg.DSN and brings its schema up to
// date. It fails when cfg.Keyring is nil, and with an error wrapping
// store.ErrUnavailable when the database cannot be reached.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Keyring == nil {
		return nil, errors.New("open postgres store: a secret key is required to seal secrets " +
			"(set TWILIOGUARD_SECRET_KEY or --secret-key-file to 32 random bytes in standard base64)")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pcfg, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		// pgx's message may quote the DSN; say only what kind of problem it is.
		return nil, errors.New("open postgres store: cannot parse the DSN (want postgres://user@host:port/database?options or key=value pairs)")
	}
	if pcfg.ConnConfig.ConnectTimeout == 0 {
		pcfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	if _, ok := pcfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		pcfg.ConnConfig.RuntimeParams["application_name"] = "twilioguard"
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, wrap("open postgres store", err)
	}
	applied, err := migrate(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, wrap("open postgres store: migrate", err)
	}
	for _, name := range applied {
		log.Info("applied database migration", "migration", name)
	}
	return &Store{pool: pool, codec: atrest.New(cfg.Keyring), log: log}, nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return wrap("ping postgres", s.pool.Ping(ctx))
}

// Close closes every connection. Calls after Close fail.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}
