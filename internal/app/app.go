// Package app composes the twilioguard service process: [Config] → [Open]
// (secret key, admin token, store, verification server, Envoy ext_authz
// server, listeners) → [App.Handler] (every RPC plus health, readiness,
// reflection and metrics on one port) → [App.Run] (serve until the context
// ends, then drain and wait for every background loop) → [App.Close].
//
// cmd/twilioguard turns flags into a Config; end-to-end tests start an App
// in-process.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"

	"github.com/twilioguard/twilioguard/extauthz"
	"github.com/twilioguard/twilioguard/forwardauth"
	"github.com/twilioguard/twilioguard/replay"
	"github.com/twilioguard/twilioguard/server"
	"github.com/twilioguard/twilioguard/store"
	"github.com/twilioguard/twilioguard/store/postgres"
	"github.com/twilioguard/twilioguard/store/seal"
	"github.com/twilioguard/twilioguard/store/sqlite"
	"github.com/twilioguard/twilioguard/twilioapi"
)

// Defaults of [Config] fields left zero.
const (
	DefaultAddr            = "localhost:8080"
	DefaultShutdownTimeout = 30 * time.Second
)

// Config configures the service process. Secrets come only from values the
// caller read from the environment or from files.
type Config struct {
	// Addr is the main listen address: HTTP/1.1 and h2c (or TLS), serving
	// every RPC, Envoy's Check, health, readiness and metrics.
	Addr string
	// DataDir holds the SQLite database, the generated secret key and the
	// generated admin token. Required unless Store, the secret key and the
	// admin token are all given.
	DataDir string
	// Store is empty (SQLite in DataDir), sqlite:///path/file.db or
	// postgres://… (several replicas).
	Store string
	// SecretKey is the TWILIOGUARD_SECRET_KEY value: the key that seals
	// secrets at rest, then older keys, separated by white space.
	SecretKey string
	// SecretKeyFile is a file holding the same; it wins over SecretKey.
	SecretKeyFile string
	// AdminToken is the TWILIOGUARD_ADMIN_TOKEN value.
	AdminToken string
	// AdminTokenFile is a file holding the admin token; it wins over
	// AdminToken. Without either, one is generated in DataDir.
	AdminTokenFile string
	// TLSCertFile and TLSKeyFile make the main port serve TLS.
	TLSCertFile, TLSKeyFile string
	// ExtauthzAddr, when set, also serves Envoy's Check on a native gRPC
	// listener.
	ExtauthzAddr string
	// ReplayWindow is how long a verified webhook is remembered, so that a
	// copy verified again is flagged as a duplicate; 0 turns duplicate
	// detection off. With the PostgreSQL store the record is in the
	// database, shared by every replica; otherwise it is in memory.
	ReplayWindow time.Duration
	// ReplayMaxEntries bounds the in-memory record (default
	// replay.DefaultMaxEntries). When it is full, new webhooks answer
	// replayCheck UNAVAILABLE until older ones expire.
	ReplayMaxEntries int
	// ReplayTimeout bounds one duplicate check in PostgreSQL (default
	// postgres.DefaultReplayTimeout); past it the answer says UNAVAILABLE.
	ReplayTimeout time.Duration
	// Logger receives the process's logs; nil discards them.
	Logger *slog.Logger
	// Version is reported in the start-up log line.
	Version string
	// ShutdownTimeout bounds how long in-flight calls may take to finish
	// when Run's context ends (default 30 s).
	ShutdownTimeout time.Duration
	// Twilio, with TwilioSyncInterval, imports the Twilio parent account and
	// its subaccounts at start and then every interval (see package
	// twilioapi); nil turns the sync off.
	Twilio             *twilioapi.Client
	TwilioSyncInterval time.Duration
	// Server holds the verification settings (limits, resync interval,
	// hints, metric labels). Its Store, AdminToken, Logger and Registerer
	// are filled in by Open.
	Server server.Config
}

