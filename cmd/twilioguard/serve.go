package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/twilioguard/twilioguard/server"
	"github.com/twilioguard/twilioguard/store"
	"github.com/twilioguard/twilioguard/store/seal"
)

// File names inside the data directory.
const (
	adminTokenFile = "admin-token"
	secretKeyFile  = "secret-key"
	sqliteFile     = "twilioguard.db"
)

type serveConfig struct {
	addr            string
	dataDir         string
	storeURL        string
	secretKeyFile   string
	adminTokenFile  string
	tlsCert         string
	tlsKey          string
	logFormat       string
	logLevel        string
	maxBodyBytes    int
	maxParams       int
	maxURLBytes     int
	resyncInterval  time.Duration
	shutdownTimeout time.Duration
	accountLabel    bool
	maxHints        int
	extauthzAddr    string
}

func serve(ctx context.Context, e env, args []string) error {
	var c serveConfig
	fs := newFlagSet(e, "serve", "serve [flags]")
	fs.StringVar(&c.addr, "addr", "localhost:8080", "listen address (HTTP/1.1 and h2c, or TLS with --tls-cert-file)")
	fs.StringVar(&c.dataDir, "data-dir", defaultDataDir(e), "directory for the SQLite database and generated keys")
	fs.StringVar(&c.storeURL, "store", "", "account store: empty for SQLite in --data-dir, sqlite:///path/file.db, or postgres://user@host/db (password from PGPASSWORD or the DSN in TWILIOGUARD_STORE)")
	fs.StringVar(&c.secretKeyFile, "secret-key-file", "", "file with the 32-byte base64 key that encrypts secrets at rest, and older keys on further lines (else TWILIOGUARD_SECRET_KEY, else generated in --data-dir for SQLite)")
	fs.StringVar(&c.adminTokenFile, "admin-token-file", "", "file with the admin bearer token (else TWILIOGUARD_ADMIN_TOKEN, else generated in --data-dir)")
	fs.StringVar(&c.tlsCert, "tls-cert-file", "", "TLS certificate file (PEM); serves HTTPS and HTTP/2")
	fs.StringVar(&c.tlsKey, "tls-key-file", "", "TLS private key file (PEM)")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.IntVar(&c.maxBodyBytes, "max-body-bytes", server.DefaultMaxBodyBytes, "largest webhook body accepted")
	fs.IntVar(&c.maxParams, "max-params", server.DefaultMaxParams, "most form fields accepted")
	fs.IntVar(&c.maxURLBytes, "max-url-bytes", server.DefaultMaxURLBytes, "longest URL accepted")
	fs.DurationVar(&c.resyncInterval, "resync-interval", server.DefaultResyncInterval, "how often the account cache is fully reloaded from the store")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long in-flight calls may take to finish on SIGTERM")
	fs.BoolVar(&c.accountLabel, "metrics-account-label", true, "label verification metrics with the account SID (turn off with very many accounts)")
	fs.IntVar(&c.maxHints, "max-hints-per-second", server.DefaultMaxHintsPerSecond, "near-miss diagnoses computed per second at most (negative: none)")
	fs.StringVar(&c.extauthzAddr, "extauthz-addr", "", "also serve Envoy ext_authz Check on this address with a native gRPC server")
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected arguments %q", fs.Args())
	}
	log, err := newLogger(e.stderr, c.logFormat, c.logLevel)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}

	adminToken, err := loadAdminToken(e, c.adminTokenFile, c.dataDir, true)
	if err != nil {
		return err
	}
	st, closeStore, err := openStore(ctx, e, c, log)
	if err != nil {
		return err
	}
	defer closeStore()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := server.New(server.Config{
		Store:             st,
		AdminToken:        store.Secret(adminToken),
		Logger:            log,
		Registerer:        reg,
		Gatherer:          reg,
		MaxBodyBytes:      c.maxBodyBytes,
		MaxParams:         c.maxParams,
		MaxURLBytes:       c.maxURLBytes,
		ResyncInterval:    c.resyncInterval,
		AccountLabel:      c.accountLabel,
		MaxHintsPerSecond: c.maxHints,
		ExtraServices:     gatewayServices(),
	})
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	srv.Routes(mux)
	stopGateway, err := mountGateway(ctx, mux, srv, c, log, reg)
	if err != nil {
		return err
	}
	defer stopGateway()

	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	if c.tlsCert != "" || c.tlsKey != "" {
		protocols.SetHTTP2(true)
	} else {
		protocols.SetUnencryptedHTTP2(true)
	}
	hs.Protocols = protocols

	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	go func() { _ = srv.Run(runCtx) }()

	errc := make(chan error, 1)
	go func() {
		if c.tlsCert != "" || c.tlsKey != "" {
			errc <- hs.ServeTLS(ln, c.tlsCert, c.tlsKey)
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	log.Info("twilioguard serving", "addr", ln.Addr().String(), "version", versionString(),
		"tls", c.tlsCert != "", "store", storeKind(c.storeURL), "data_dir", c.dataDir)

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down; draining in-flight calls", "timeout", c.shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

func defaultDataDir(e env) string {
	if d := e.getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "twilioguard")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "twilioguard")
	}
	return "twilioguard-data"
}

