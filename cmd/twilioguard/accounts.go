package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/twilioguard/twilioguard/client"
	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/internal/app"
)

const accountsUsage = `Usage: twilioguard accounts <command> [flags]

Commands:
  put     --sid AC… [--alias NAME]… [--friendly-name NAME]   create or replace; what is not given is kept (token from TWILIOGUARD_AUTH_TOKEN or --auth-token-file)
  get     ACCOUNT                                          show one account (SID or alias)
  list                                                     list all accounts
  rm      ACCOUNT                                          delete an account
  rotate  ACCOUNT [--grace 24h]                            new token from TWILIOGUARD_NEW_AUTH_TOKEN or --new-auth-token-file
  rotate  ACCOUNT --via-twilio [--grace 24h]               new token created and promoted at Twilio (docs/twilio.md)
  import  [--format text|json]                             the Twilio parent account and its subaccounts (docs/twilio.md)

Common flags: --server (TWILIOGUARD_URL, default http://localhost:8080),
--data-dir (to find the generated admin token), --admin-token-file (or set
TWILIOGUARD_ADMIN_TOKEN), --ca-file, --timeout. Other flags have twins named
TWILIOGUARD_ACCOUNTS_<COMMAND>_<FLAG>.
`

// remote holds the flags every command that calls the service shares.
// They have the same environment twins in every command.
type remote struct {
	server         string
	dataDir        string
	adminTokenFile string
	caFile         string
	timeout        time.Duration
}

func (r *remote) register(e env, fs *flagSet) {
	r.registerService(fs)
	fs.StringVar(&r.dataDir, "data-dir", defaultDataDir(e), "the server's data directory, where serve wrote the admin token")
	fs.StringVar(&r.adminTokenFile, "admin-token-file", "", "file with the admin bearer token (else TWILIOGUARD_ADMIN_TOKEN, else <data-dir>/admin-token)")
	fs.share("data-dir", "TWILIOGUARD_DATA_DIR")
	fs.share("admin-token-file", "TWILIOGUARD_ADMIN_TOKEN_FILE")
}

// registerService registers the flags that reach the service without the
// admin credential: its URL, CA and call timeout.
func (r *remote) registerService(fs *flagSet) {
	fs.StringVar(&r.server, "server", "http://localhost:8080", "base URL of the twilioguard service (http:// for h2c, https:// for TLS)")
	fs.StringVar(&r.caFile, "ca-file", "", "PEM file of the CA that signed the service's TLS certificate (default: the system's roots)")
	fs.DurationVar(&r.timeout, "timeout", 10*time.Second, "timeout of each call")
	fs.share("server", "TWILIOGUARD_URL")
	fs.share("ca-file", "TWILIOGUARD_CA_FILE")
	fs.share("timeout", "TWILIOGUARD_TIMEOUT")
}

// client returns a client of the service; with admin, its AccountService
// calls carry the admin token.
func (r *remote) client(e env, admin bool) (*client.Client, error) {
	return r.dial(e, r.server, admin)
}