// App is an opened service process. Create it with [Open].
type App struct {
	cfg      Config
	log      *slog.Logger
	store    closingStore
	keys     *seal.Keyring
	replay   replayRecord // nil when duplicate detection is off
	srv      *server.Server
	ext      *extauthz.Server
	fwd      *forwardauth.Handler
	reg      *prometheus.Registry
	handler  http.Handler
	http     *http.Server
	ln       net.Listener
	grpc     *grpc.Server
	extLn    net.Listener
	sync     *twilioapi.Syncer
	closeOne sync.Once
	closeErr error
}

// replayRecord is the record of verified webhooks the server claims in,
// whose expiry the App runs.
type replayRecord interface {
	server.ReplayStore
	Run(ctx context.Context)
}

// closingStore is the store the server reads, which the App closes.
type closingStore interface {
	server.Store
	Close() error
}

// Open opens everything the process needs and binds its listeners, but
// serves nothing until [App.Run]. On error nothing stays open.
func Open(ctx context.Context, cfg Config) (_ *App, err error) {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == "") {
		return nil, errors.New("TLS needs both --tls-cert-file and --tls-key-file")
	}
	if cfg.ReplayWindow < 0 || cfg.ReplayMaxEntries < 0 || cfg.ReplayTimeout < 0 {
		return nil, errors.New("--replay-window, --replay-max-entries and --replay-timeout must not be negative")
	}
	a := &App{cfg: cfg, log: cfg.Logger, reg: prometheus.NewRegistry()}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	defer func() {
		if err != nil {
			_ = a.Close()
		}
	}()
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
	}
	adminToken, err := LoadAdminToken(cfg.AdminTokenFile, cfg.AdminToken, cfg.DataDir, cfg.DataDir != "")
	if err != nil {
		return nil, err
	}
	if err := a.openStore(ctx); err != nil {
		return nil, err
	}
	if err := a.checkKey(ctx); err != nil {
		return nil, err
	}
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	scfg := cfg.Server
	scfg.Store, scfg.AdminToken, scfg.Logger, scfg.Registerer = a.store, store.Secret(adminToken), a.log, a.reg
	if a.replay = a.openReplay(); a.replay != nil {
		scfg.Replay = a.replay
	}
	if a.srv, err = server.New(scfg); err != nil {
		return nil, err
	}
	maxBody := cfg.Server.MaxBodyBytes
	if maxBody <= 0 {
		maxBody = server.DefaultMaxBodyBytes
	}
	if a.fwd, err = forwardauth.New(a.srv, forwardauth.WithLogger(a.log), forwardauth.WithRegisterer(a.reg),
		forwardauth.WithMaxBodyBytes(int64(maxBody))); err != nil {
		return nil, err
	}
	a.ext, err = extauthz.NewServer(a.srv, extauthz.WithLogger(a.log), extauthz.WithRegisterer(a.reg),
		extauthz.WithHandlerOptions(a.srv.HandlerOptions()...))
	if err != nil {
		return nil, err
	}
	if cfg.Twilio != nil && cfg.TwilioSyncInterval > 0 {
		a.sync, err = twilioapi.NewSyncer(twilioapi.SyncConfig{Twilio: cfg.Twilio, Accounts: a.srv,
			Interval: cfg.TwilioSyncInterval, Logger: a.log, Registerer: a.reg})
		if err != nil {
			return nil, err
		}
	}
	a.handler = a.routes()
	if err := a.listen(); err != nil {
		return nil, err
	}
	return a, nil
}

