package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/twilioguard/twilioguard/store"
)

// wrap gives err the operation as context. When the database could not be
// reached it returns a new error marked with [store.ErrUnavailable] whose
// message says why in a few words, without addresses, users or the DSN.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", op, err)
	}
	if reason, ok := unreachable(err); ok {
		return fmt.Errorf("%s: database unreachable (%s): %w", op, reason, store.ErrUnavailable)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// unreachable reports whether err means the database could not be reached
// (as opposed to a query it refused), and a short reason.
func unreachable(err error) (string, bool) {
	var connectErr *pgconn.ConnectError
	connecting := errors.As(err, &connectErr)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case connecting,
			strings.HasPrefix(pgErr.Code, "08"), // connection exception
			pgErr.Code == "57P01",               // admin_shutdown
			pgErr.Code == "57P02",               // crash_shutdown
			pgErr.Code == "57P03",               // cannot_connect_now
			pgErr.Code == "53300":               // too_many_connections
			return pgErr.Message, true
		}
		return "", false
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Err != nil {
		return opErr.Err.Error(), true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return "network error", true
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "connection closed", true
	}
	if connecting {
		return "cannot connect", true
	}
	if pgconn.SafeToRetry(err) {
		return "connection lost", true
	}
	return "", false
}
