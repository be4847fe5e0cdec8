package server

import "context"

// CheckStore runs one store health check, as Run does every two seconds.
func (s *Server) CheckStore(ctx context.Context) { s.checkStore(ctx) }