// openStore opens the store cfg.Store names: SQLite in the data directory
// by default, or PostgreSQL for several replicas. This is the only place
// that picks a backend.
func (a *App) openStore(ctx context.Context) error {
	u := a.cfg.Store
	switch {
	case strings.HasPrefix(u, "postgres://"), strings.HasPrefix(u, "postgresql://"):
		keys, err := loadKeyring(a.cfg.SecretKeyFile, a.cfg.SecretKey, a.cfg.DataDir, "")
		if err != nil {
			return fmt.Errorf("postgres store: %w", err)
		}
		st, err := postgres.Open(ctx, postgres.Config{DSN: u, Keyring: keys, Logger: a.log})
		if err != nil {
			return err
		}
		a.store, a.keys = st, keys
		return nil
	case u == "", strings.HasPrefix(u, "sqlite://"):
		path := strings.TrimPrefix(u, "sqlite://")
		if path == "" {
			if a.cfg.DataDir == "" {
				return errors.New("no data directory for the SQLite store: set --data-dir or --store")
			}
			path = filepath.Join(a.cfg.DataDir, SQLiteFile)
		}
		keys, err := loadKeyring(a.cfg.SecretKeyFile, a.cfg.SecretKey, a.cfg.DataDir, path)
		if err != nil {
			return err
		}
		st, err := sqlite.Open(ctx, sqlite.Config{Path: path, Keyring: keys})
		if err != nil {
			return err
		}
		a.store, a.keys = st, keys
		return nil
	}
	return errors.New("--store: want empty (SQLite in --data-dir), sqlite:///path/file.db or postgres://…")
}

// openReplay returns the record of verified webhooks: in the PostgreSQL
// store's database, shared by every replica, or in memory; nil when
// duplicate detection is off.
func (a *App) openReplay() replayRecord {
	w := a.cfg.ReplayWindow
	if w == 0 {
		return nil
	}
	if pg, ok := a.store.(*postgres.Store); ok {
		return pg.Replay(postgres.ReplayConfig{Window: w, Timeout: a.cfg.ReplayTimeout})
	}
	mem := replay.NewMemory(replay.MemoryConfig{Window: w, MaxEntries: a.cfg.ReplayMaxEntries})
	a.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "twilioguard_replay_memory_entries",
			Help: "Verified webhooks held in the in-memory replay record.",
		}, func() float64 { return float64(mem.Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "twilioguard_replay_memory_capacity",
			Help: "Most verified webhooks the in-memory replay record holds (--replay-max-entries).",
		}, func() float64 { return float64(mem.Cap()) }),
	)
	return mem
}

// checkKey compares the key ids the stored secrets name with the keyring:
// when there are sealed secrets and none names a key the keyring holds,
// the process was started with the wrong secret key and refuses to go on
// (before it accepts a write sealed under that key); when only some do, it
// warns and serves (those accounts answer Unavailable until repaired).
func (a *App) checkKey(ctx context.Context) error {
	ks, ok := a.store.(interface {
		KeyIDs(context.Context) (map[string]int, error)
	})
	if !ok {
		return nil
	}
	ids, err := ks.KeyIDs(ctx)
	if err != nil {
		return fmt.Errorf("check the secret key against the store: %w", err)
	}
	known, unknown := 0, 0
	var names []string
	for id, n := range ids {
		if a.keys.Has(id) {
			known += n
			continue
		}
		unknown += n
		if id == "" {
			id = "(damaged)"
		}
		names = append(names, id)
	}
	slices.Sort(names)
	switch {
	case unknown == 0:
		return nil
	case known == 0:
		return fmt.Errorf("the secret key does not match the stored data: its %d sealed secrets name key ids %s, "+
			"and this key's id is %s; start with the key they were sealed with (TWILIOGUARD_SECRET_KEY or "+
			"--secret-key-file; several keys may be given, the current one first)",
			unknown, strings.Join(names, ", "), a.keys.PrimaryID())
	}
	a.log.Warn("some stored secrets cannot be read with this secret key; their accounts cannot verify until put again",
		"unreadable_secrets", unknown, "key_ids", strings.Join(names, ","), "key_id", a.keys.PrimaryID())
	return nil
}

// Handler returns the handler of the main port: the VerifierService and
// AccountService, Envoy's Check, /forward-auth, gRPC health and
// reflection, GET /healthz, GET /readyz and GET /metrics.
func (a *App) Handler() http.Handler { return a.handler }

// Addr returns the address the main port listens on.
func (a *App) Addr() string { return a.ln.Addr().String() }

