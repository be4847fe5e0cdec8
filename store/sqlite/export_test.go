package sqlite

// SetPageSize sets how many accounts All and Reseal read per query.
func SetPageSize(s *Store, n int) { s.pageSize = n }