// dial returns a client of the service at baseURL with the flags' TLS and
// timeout settings.
func (r *remote) dial(e env, baseURL string, admin bool) (*client.Client, error) {
	opts := []client.Option{client.WithTimeout(r.timeout)}
	if r.caFile != "" {
		pem, err := os.ReadFile(r.caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s: no PEM certificate in it", r.caFile)
		}
		opts = append(opts, client.WithTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	}
	if admin {
		tok, err := app.LoadAdminToken(r.adminTokenFile, e.getenv("TWILIOGUARD_ADMIN_TOKEN"), r.dataDir, false)
		if err != nil {
			return nil, err
		}
		opts = append(opts, client.WithAdminToken(tok))
	}
	return client.New(baseURL, opts...)
}

func accounts(ctx context.Context, e env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(e.stderr, accountsUsage)
		return flag.ErrHelp
	}
	cmd, args := args[0], args[1:]
	switch {
	case cmd == "import":
		return accountsImport(ctx, e, args)
	case cmd == "rotate" && viaTwilio(e, args):
		return rotateViaTwilio(ctx, e, args)
	}
	var r remote
	fs := newFlagSet(e, "accounts "+cmd, "accounts "+cmd+" [flags]", false)
	r.register(e, fs)
	var (
		sid, friendly, authTokenFile, newTokenFile string
		aliases                                    multiFlag
		grace                                      time.Duration
		version                                    int64
		clearPrevious, clearKeys, clearAliases     bool
		clearFriendly                              bool
		pageSize                                   int
	)
	switch cmd {
	case "put":
		fs.StringVar(&sid, "sid", "", "account SID (AC + 32 hex digits)")
		fs.Var(&aliases, "alias", "alias of the account (repeatable, or comma-separated); on replace, none given keeps the stored ones")
		fs.StringVar(&friendly, "friendly-name", "", "human-readable name")
		fs.StringVar(&authTokenFile, "auth-token-file", "", "file with the auth token, - for stdin (else TWILIOGUARD_AUTH_TOKEN; on replace, empty keeps the stored token)")
		fs.Int64Var(&version, "version", 0, "replace only if the stored version is this one")
		fs.BoolVar(&clearPrevious, "clear-previous-auth-token", false, "remove the previous auth token (end a rotation's grace window now)")
		fs.BoolVar(&clearKeys, "clear-shared-keys", false, "remove the account's SharedKeys")
		fs.BoolVar(&clearAliases, "clear-aliases", false, "remove the account's aliases (unless --alias gives new ones)")
		fs.BoolVar(&clearFriendly, "clear-friendly-name", false, "remove the account's friendly name")
	case "rotate":
		fs.maxArgs = 1
		fs.StringVar(&newTokenFile, "new-auth-token-file", "", "file with the new auth token, - for stdin (else TWILIOGUARD_NEW_AUTH_TOKEN)")
		fs.DurationVar(&grace, "grace", 24*time.Hour, "how long the current token stays accepted")
	case "rm":
		fs.maxArgs = 1
		fs.Int64Var(&version, "version", 0, "delete only if the stored version is this one")
	case "list":
		fs.IntVar(&pageSize, "page-size", 100, "accounts per request")
	case "get":
		fs.maxArgs = 1
	default:
		fmt.Fprint(e.stderr, accountsUsage)
		return fmt.Errorf("accounts: unknown command %q", cmd)
	}
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	cl, err := r.client(e, true)
	if err != nil {
		return err
	}
	defer cl.Close()
	c := cl.Accounts
	arg := func() (string, error) {
		if fs.NArg() != 1 {
			return "", fmt.Errorf("accounts %s: want exactly one account (SID or alias)", cmd)
		}
		return fs.Arg(0), nil
	}
	var out proto.Message
	switch cmd {
	case "put":
		tok, err := secretFrom(e, authTokenFile, "TWILIOGUARD_AUTH_TOKEN")
		if err != nil {
			return err
		}
		var list []string
		for _, a := range aliases {
			list = append(list, strings.Split(a, ",")...)
		}
		out, err = c.PutAccount(ctx, &twilioguardv1.PutAccountRequest{Account: &twilioguardv1.Account{
			Sid: sid, Aliases: list, FriendlyName: friendly, AuthToken: tok, Version: version,
		}, ClearPreviousAuthToken: clearPrevious, ClearSharedKeys: clearKeys, ClearAliases: clearAliases, ClearFriendlyName: clearFriendly})
		if err != nil {
			return rpcError(err)
		}
	case "get":
		key, err := arg()
		if err != nil {
			return err
		}
		if out, err = c.GetAccount(ctx, &twilioguardv1.GetAccountRequest{Account: key}); err != nil {
			return rpcError(err)
		}
	case "rm":
		key, err := arg()
		if err != nil {
			return err
		}
		if out, err = c.DeleteAccount(ctx, &twilioguardv1.DeleteAccountRequest{Account: key, Version: version}); err != nil {
			return rpcError(err)
		}
	case "rotate":
		key, err := arg()
		if err != nil {
			return err
		}
		tok, err := secretFrom(e, newTokenFile, "TWILIOGUARD_NEW_AUTH_TOKEN")
		if err != nil {
			return err
		}
		if tok == "" {
			return errors.New("accounts rotate: no new token: set TWILIOGUARD_NEW_AUTH_TOKEN or --new-auth-token-file")
		}
		if out, err = c.RotateAuthToken(ctx, &twilioguardv1.RotateAuthTokenRequest{
			Account: key, NewAuthToken: tok, Grace: durationpb.New(grace),
		}); err != nil {
			return rpcError(err)
		}
	case "list":
		all := &twilioguardv1.ListAccountsResponse{}
		token := ""
		for {
			page, err := c.ListAccounts(ctx, &twilioguardv1.ListAccountsRequest{PageSize: int32(pageSize), PageToken: token})
			if err != nil {
				return rpcError(err)
			}
			all.Accounts = append(all.Accounts, page.Accounts...)
			if token = page.NextPageToken; token == "" {
				break
			}
		}
		out = all
	}
	return printJSON(e.stdout, out)
}

// secretFrom reads a secret from a file ("-" for stdin) or, without one,
// from the environment variable name.
func secretFrom(e env, file, name string) (string, error) {
	if file == "" {
		return strings.TrimSpace(e.getenv(name)), nil
	}
	var b []byte
	var err error
	if file == "-" {
		b, err = io.ReadAll(io.LimitReader(e.stdin, 4096))
	} else {
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return "", fmt.Errorf("read secret: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// rpcError turns a connect error into a message with its code.
func rpcError(err error) error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return fmt.Errorf("%s: %s", ce.Code(), ce.Message())
	}
	return err
}

func printJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.Marshal(m)
	if err != nil {
		return err
	}
	// protojson varies its spacing on purpose; re-indent for stable output.
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = w.Write(out.Bytes())
	return err
}
