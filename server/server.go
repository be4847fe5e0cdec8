// Package server implements twilioguard's VerifierService and AccountService:
// webhook verification from an in-memory cache of account credentials, the
// admin API over a [Store], admin authentication, health, readiness and
// metrics.
//
// A bad signature is a verdict (valid=false with a reason), not an error.
// Errors mean the server could not decide: InvalidArgument for malformed
// input, Unavailable when no account data has been loaded.
package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/twilioguard/twilioguard/gen/twilioguard/v1/twilioguardv1connect"
	"github.com/twilioguard/twilioguard/internal/bound"
	"github.com/twilioguard/twilioguard/internal/connectguard"
	"github.com/twilioguard/twilioguard/store"
)

// Store is the account storage the server needs. store/sqlite and
// store/postgres satisfy it.
type Store interface {
	Get(ctx context.Context, key string) (*store.Account, error)
	List(ctx context.Context, afterSID string, limit int) ([]*store.Account, error)
	Put(ctx context.Context, a *store.Account, expectedVersion int64) (*store.Account, error)
	Delete(ctx context.Context, sid string, expectedVersion int64) error
	All(ctx context.Context, fn func(*store.Account) error) error
	Ping(ctx context.Context) error
}

// watcher is implemented by stores shared between replicas: Watch calls
// changed(sid) for every account changed anywhere, and changed("") when
// everything must be reloaded (after a reconnect). It blocks until ctx ends.
type watcher interface {
	Watch(ctx context.Context, changed func(sid string)) error
}

// Defaults for the zero values of [Config].
const (
	DefaultMaxBodyBytes   = 1 << 20
	DefaultMaxParams      = 1000
	DefaultMaxURLBytes    = 8 << 10
	DefaultResyncInterval = time.Minute
	DefaultGrace          = 24 * time.Hour
	// MinAdminTokenBytes is the shortest admin token accepted.
	MinAdminTokenBytes = 16
	// DefaultMaxHintsPerSecond is the default of Config.MaxHintsPerSecond.
	DefaultMaxHintsPerSecond = 100
	// DefaultMaxHintBytesPerSecond is the default of
	// Config.MaxHintBytesPerSecond.
	DefaultMaxHintBytesPerSecond = 16 << 20
)

// Config configures a [Server]. Only Store and AdminToken are required.
type Config struct {
	// Store holds the accounts.
	Store Store
	// AdminToken is the bearer token AccountService calls must present.
	AdminToken store.Secret
	// Logger receives one decision line per verification and operational
	// messages. Nil discards them.
	Logger *slog.Logger
	// Registerer receives the server's metrics. Nil keeps them private.
	Registerer prometheus.Registerer
	// MaxBodyBytes limits the raw body of a verification (default 1 MiB).
	MaxBodyBytes int
	// MaxParams limits the number of form fields (default 1000).
	MaxParams int
	// MaxURLBytes limits the URL length (default 8 KiB).
	MaxURLBytes int
	// ResyncInterval is how often the whole cache is reloaded from the store
	// as a safety net (default 1 minute; negative disables it).
	ResyncInterval time.Duration
	// MaxHintsPerSecond bounds how many near-miss diagnoses the server
	// computes per second; mismatches beyond it get no hint. Default 100;
	// negative disables hints.
	MaxHintsPerSecond int
	// MaxHintBytesPerSecond bounds the bytes near-miss diagnoses may hash
	// per second, whatever the size of the requests (each diagnosis is also
	// bounded by signature.DefaultDiagnoseBudget of its request). Default
	// 16 MiB (a few milliseconds of CPU); negative disables hints.
	MaxHintBytesPerSecond int
	// DefaultGrace is RotateAuthToken's grace window when none is given
	// (default 24 h).
	DefaultGrace time.Duration
	// AccountLabel adds the account SID as a label to the verification
	// and duplicate counters. Leave it off with very many accounts.
	AccountLabel bool
	// Replay records verified webhooks so that a copy verified again
	// within its window is flagged as a duplicate
	// (VerifyWebhookResponse.duplicate). Nil turns duplicate detection
	// off: replay_check stays unset.
	Replay ReplayStore
	// Now returns the current time (default time.Now).
	Now func() time.Time
}

