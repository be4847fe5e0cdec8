package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/twilioguard/twilioguard/store"
)

func TestWrap(t *testing.T) {
	t.Parallel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		name            string
		err             error
		wantUnavailable bool
		wantIs          error
	}{
		{"connection refused", fmt.Errorf("dial: %w", refused), true, nil},
		{"connection closed", fmt.Errorf("receive: %w", io.ErrUnexpectedEOF), true, nil},
		{"server shutting down", &pgconn.PgError{Code: "57P01", Message: "terminating connection"}, true, nil},
		{"server starting", &pgconn.PgError{Code: "57P03", Message: "the database system is starting up"}, true, nil},
		{"connection exception", &pgconn.PgError{Code: "08006"}, true, nil},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false, nil},
		{"syntax error", &pgconn.PgError{Code: "42601"}, false, nil},
		{"canceled", fmt.Errorf("acquire: %w", context.Canceled), false, context.Canceled},
		{"deadline", context.DeadlineExceeded, false, context.DeadlineExceeded},
		{"other", errors.New("boom"), false, nil},
	}
	for _, tt := range tests {
		got := wrap("op", tt.err)
		if errors.Is(got, store.ErrUnavailable) != tt.wantUnavailable {
			t.Errorf("%s: wrap = %v; ErrUnavailable = %v, want %v", tt.name, got, !tt.wantUnavailable, tt.wantUnavailable)
		}
		if tt.wantIs != nil && !errors.Is(got, tt.wantIs) {
			t.Errorf("%s: wrap = %v; want it to wrap %v", tt.name, got, tt.wantIs)
		}
	}
	if wrap("op", nil) != nil {
		t.Error("wrap(nil) != nil")
	}
}
