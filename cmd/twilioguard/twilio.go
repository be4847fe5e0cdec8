package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/gen/twilioguard/v1/twilioguardv1connect"
	"github.com/twilioguard/twilioguard/twilioapi"
)

// twilioFlags are the flags of every command that calls Twilio. The
// credentials themselves come from the environment or a file, never flags.
type twilioFlags struct {
	apiURL          string
	credentialsFile string
}

func (tf *twilioFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&tf.apiURL, "twilio-api-url", "", "send every Twilio REST call to this origin instead of Twilio (a fake Twilio API in tests)")
	fs.StringVar(&tf.credentialsFile, "twilio-credentials-file", "", "file of NAME=value lines: TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN, or TWILIO_API_KEY and TWILIO_API_SECRET with TWILIO_ACCOUNT_SID (else those environment variables)")
}

// client returns a Twilio client with the credentials of the environment or
// the credentials file.
func (tf *twilioFlags) client(e env) (*twilioapi.Client, error) {
	creds, err := twilioapi.LoadCredentials(e.getenv, tf.credentialsFile)
	if errors.Is(err, twilioapi.ErrNoCredentials) {
		return nil, fmt.Errorf("no Twilio credentials: set %s and %s (or %s and %s with %s), or --twilio-credentials-file",
			twilioapi.EnvAccountSID, twilioapi.EnvAuthToken, twilioapi.EnvAPIKey, twilioapi.EnvAPISecret, twilioapi.EnvAccountSID)
	}
	if err != nil {
		return nil, err
	}
	return twilioapi.NewClient(creds, twilioapi.Options{APIURL: tf.apiURL})
}

// syncer returns the Syncer `serve --twilio-sync-interval D` runs over the
// in-process server: the parent credentials from the environment or the
// credentials file, its metrics on reg.
func (tf *twilioFlags) syncer(e env, interval time.Duration, accounts twilioapi.AccountService, reg prometheus.Registerer, log *slog.Logger) (*twilioapi.Syncer, error) {
	tw, err := tf.client(e)
	if err != nil {
		return nil, fmt.Errorf("--twilio-sync-interval: %w", err)
	}
	return twilioapi.NewSyncer(twilioapi.SyncConfig{Twilio: tw, Accounts: accounts, Interval: interval, Logger: log, Registerer: reg})
}

// formatFlag is --format text|json.
func formatFlag(fs *flag.FlagSet) *string {
	return fs.String("format", "text", "output format: text or json")
}

func checkFormat(f string) error {
	if f != "text" && f != "json" {
		return fmt.Errorf("--format %q: want text or json", f)
	}
	return nil
}

// accountsImport imports the accounts of a Twilio parent account.
func accountsImport(ctx context.Context, e env, args []string) error {
	var (
		r  remote
		tf twilioFlags
	)
	fs := newFlagSet(e, "accounts import", "accounts import [--format text|json]   (Twilio credentials from TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN, or --twilio-credentials-file)")
	r.register(e, fs)
	tf.register(fs)
	format := formatFlag(fs)
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("accounts import: unexpected arguments %q", fs.Args())
	}
	if err := checkFormat(*format); err != nil {
		return err
	}
	tw, err := tf.client(e)
	if err != nil {
		return err
	}
	svc, err := r.accountClient(e)
	if err != nil {
		return err
	}
	sum, err := twilioapi.Import(ctx, tw, svc, slog.New(slog.NewTextHandler(e.stderr, nil)))
	if err != nil {
		return err
	}
	if *format == "json" {
		return writeJSON(e.stdout, sum)
	}
	_, err = fmt.Fprintln(e.stdout, sum)
	return err
}

// viaTwilio reports whether `accounts rotate` was asked to go through
// Twilio (--via-twilio, or TWILIOGUARD_VIA_TWILIO).
func viaTwilio(e env, args []string) bool {
	on := func(v string) bool { b, err := strconv.ParseBool(v); return err == nil && b }
	for _, a := range args {
		if a == "--" {
			break
		}
		name, v, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && name == "via-twilio" {
			return !hasValue || on(v)
		}
	}
	return on(e.getenv(envName("via-twilio")))
}

