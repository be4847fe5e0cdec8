// Command twilioguard verifies Twilio webhook signatures for many accounts.
//
//	twilioguard serve                      run the service
//	twilioguard accounts put|get|list|rm|rotate   manage accounts
//	twilioguard sign                       sign a request offline (for tests)
//	twilioguard verify                     ask the service about a request
//	twilioguard version                    print the version
//
// Every flag has an environment twin: --data-dir is TWILIOGUARD_DATA_DIR.
// Secrets come only from the environment or from files, never from flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	var exit exitError
	switch {
	case errors.As(err, &exit):
		os.Exit(int(exit))
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "twilioguard:", err)
		os.Exit(1)
	}
}

// exitError ends the program with a status code and no message.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// env gives commands their environment and standard streams.
type env struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

const usage = `twilioguard verifies Twilio webhook signatures for many accounts.

Usage:
  twilioguard serve      run the service (Connect, gRPC, gRPC-Web, Envoy ext_authz)
  twilioguard accounts   put | get | list | rm | rotate | import accounts on a running service
  twilioguard sign       compute the X-Twilio-Signature of a request (offline)
  twilioguard verify     ask a running service whether a request is genuine
  twilioguard audit      classify the webhook URLs configured at Twilio
  twilioguard version    print the version

Run "twilioguard <command> -h" for a command's flags. Every flag has an
environment twin: --data-dir is TWILIOGUARD_DATA_DIR.
`

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	e := env{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "serve":
		return serve(ctx, e, args[1:])
	case "accounts":
		return accounts(ctx, e, args[1:])
	case "sign":
		return sign(e, args[1:])
	case "verify":
		return verify(ctx, e, args[1:])
	case "audit":
		return audit(ctx, e, args[1:])
	case "version":
		fmt.Fprintln(stdout, "twilioguard", versionString())
		return nil
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// newFlagSet returns a flag set whose usage names the command.
func newFlagSet(e env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: twilioguard %s\n\nFlags (each also read from TWILIOGUARD_<NAME>):\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses the command line, then gives every flag it did not set
// the value of its environment twin (TWILIOGUARD_ + the flag name in upper
// case with '-' as '_'): the command line wins, also for repeatable flags.
func parseFlags(e env, fs *flag.FlagSet, args []string) error {
	// Flags may come before or after positional arguments.
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		args = fs.Args()
		if args[0] == "--" {
			positional = append(positional, args[1:]...)
			break
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
	if err := fs.Parse(append([]string{"--"}, positional...)); err != nil {
		return err
	}
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		if v := e.getenv(name); v != "" && err == nil && !onCommandLine[f.Name] {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s: %w", name, serr)
			}
		}
	})
	return err
}

func envName(flagName string) string {
	return "TWILIOGUARD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// multiFlag collects a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
