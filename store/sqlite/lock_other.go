//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package sqlite

import "os"

// lock takes no lock on systems without flock(2): there, nothing stops a
// second process from opening the same database.
func lock(string) (*os.File, error) { return nil, nil }

// unlock has nothing to release.
func unlock(*os.File) error { return nil }
