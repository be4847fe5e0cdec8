package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/twilioapi"
)

// twilioFlags are the flags of every command that calls Twilio. The
// credentials themselves come from the environment or a file, never flags.
type twilioFlags struct {
	apiURL          string
	credentialsFile string
}

func (tf *twilioFlags) register(fs *flagSet) {
	fs.StringVar(&tf.apiURL, "twilio-api-url", "", "send every Twilio REST call to this origin instead of Twilio (a fake Twilio API in tests)")
	fs.StringVar(&tf.credentialsFile, "twilio-credentials-file", "", "file of NAME=value lines: TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN, or TWILIO_API_KEY and TWILIO_API_SECRET with TWILIO_ACCOUNT_SID (else those environment variables)")
	fs.share("twilio-api-url", "TWILIOGUARD_TWILIO_API_URL")
	fs.share("twilio-credentials-file", "TWILIOGUARD_TWILIO_CREDENTIALS_FILE")
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

// twilioCommand is what the commands that call both Twilio and the
// service share: their flags, and the two clients.
type twilioCommand struct {
	remote
	twilio twilioFlags
	format string
}

// newTwilioCommand registers the common flags, and --format text|json
// when withFormat is set.
func newTwilioCommand(e env, fs *flagSet, withFormat bool) *twilioCommand {
	c := &twilioCommand{}
	c.register(e, fs)
	c.twilio.register(fs)
	if withFormat {
		fs.StringVar(&c.format, "format", "text", "output format: text or json")
	}
	return c
}

// parse parses the command line, which must leave nargs arguments, and
// returns the Twilio client and the admin API client.
func (c *twilioCommand) parse(e env, fs *flagSet, args []string, nargs int, want string) (*twilioapi.Client, twilioapi.AccountService, error) {
	fs.maxArgs = nargs
	if err := parseFlags(e, fs, args); err != nil {
		return nil, nil, err
	}
	if fs.NArg() != nargs {
		return nil, nil, fmt.Errorf("%s: want %s", fs.Name(), want)
	}
	if c.format != "" && c.format != "text" && c.format != "json" {
		return nil, nil, fmt.Errorf("--format %q: want text or json", c.format)
	}
	tw, err := c.twilio.client(e)
	if err != nil {
		return nil, nil, err
	}
	cl, err := c.client(e, true)
	if err != nil {
		return nil, nil, err
	}
	return tw, cl.Accounts, nil
}

// print writes v as JSON with --format json, else with text.
func (c *twilioCommand) print(w io.Writer, v any, text func(io.Writer) error) error {
	if c.format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	return text(w)
}

// accountsImport imports the accounts of a Twilio parent account.
func accountsImport(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "accounts import", "accounts import [--format text|json]   (Twilio credentials from TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN, or --twilio-credentials-file)", false)
	c := newTwilioCommand(e, fs, true)
	tw, svc, err := c.parse(e, fs, args, 0, "no arguments")
	if err != nil {
		return err
	}
	sum, err := twilioapi.Import(ctx, tw, svc, slog.New(slog.NewTextHandler(e.stderr, nil)))
	if err != nil {
		return err
	}
	return c.print(e.stdout, sum, func(w io.Writer) error { _, err := fmt.Fprintln(w, sum); return err })
}

// viaTwilio reports whether `accounts rotate` was asked to go through
// Twilio (--via-twilio, or TWILIOGUARD_ACCOUNTS_ROTATE_VIA_TWILIO).
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
	return on(e.getenv("TWILIOGUARD_ACCOUNTS_ROTATE_VIA_TWILIO"))
}

// rotateViaTwilio rotates an account's auth token through Twilio.
func rotateViaTwilio(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "accounts rotate", "accounts rotate ACCOUNT --via-twilio [--grace 24h] [--replica URL]…   (Twilio credentials: the account's own SID and current token, or its parent's)", false)
	c := newTwilioCommand(e, fs, false)
	fs.Bool("via-twilio", false, "create a secondary token at Twilio, make twilioguard accept it, then promote it at Twilio")
	grace := fs.Duration("grace", 24*time.Hour, "how long twilioguard keeps accepting the old token")
	delay := fs.Duration("propagation-delay", twilioapi.DefaultPropagationDelay, "wait after twilioguard accepted the new token, for every replica to see it, before promoting it")
	var replicas multiFlag
	fs.Var(&replicas, "replica", "base URL of a replica that must also verify with the new token before it is promoted (repeatable, or comma-separated)")
	tw, svc, err := c.parse(e, fs, args, 1, "exactly one account (SID or alias)")
	if err != nil {
		return err
	}
	first, err := c.dial(e, c.server, false)
	if err != nil {
		return err
	}
	verifiers := []twilioapi.Verifier{first}
	for _, list := range replicas {
		for _, u := range splitList(list) {
			v, err := c.dial(e, u, false)
			if err != nil {
				return fmt.Errorf("--replica: %w", err)
			}
			verifiers = append(verifiers, v)
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
	fs := newFlagSet(e, "audit", "audit [--protected-base-url URL]… [--format text|json]   (Twilio credentials from TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN, or --twilio-credentials-file)", false)
	c := newTwilioCommand(e, fs, true)
	var bases multiFlag
	fs.Var(&bases, "protected-base-url", "base URL whose webhooks twilioguard verifies, e.g. https://hooks.example.com/twilio (repeatable, or comma-separated)")
	tw, svc, err := c.parse(e, fs, args, 0, "no arguments")
	if err != nil {
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
	rep, err := twilioapi.Audit(ctx, tw, svc, parsed)
	if err != nil {
		return err
	}
	return c.print(e.stdout, rep, func(w io.Writer) error { return writeAuditText(w, rep) })
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