// rotateViaTwilio rotates an account's auth token through Twilio.
func rotateViaTwilio(ctx context.Context, e env, args []string) error {
	var (
		r        remote
		tf       twilioFlags
		replicas multiFlag
	)
	fs := newFlagSet(e, "accounts rotate", "accounts rotate ACCOUNT --via-twilio [--grace 24h] [--replica URL]…   (Twilio credentials: the account's own SID and current token, or its parent's)")
	r.register(e, fs)
	tf.register(fs)
	fs.Bool("via-twilio", false, "create a secondary token at Twilio, make twilioguard accept it, then promote it at Twilio")
	grace := fs.Duration("grace", 24*time.Hour, "how long twilioguard keeps accepting the old token")
	delay := fs.Duration("propagation-delay", twilioapi.DefaultPropagationDelay, "wait after twilioguard accepted the new token, for every replica to see it, before promoting it")
	fs.Var(&replicas, "replica", "base URL of a replica that must also verify with the new token before it is promoted (repeatable)")
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("accounts rotate: want exactly one account (SID or alias)")
	}
	tw, err := tf.client(e)
	if err != nil {
		return err
	}
	svc, err := r.accountClient(e)
	if err != nil {
		return err
	}
	verifiers := []twilioapi.Verifier{verifierClient(&r, r.server)}
	for _, list := range replicas {
		for _, u := range splitList(list) {
			verifiers = append(verifiers, verifierClient(&r, u))
		}
	}
	acct, err := twilioapi.Rotate(ctx, fs.Arg(0), twilioapi.RotateConfig{
		Twilio: tw, Accounts: svc, Verifiers: verifiers, Grace: *grace, PropagationDelay: *delay,
		Progress: func(format string, args ...any) { fmt.Fprintf(e.stderr, "twilioguard: "+format+"\n", args...) },
	})
	if err != nil {
		return err
	}
	return printJSON(e.stdout, &twilioguardv1.RotateAuthTokenResponse{Account: acct})
}

// audit classifies every webhook URL configured at Twilio.
func audit(ctx context.Context, e env, args []string) error {
	var (
		r     remote
		tf    twilioFlags
		bases multiFlag
	)
	fs := newFlagSet(e, "audit", "audit [--protected-base-url URL]… [--format text|json]   (Twilio credentials from TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN, or --twilio-credentials-file)")
	r.register(e, fs)
	tf.register(fs)
	fs.Var(&bases, "protected-base-url", "base URL whose webhooks twilioguard verifies, e.g. https://hooks.example.com/twilio (repeatable, or comma-separated)")
	format := formatFlag(fs)
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("audit: unexpected arguments %q", fs.Args())
	}
	if err := checkFormat(*format); err != nil {
		return err
	}
	var parsed []twilioapi.BaseURL
	for _, list := range bases {
		for _, raw := range splitList(list) {
			b, err := twilioapi.ParseBaseURL(raw)
			if err != nil {
				return fmt.Errorf("--protected-base-url: %w", err)
			}
			parsed = append(parsed, b)
		}
	}
	if len(parsed) == 0 {
		fmt.Fprintln(e.stderr, "twilioguard: no --protected-base-url: every https URL counts as unprotected")
	}
	tw, err := tf.client(e)
	if err != nil {
		return err
	}
	svc, err := r.accountClient(e)
	if err != nil {
		return err
	}
	rep, err := twilioapi.Audit(ctx, tw, svc, parsed)
	if err != nil {
		return err
	}
	if *format == "json" {
		return writeJSON(e.stdout, rep)
	}
	return writeAuditText(e.stdout, rep)
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func verifierClient(r *remote, baseURL string) twilioguardv1connect.VerifierServiceClient {
	return twilioguardv1connect.NewVerifierServiceClient(r.httpClient(), strings.TrimRight(baseURL, "/"))
}

func writeAuditText(w io.Writer, rep *twilioapi.Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tRESOURCE\tNAME\tFIELD\tSTATUS\tURL")
	for _, f := range rep.Findings {
		fmt.Fprintf(tw, "%s\t%s %s\t%s\t%s\t%s\t%s\n", f.Account, strings.ReplaceAll(f.Resource, "_", " "), f.ResourceSID, f.Name, f.Field, f.Status, f.URL)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d webhook URLs: %d protected, %d unprotected, %d insecure, %d unknown-account\n", len(rep.Findings),
		rep.Counts[twilioapi.Protected], rep.Counts[twilioapi.Unprotected], rep.Counts[twilioapi.Insecure], rep.Counts[twilioapi.UnknownAccount])
	for _, n := range rep.NotAtTwilio {
		fmt.Fprintf(w, "held by twilioguard, not at Twilio: %s (%s)\n", n.Account, n.Reason)
	}
	for _, n := range rep.NotAudited {
		fmt.Fprintf(w, "not audited: %s (%s)\n", n.Account, n.Reason)
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
