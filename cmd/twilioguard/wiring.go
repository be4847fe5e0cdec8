package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/twilioguard/twilioguard/extauthz"
	"github.com/twilioguard/twilioguard/middleware"
	"github.com/twilioguard/twilioguard/server"
	"github.com/twilioguard/twilioguard/store/postgres"
	"github.com/twilioguard/twilioguard/store/seal"
	"github.com/twilioguard/twilioguard/store/sqlite"
)

// The in-process server is a Verifier for the gateway adapters.
var (
	_ extauthz.Verifier   = (*server.Server)(nil)
	_ middleware.Verifier = (*server.Server)(nil)
)

// openStore opens the store named by --store: SQLite in the data directory
// by default, or PostgreSQL for several replicas. This is the only place
// that picks a backend.
func openStore(ctx context.Context, e env, c serveConfig, log *slog.Logger) (server.Store, func(), error) {
	u := c.storeURL
	switch {
	case strings.HasPrefix(u, "postgres://"), strings.HasPrefix(u, "postgresql://"):
		keys, err := loadKeyring(e, c.secretKeyFile, c.dataDir, "")
		if err != nil {
			return nil, nil, fmt.Errorf("postgres store: %w", err)
		}
		st, err := postgres.Open(ctx, postgres.Config{DSN: u, Keyring: keys, Logger: log})
		if err != nil {
			return nil, nil, err
		}
		resealInBackground(ctx, st, keys, log)
		return st, func() { _ = st.Close() }, nil
	case u == "", strings.HasPrefix(u, "sqlite://"):
		path := strings.TrimPrefix(u, "sqlite://")
		if path == "" {
			path = filepath.Join(c.dataDir, sqliteFile)
		}
		keys, err := loadKeyring(e, c.secretKeyFile, c.dataDir, path)
		if err != nil {
			return nil, nil, err
		}
		st, err := sqlite.Open(ctx, sqlite.Config{Path: path, Keyring: keys})
		if err != nil {
			return nil, nil, err
		}
		resealInBackground(ctx, st, keys, log)
		return st, func() { _ = st.Close() }, nil
	}
	return nil, nil, errors.New("--store: want empty (SQLite in --data-dir), sqlite:///path/file.db or postgres://…")
}

// resealInBackground seals every secret again with the primary key when the
// keyring also holds older keys (a secret-key rotation in progress).
func resealInBackground(ctx context.Context, st interface {
	Reseal(context.Context) (int, error)
}, keys *seal.Keyring, log *slog.Logger) {
	if !keys.HasOldKeys() {
		return
	}
	go func() {
		n, err := st.Reseal(ctx)
		if err != nil {
			log.Warn("resealing secrets with the new secret key failed; it is retried at the next start", "err", err)
			return
		}
		log.Info("secrets sealed with the new secret key; older keys may now be removed", "resealed", n, "key_id", keys.PrimaryID())
	}()
}

// gatewayServices are the extra gRPC services announced by health and
// reflection.
func gatewayServices() []string { return []string{authv3.Authorization_ServiceDesc.ServiceName} }

// mountGateway serves Envoy's ext_authz Check on the main mux and, with
// --extauthz-addr, on a native gRPC listener of its own.
func mountGateway(ctx context.Context, mux *http.ServeMux, v extauthz.Verifier, c serveConfig, log *slog.Logger, reg prometheus.Registerer) (func(), error) {
	ext := extauthz.NewServer(v, extauthz.WithLogger(log), extauthz.WithRegisterer(reg))
	mux.Handle(ext.Handler())
	if c.extauthzAddr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", c.extauthzAddr)
	if err != nil {
		return nil, fmt.Errorf("--extauthz-addr: %w", err)
	}
	g := grpc.NewServer(grpc.MaxRecvMsgSize(2*c.maxBodyBytes + 1<<20))
	ext.RegisterGRPC(g)
	go func() {
		if err := g.Serve(ln); err != nil && ctx.Err() == nil {
			log.Error("ext_authz gRPC server stopped", "err", err)
		}
	}()
	log.Info("serving Envoy ext_authz over native gRPC", "addr", ln.Addr().String())
	return func() {
		// Drain like the main server, within the same timeout.
		done := make(chan struct{})
		go func() { g.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(c.shutdownTimeout):
			g.Stop()
		}
	}, nil
}