// ExtauthzAddr returns the address of the native ext_authz listener, or ""
// when there is none.
func (a *App) ExtauthzAddr() string {
	if a.extLn == nil {
		return ""
	}
	return a.extLn.Addr().String()
}

// Server returns the verification server, for in-process callers (a
// Verifier for package middleware, an account admin for Twilio sync).
func (a *App) Server() *server.Server { return a.srv }

// Run serves until ctx ends, then stops accepting connections, lets
// in-flight calls finish within the shutdown timeout, stops every
// background loop and waits for them. It returns nil after a clean
// shutdown.
func (a *App) Run(ctx context.Context) error {
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { _ = a.srv.Run(runCtx) })
	if a.replay != nil {
		wg.Go(func() { a.replay.Run(runCtx) })
	}
	if a.keys.HasOldKeys() {
		wg.Go(func() { a.reseal(runCtx) })
	}
	if a.sync != nil {
		wg.Go(func() { _ = a.sync.Run(runCtx) })
	}

	errc := make(chan error, 2)
	wg.Go(func() {
		var err error
		if a.cfg.TLSCertFile != "" {
			err = a.http.ServeTLS(a.ln, a.cfg.TLSCertFile, a.cfg.TLSKeyFile)
		} else {
			err = a.http.Serve(a.ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("serve %s: %w", a.Addr(), err)
		}
	})
	if a.grpc != nil {
		wg.Go(func() {
			if err := a.grpc.Serve(a.extLn); err != nil {
				errc <- fmt.Errorf("serve ext_authz on %s: %w", a.ExtauthzAddr(), err)
			}
		})
		a.log.Info("serving Envoy ext_authz over native gRPC", "addr", a.ExtauthzAddr())
	}
	a.log.Info("twilioguard serving", "addr", a.Addr(), "version", a.cfg.Version,
		"tls", a.cfg.TLSCertFile != "", "store", storeKind(a.cfg.Store), "data_dir", a.cfg.DataDir,
		"replay_window", a.cfg.ReplayWindow)

	var runErr error
	select {
	case runErr = <-errc:
	case <-ctx.Done():
	}
	a.log.Info("shutting down; draining in-flight calls", "timeout", a.cfg.ShutdownTimeout)
	if err := a.shutdown(); err != nil && runErr == nil {
		runErr = err
	}
	stop()
	wg.Wait()
	if runErr == nil {
		a.log.Info("stopped")
	}
	return runErr
}

// shutdown drains both listeners within the shutdown timeout.
func (a *App) shutdown() error {
	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	if a.grpc != nil {
		wg.Go(func() {
			done := make(chan struct{})
			go func() { a.grpc.GracefulStop(); close(done) }()
			select {
			case <-done:
			case <-sctx.Done():
				a.grpc.Stop()
			}
		})
	}
	err := a.http.Shutdown(sctx)
	wg.Wait()
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// reseal seals every secret again with the primary key when the keyring
// also holds older keys (a secret-key rotation in progress).
func (a *App) reseal(ctx context.Context) {
	r, ok := a.store.(interface {
		Reseal(context.Context) (int, error)
	})
	if !ok {
		return
	}
	n, err := r.Reseal(ctx)
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("resealing secrets with the new secret key failed; it is retried at the next start", "error", err)
		}
		return
	}
	a.log.Info("secrets sealed with the new secret key; older keys may now be removed", "resealed", n, "key_id", a.keys.PrimaryID())
}

// Close releases what Open acquired: listeners and the store. It is safe to
// call more than once, and after Run.
func (a *App) Close() error {
	a.closeOne.Do(func() {
		var errs []error
		if a.ln != nil {
			_ = a.ln.Close()
		}
		if a.extLn != nil {
			_ = a.extLn.Close()
		}
		if a.store != nil {
			errs = append(errs, a.store.Close())
		}
		a.closeErr = errors.Join(errs...)
	})
	return a.closeErr
}

func storeKind(u string) string {
	if strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://") {
		return "postgres"
	}
	return "sqlite"
}
