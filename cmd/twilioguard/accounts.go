package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/gen/twilioguard/v1/twilioguardv1connect"
)

const accountsUsage = `Usage: twilioguard accounts <command> [flags]

Commands:
  put     --sid AC… [--alias NAME]… [--friendly-name NAME]   create or replace (token from TWILIOGUARD_AUTH_TOKEN or --auth-token-file)
  get     ACCOUNT                                          show one account (SID or alias)
  list                                                     list all accounts
  rm      ACCOUNT                                          delete an account
  rotate  ACCOUNT [--grace 24h]                            new token from TWILIOGUARD_NEW_AUTH_TOKEN or --new-auth-token-file
  rotate  ACCOUNT --via-twilio [--grace 24h]               new token created and promoted at Twilio (docs/twilio.md)
  import  [--format text|json]                             the Twilio parent account and its subaccounts (docs/twilio.md)

Common flags: --server (default http://localhost:8080), --data-dir (to find the
generated admin token), --admin-token-file; or set TWILIOGUARD_ADMIN_TOKEN.
`

// remote holds the flags every command that calls the service shares.
type remote struct {
	server         string
	dataDir        string
	adminTokenFile string
	timeout        time.Duration
}

func (r *remote) register(e env, fs *flag.FlagSet) {
	fs.StringVar(&r.server, "server", "http://localhost:8080", "base URL of the twilioguard service")
	fs.StringVar(&r.dataDir, "data-dir", defaultDataDir(e), "the server's data directory, where serve wrote the admin token")
	fs.StringVar(&r.adminTokenFile, "admin-token-file", "", "file with the admin bearer token (else TWILIOGUARD_ADMIN_TOKEN, else <data-dir>/admin-token)")
	fs.DurationVar(&r.timeout, "timeout", 10*time.Second, "timeout of the call")
}

func (r *remote) httpClient() *http.Client {
	return &http.Client{Timeout: r.timeout}
}

func (r *remote) accountClient(e env) (twilioguardv1connect.AccountServiceClient, error) {
	tok, err := loadAdminToken(e, r.adminTokenFile, r.dataDir, false)
	if err != nil {
		return nil, err
	}
	bearer := connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+tok)
			return next(ctx, req)
		}
	})
	return twilioguardv1connect.NewAccountServiceClient(r.httpClient(), strings.TrimRight(r.server, "/"),
		connect.WithInterceptors(bearer)), nil
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
	fs := newFlagSet(e, "accounts "+cmd, "accounts "+cmd+" [flags]")
	r.register(e, fs)
	var (
		sid, friendly, authTokenFile, newTokenFile string
		aliases                                    multiFlag
		grace                                      time.Duration
		version                                    int64
		clearPrevious, clearKeys                   bool
		pageSize                                   int
	)
	switch cmd {
	case "put":
		fs.StringVar(&sid, "sid", "", "account SID (AC + 32 hex digits)")
		fs.Var(&aliases, "alias", "alias of the account (repeatable, or comma-separated)")
		fs.StringVar(&friendly, "friendly-name", "", "human-readable name")
		fs.StringVar(&authTokenFile, "auth-token-file", "", "file with the auth token, - for stdin (else TWILIOGUARD_AUTH_TOKEN; on replace, empty keeps the stored token)")
		fs.Int64Var(&version, "version", 0, "replace only if the stored version is this one")
		fs.BoolVar(&clearPrevious, "clear-previous-auth-token", false, "remove the previous auth token (end a rotation's grace window now)")
		fs.BoolVar(&clearKeys, "clear-shared-keys", false, "remove the account's SharedKeys")
	case "rotate":
		fs.StringVar(&newTokenFile, "new-auth-token-file", "", "file with the new auth token, - for stdin (else TWILIOGUARD_NEW_AUTH_TOKEN)")
		fs.DurationVar(&grace, "grace", 24*time.Hour, "how long the current token stays accepted")
	case "rm":
		fs.Int64Var(&version, "version", 0, "delete only if the stored version is this one")
	case "list":
		fs.IntVar(&pageSize, "page-size", 100, "accounts per request")
	case "get":
	default:
		fmt.Fprint(e.stderr, accountsUsage)
		return fmt.Errorf("accounts: unknown command %q", cmd)
	}
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	c, err := r.accountClient(e)
	if err != nil {
		return err
	}
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
		}, ClearPreviousAuthToken: clearPrevious, ClearSharedKeys: clearKeys})
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