// Server serves VerifierService and AccountService.
type Server struct {
	cfg       Config
	log       *slog.Logger
	cache     *cache
	metrics   *metrics
	storeUp   atomic.Bool
	loadErr   atomic.Value  // string: why the last full load failed, "" if it did not
	hints     *budget       // diagnoses per second
	hintBytes *budget       // bytes hashed by diagnoses per second
	routes    *bound.Labels // route names as metric labels
	loadMu    sync.Mutex    // one full load at a time

	replay *replayChecker // nil when duplicate detection is off
}

var (
	_ twilioguardv1connect.VerifierServiceHandler = (*Server)(nil)
	_ twilioguardv1connect.AccountServiceHandler  = (*Server)(nil)
)

// New returns a server for cfg. Call [Server.Run] to load and keep the
// cache in sync before serving.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("server: no store")
	}
	if len(cfg.AdminToken) < MinAdminTokenBytes {
		return nil, fmt.Errorf("server: the admin token must have at least %d characters", MinAdminTokenBytes)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxParams <= 0 {
		cfg.MaxParams = DefaultMaxParams
	}
	if cfg.MaxURLBytes <= 0 {
		cfg.MaxURLBytes = DefaultMaxURLBytes
	}
	if cfg.ResyncInterval == 0 {
		cfg.ResyncInterval = DefaultResyncInterval
	}
	if cfg.DefaultGrace <= 0 {
		cfg.DefaultGrace = DefaultGrace
	}
	if cfg.MaxHintsPerSecond == 0 {
		cfg.MaxHintsPerSecond = DefaultMaxHintsPerSecond
	}
	if cfg.MaxHintBytesPerSecond == 0 {
		cfg.MaxHintBytesPerSecond = DefaultMaxHintBytesPerSecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	s := &Server{cfg: cfg, log: cfg.Logger, cache: newCache(), hints: newBudget(cfg.MaxHintsPerSecond), hintBytes: newBudget(cfg.MaxHintBytesPerSecond), routes: bound.NewLabels("default")}
	m, err := newMetrics(cfg.Registerer, s)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	if s.replay, err = newReplayChecker(s); err != nil {
		return nil, err
	}
	return s, nil
}

// Load reads every account from the store into the cache. Serving before a
// successful Load answers Unavailable.
func (s *Server) Load(ctx context.Context) error {
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	s.cache.beginLoad()
	next := newCache()
	err := s.cfg.Store.All(ctx, func(a *store.Account) error {
		next.set(a)
		return nil
	})
	if err != nil {
		s.cache.abortLoad()
		if errors.Is(err, store.ErrUnavailable) {
			s.storeUp.Store(false)
		}
		s.loadErr.Store(loadProblem(err))
		return fmt.Errorf("load accounts: %w", err)
	}
	s.loadErr.Store("")
	s.storeUp.Store(true)
	s.cache.replace(next, s.cfg.Now())
	return nil
}

// loadProblem names why a full load failed, for /readyz (never a secret:
// store errors carry none).
func loadProblem(err error) string {
	switch {
	case errors.Is(err, store.ErrUnavailable):
		return "store unreachable"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "store too slow"
	}
	return "store error, see the logs: " + bound.Text(err.Error(), 200)
}

// Run loads the cache and keeps it in sync until ctx ends: it follows the
// store's change notifications when it has them, reloads everything every
// ResyncInterval, and checks the store's health (reloading when the store
// comes back). It returns nil when ctx ends.
//
// A store with notifications is loaded by the first one, sent once it
// listens: a load before that could miss changes made in between, so it
// would have to be repeated. Other stores are loaded at once, unless
// [Server.Load] already did.
func (s *Server) Run(ctx context.Context) error {
	if w, ok := s.cfg.Store.(watcher); ok {
		go func() {
			err := w.Watch(ctx, func(sid string) { s.refresh(ctx, sid) })
			if err != nil && ctx.Err() == nil {
				s.log.Error("store watch ended", "error", err)
			}
		}()
	} else if loaded, _, _ := s.cache.status(); !loaded {
		if err := s.Load(ctx); err != nil {
			s.log.Warn("initial account load failed; retrying when the store answers", "error", err)
		}
	}
	resync := s.cfg.ResyncInterval
	if resync < 0 {
		resync = time.Hour * 24 * 365
	}
	reload := time.NewTicker(resync)
	defer reload.Stop()
	ping := time.NewTicker(2 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-reload.C:
			if err := s.Load(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("cache resync failed; serving from cache", "error", err)
			}
		case <-ping.C:
			s.checkStore(ctx)
		}
	}
}

