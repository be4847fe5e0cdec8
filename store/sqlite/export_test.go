package sqlite

import "os"

// SetPageSize sets how many accounts All and Reseal read per query.
func SetPageSize(s *Store, n int) { s.pageSize = n }

// LockFile returns the open lock file of s, nil where there is no flock(2).
func LockFile(s *Store) *os.File { return s.lock }
