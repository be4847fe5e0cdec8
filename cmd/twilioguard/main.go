// Command twilioguard verifies Twilio webhook signatures for many accounts.
//
//	twilioguard serve                      run the service
//	twilioguard proxy                      verify webhooks inline, in front of an app
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
  twilioguard proxy      verify every webhook through the service, in front of an app (reverse proxy)
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
	case "proxy":
		return runProxy(ctx, e, args[1:])
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

// flagSet is a command's flags and how their environment twins are named.
type flagSet struct {
	*flag.FlagSet
	// envPrefix names the twin of a flag: envPrefix + the flag name in upper
	// case with '-' as '_'. Process commands (serve, proxy) use TWILIOGUARD_;
	// per-call commands add the command's name (TWILIOGUARD_SIGN_URL), so
	// that a variable meant for one thing never silently sets another.
	envPrefix string
	// shared maps the flags that mean the same everywhere (the service URL,
	// the data directory, the admin token file, ...) to their one name.
	shared map[string]string
	// maxArgs is how many positional arguments the command takes at most;
	// parseFlags refuses more.
	maxArgs int
}

// newFlagSet returns a flag set whose usage names the command. A process
// command's flags have twins TWILIOGUARD_<FLAG>; any other command's flags
// have twins TWILIOGUARD_<COMMAND>_<FLAG>, except the shared ones.
func newFlagSet(e env, name, synopsis string, process bool) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), envPrefix: "TWILIOGUARD_", shared: map[string]string{}}
	if !process {
		fs.envPrefix += envWord(name) + "_"
	}
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: twilioguard %s\n\nFlags (each also read from the environment variable in brackets):\n", synopsis)
		fs.VisitAll(func(f *flag.Flag) {
			fmt.Fprintf(e.stderr, "  --%s [%s]\n    \t%s", f.Name, fs.envName(f.Name), f.Usage)
			if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" && f.DefValue != "[]" {
				fmt.Fprintf(e.stderr, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(e.stderr)
		})
	}
	return fs
}

// share gives flag the environment twin env instead of the command's own.
func (fs *flagSet) share(flagName, env string) { fs.shared[flagName] = env }

// envName returns the environment twin of a flag.
func (fs *flagSet) envName(flagName string) string {
	if n, ok := fs.shared[flagName]; ok {
		return n
	}
	return fs.envPrefix + envWord(flagName)
}

// envWord turns a flag or command name into an environment variable word.
func envWord(s string) string {
	return strings.ToUpper(strings.NewReplacer("-", "_", " ", "_").Replace(s))
}

// parseFlags parses the command line, then gives every flag it did not set
// the value of its environment twin: the command line wins, also for
// repeatable flags.
func parseFlags(e env, fs *flagSet, args []string) error {
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
	if fs.NArg() > fs.maxArgs {
		return fmt.Errorf("%s: unexpected arguments %q", fs.Name(), fs.Args()[fs.maxArgs:])
	}
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := fs.envName(f.Name)
		if v := e.getenv(name); v != "" && err == nil && !onCommandLine[f.Name] {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s: %w", name, serr)
			}
		}
	})
	return err
}

// multiFlag collects a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
