package sqlite

import (
	"context"
	"embed"
	"fmt"

	"github.com/twilioguard/twilioguard/store/schema"
)

// migrations are the schema changes (see store/schema). Never edit one that
// has been released; add a new file instead.
//
//go:embed migrations/*.sql
var migrations embed.FS

// migrate applies, in one transaction, every embedded migration the database
// has not seen. It refuses a database whose schema is newer than this
// program.
func (s *Store) migrate(ctx context.Context) error {
	all, err := schema.Load(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", wrapErr(err))
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `
		CREATE TABLE IF NOT EXISTS schema_migrations (
			version      INTEGER NOT NULL PRIMARY KEY,
			name         TEXT    NOT NULL,
			applied_time INTEGER NOT NULL
		) STRICT`); err != nil {
		return fmt.Errorf("migrate: %w", wrapErr(err))
	}
	var current int
	if err := tx.QueryRowContext(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&current); err != nil {
		return fmt.Errorf("migrate: %w", wrapErr(err))
	}
	pending, err := schema.Pending(all, current)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, m := range pending {
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return fmt.Errorf("migrate: %s: %w", m.Name, wrapErr(err))
		}
		if _, err := tx.ExecContext(ctx,
			"INSERT INTO schema_migrations (version, name, applied_time) VALUES (?, ?, ?)",
			m.Version, m.Name, s.now().UTC().UnixNano()); err != nil {
			return fmt.Errorf("migrate: %s: %w", m.Name, wrapErr(err))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: %w", wrapErr(err))
	}
	return nil
}
