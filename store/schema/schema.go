// Package schema reads the SQL migrations a store backend embeds and decides
// which of them a database still needs. Running them is the backend's job:
// only it knows its database's dialect and locking.
//
// A migration is a file NNNN_description.sql; NNNN, a positive number, is
// its version, and migrations run in version order. A released migration is
// never edited: a change to the schema is a new file.
package schema

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Migration is one schema change.
type Migration struct {
	// Version is the number the file name starts with.
	Version int
	// Name is the file name, for example "0001_accounts.sql".
	Name string
	// SQL is the file's content.
	SQL string
}

// Load returns the migrations in the *.sql files of directory dir of fsys
// (for example an embed.FS), in version order. It fails when there are none,
// when a name does not start with a positive number and '_', or when two
// files share a version.
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	files, err := fs.Glob(fsys, path.Join(dir, "*.sql"))
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("read migrations: no *.sql files in %s", dir)
	}
	ms := make([]Migration, 0, len(files))
	for _, file := range files {
		name := path.Base(file)
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive number and '_'", name)
		}
		b, err := fs.ReadFile(fsys, file)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(b)})
	}
	slices.SortFunc(ms, func(a, b Migration) int { return a.Version - b.Version })
	for i := 1; i < len(ms); i++ {
		if ms[i].Version == ms[i-1].Version {
			return nil, fmt.Errorf("migrations %s and %s have the same version", ms[i-1].Name, ms[i].Name)
		}
	}
	return ms, nil
}

// Pending returns the migrations of all (in version order, as [Load] gives
// them) that a database at schema version current has not applied, in the
// order to apply them. It refuses a database whose schema is newer than the
// newest migration: this program would not know how to use it.
func Pending(all []Migration, current int) ([]Migration, error) {
	if len(all) > 0 {
		if latest := all[len(all)-1].Version; current > latest {
			return nil, fmt.Errorf("database schema version %d is newer than this program's %d: upgrade twilioguard", current, latest)
		}
	}
	i := 0
	for i < len(all) && all[i].Version <= current {
		i++
	}
	return all[i:], nil
}
