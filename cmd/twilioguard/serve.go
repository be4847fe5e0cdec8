package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/twilioguard/twilioguard/internal/app"
	"github.com/twilioguard/twilioguard/replay"
	"github.com/twilioguard/twilioguard/server"
	"github.com/twilioguard/twilioguard/store/postgres"
)

// serve runs the service until ctx ends.
func serve(ctx context.Context, e env, args []string) error {
	var (
		c                   app.Config
		logFormat, logLevel string
		tf                  twilioFlags
	)
	c.Server.AccountLabel = true
	fs := newFlagSet(e, "serve", "serve [flags]", true)
	fs.StringVar(&c.Addr, "addr", app.DefaultAddr, "listen address (HTTP/1.1 and h2c, or TLS with --tls-cert-file)")
	fs.StringVar(&c.DataDir, "data-dir", defaultDataDir(e), "directory for the SQLite database and generated keys")
	fs.StringVar(&c.Store, "store", "", "account store: empty for SQLite in --data-dir, sqlite:///path/file.db, or postgres://user@host/db (password from PGPASSWORD or the DSN in TWILIOGUARD_STORE)")
	fs.StringVar(&c.SecretKeyFile, "secret-key-file", "", "file with the 32-byte base64 key that encrypts secrets at rest, and older keys on further lines (else TWILIOGUARD_SECRET_KEY, else generated in --data-dir for SQLite)")
	fs.StringVar(&c.AdminTokenFile, "admin-token-file", "", "file with the admin bearer token, at least 16 characters (else TWILIOGUARD_ADMIN_TOKEN, else generated in --data-dir)")
	fs.StringVar(&c.TLSCertFile, "tls-cert-file", "", "TLS certificate file (PEM); serves HTTPS and HTTP/2")
	fs.StringVar(&c.TLSKeyFile, "tls-key-file", "", "TLS private key file (PEM)")
	fs.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.IntVar(&c.Server.MaxBodyBytes, "max-body-bytes", server.DefaultMaxBodyBytes, "largest webhook body accepted")
	fs.IntVar(&c.Server.MaxParams, "max-params", server.DefaultMaxParams, "most form fields accepted")
	fs.IntVar(&c.Server.MaxURLBytes, "max-url-bytes", server.DefaultMaxURLBytes, "longest URL accepted")
	fs.DurationVar(&c.Server.ResyncInterval, "resync-interval", server.DefaultResyncInterval, "how often the account cache is fully reloaded from the store")
	fs.DurationVar(&c.ReplayWindow, "replay-window", replay.DefaultWindow, "how long a verified webhook is remembered to flag copies as duplicates, shared by the replicas on PostgreSQL, in memory otherwise (0: no duplicate detection)")
	fs.IntVar(&c.ReplayMaxEntries, "replay-max-entries", replay.DefaultMaxEntries, "most webhooks remembered in memory (without PostgreSQL), about 80 bytes each; when full, new webhooks answer replayCheck UNAVAILABLE until older ones expire")
	fs.DurationVar(&c.ReplayTimeout, "replay-timeout", postgres.DefaultReplayTimeout, "deadline of one duplicate check in PostgreSQL; past it the webhook is still verified, with replayCheck UNAVAILABLE")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", app.DefaultShutdownTimeout, "how long in-flight calls may take to finish on SIGTERM")
	fs.BoolVar(&c.Server.AccountLabel, "metrics-account-label", true, "label verification metrics with the account SID (turn off with very many accounts)")
	fs.IntVar(&c.Server.MaxHintsPerSecond, "max-hints-per-second", server.DefaultMaxHintsPerSecond, "near-miss diagnoses computed per second at most (negative: none)")
	fs.IntVar(&c.Server.MaxHintBytesPerSecond, "max-hint-bytes-per-second", server.DefaultMaxHintBytesPerSecond, "bytes near-miss diagnoses may hash per second at most (negative: no hints)")
	fs.StringVar(&c.ExtauthzAddr, "extauthz-addr", "", "also serve Envoy ext_authz Check on this address with a native gRPC server")
	fs.DurationVar(&c.TwilioSyncInterval, "twilio-sync-interval", 0, "import the Twilio parent account and its subaccounts at start and then this often (0: never); credentials from TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN or --twilio-credentials-file")
	tf.register(fs)
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	if c.TwilioSyncInterval > 0 {
		tw, err := tf.client(e)
		if err != nil {
			return fmt.Errorf("--twilio-sync-interval: %w", err)
		}
		c.Twilio = tw
	}
	log, err := newLogger(e.stderr, logFormat, logLevel)
	if err != nil {
		return err
	}
	c.Logger, c.Version = log, versionString()
	c.SecretKey, c.AdminToken = e.getenv("TWILIOGUARD_SECRET_KEY"), e.getenv("TWILIOGUARD_ADMIN_TOKEN")
	a, err := app.Open(ctx, c)
	if err != nil {
		return err
	}
	return errors.Join(a.Run(ctx), a.Close())
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