func (s *Server) checkStore(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	err := s.cfg.Store.Ping(pctx)
	was := s.storeUp.Swap(err == nil)
	switch {
	case err != nil && was:
		s.log.Warn("store unreachable; verifying from cache", "error", err)
	case err == nil && !was:
		s.log.Info("store reachable again; reloading cache")
		if err := s.Load(ctx); err != nil {
			s.log.Warn("cache reload failed", "error", err)
		}
	}
}

// refresh reloads one account from the store into the cache, or the whole
// cache when sid is empty.
func (s *Server) refresh(ctx context.Context, sid string) {
	if sid == "" {
		if err := s.Load(ctx); err != nil {
			s.log.Warn("cache reload failed", "error", err)
		}
		return
	}
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	a, err := s.cfg.Store.Get(gctx, sid)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.cache.remove(sid)
	case err != nil:
		s.log.Warn("cache refresh failed", "account_sid", sid, "error", err)
	default:
		s.cache.set(a)
	}
}

// HandlerOptions are the Connect handler options of the server's services,
// for other Connect handlers on the same port: the codec of package
// connectguard, no compression of small answers, and a read limit that the
// configured body and URL limits call for.
func (s *Server) HandlerOptions() []connect.HandlerOption {
	return append(connectguard.HandlerOptions(),
		connect.WithCompressMinBytes(1024),
		connect.WithReadMaxBytes(2*s.cfg.MaxBodyBytes+8*s.cfg.MaxURLBytes+64<<10),
	)
}

// Routes registers the two Connect services (Connect, gRPC and gRPC-Web)
// on mux with [Server.HandlerOptions] and then opts, behind
// connectguard.Guard.
func (s *Server) Routes(mux *http.ServeMux, opts ...connect.HandlerOption) {
	opts = append(s.HandlerOptions(), opts...)
	path, h := twilioguardv1connect.NewVerifierServiceHandler(s, opts...)
	mux.Handle(path, connectguard.Guard(h))
	adminOpts := append(opts[:len(opts):len(opts)], connect.WithInterceptors(adminAuth(s.cfg.AdminToken)))
	path, h = twilioguardv1connect.NewAccountServiceHandler(s, adminOpts...)
	mux.Handle(path, connectguard.Guard(h))
}

// Services are the gRPC service names [Server.Routes] serves.
var Services = []string{twilioguardv1connect.VerifierServiceName, twilioguardv1connect.AccountServiceName}

// Status is what the server knows of its account data, for readiness
// probes, health checks and operators. It never names an account.
type Status struct {
	// Loaded is true once a full load from the store succeeded; before, every
	// verification answers Unavailable.
	Loaded bool
	// Synced is when the last full load finished.
	Synced time.Time
	// Accounts is the number of accounts cached.
	Accounts int
	// StoreUp is true when the store answered its last health check.
	StoreUp bool
	// LoadProblem says why the last full load failed, or is empty. It never
	// holds a secret.
	LoadProblem string
	// Unreadable counts the accounts with secrets the store could not read
	// back; their requests cannot be decided until an operator repairs them.
	Unreadable int
}

// Status reports the server's status.
func (s *Server) Status() Status {
	loaded, synced, size := s.cache.status()
	problem, _ := s.loadErr.Load().(string)
	return Status{Loaded: loaded, Synced: synced, Accounts: size, StoreUp: s.storeUp.Load(), LoadProblem: problem,
		Unreadable: s.cache.unreadable()}
}

// adminAuth refuses AccountService calls without the admin bearer token.
func adminAuth(token store.Secret) connect.UnaryInterceptorFunc {
	want := []byte(token.Reveal())
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			scheme, got, _ := strings.Cut(strings.TrimSpace(req.Header().Get("Authorization")), " ")
			if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), want) != 1 {
				return nil, connect.NewError(connect.CodeUnauthenticated,
					errors.New("admin calls need the header Authorization: Bearer <admin token>"))
			}
			return next(ctx, req)
		}
	}
}