func storeKind(u string) string {
	if strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://") {
		return "postgres"
	}
	return "sqlite"
}

// loadAdminToken finds the admin token: TWILIOGUARD_ADMIN_TOKEN, else the
// --admin-token-file, else <data-dir>/admin-token, which serve creates with
// a random token (mode 0600) when create is set.
func loadAdminToken(e env, file, dataDir string, create bool) (string, error) {
	if file != "" {
		return readSecretFile(file, "--admin-token-file")
	}
	if v := strings.TrimSpace(e.getenv("TWILIOGUARD_ADMIN_TOKEN")); v != "" {
		return v, nil
	}
	path := filepath.Join(dataDir, adminTokenFile)
	tok, err := readSecretFile(path, "admin token")
	if err == nil || !errors.Is(err, os.ErrNotExist) || !create {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("no admin token: set TWILIOGUARD_ADMIN_TOKEN or --admin-token-file, or point --data-dir at the server's data directory (%s not found)", path)
		}
		return tok, err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	tok = hex.EncodeToString(b)
	if err := writeSecretFile(path, tok); err != nil {
		return "", err
	}
	return tok, nil
}

// loadKeyring builds the keyring that encrypts secrets at rest:
// --secret-key-file or TWILIOGUARD_SECRET_KEY (first line or word the
// current key, further ones older keys), else <data-dir>/secret-key, which
// is generated when generate names a database file that does not exist yet
// (generate empty: no default key).
func loadKeyring(e env, file, dataDir, generate string) (*seal.Keyring, error) {
	var lines []string
	switch {
	case file != "":
		s, err := readSecretFile(file, "--secret-key-file")
		if err != nil {
			return nil, err
		}
		lines = strings.Fields(s)
	case strings.TrimSpace(e.getenv("TWILIOGUARD_SECRET_KEY")) != "":
		lines = strings.Fields(e.getenv("TWILIOGUARD_SECRET_KEY"))
	case generate != "":
		path := filepath.Join(dataDir, secretKeyFile)
		s, err := readSecretFile(path, "secret key")
		if errors.Is(err, os.ErrNotExist) {
			// A new key only for a new database: over existing data it
			// would make every stored secret unreadable.
			if _, serr := os.Stat(generate); serr == nil {
				return nil, fmt.Errorf("secret key %s is missing but the database %s exists: restore the key file, or set TWILIOGUARD_SECRET_KEY or --secret-key-file to the key it was sealed with", path, generate)
			}
			if s, err = seal.GenerateKey(); err == nil {
				err = writeSecretFile(path, s)
			}
		}
		if err != nil {
			return nil, err
		}
		lines = strings.Fields(s)
	default:
		return nil, errors.New("no secret key: set TWILIOGUARD_SECRET_KEY or --secret-key-file (32 random bytes, standard base64; e.g. `head -c32 /dev/urandom | base64`)")
	}
	if len(lines) == 0 {
		return nil, errors.New("secret key is empty")
	}
	keys := make([][]byte, len(lines))
	for i, l := range lines {
		k, err := seal.ParseKey(l)
		if err != nil {
			return nil, fmt.Errorf("secret key %d: %w", i+1, err)
		}
		keys[i] = k
	}
	return seal.NewKeyring(keys[0], keys[1:]...)
}

func readSecretFile(path, what string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s: %s is empty", what, path)
	}
	return s, nil
}

func writeSecretFile(path, content string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.WriteString(content + "\n"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
