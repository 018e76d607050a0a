// Package cli is the herald command: its subcommands, flags and wiring.
// cmd/herald only calls Run, so tests drive the same code in-process.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
)

// Version is set at build time (-ldflags "-X .../internal/cli.Version=v1.2.3");
// otherwise it comes from the module's build information.
var Version = ""

// version returns Herald's version.
func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

const usage = `herald — webhook delivery for tailnets

Usage:
  herald serve   [flags]   run Herald: the delivery actors behind the admin API
  herald receive [flags]   a development receiver that verifies signatures
  herald audit   [flags]   print every event's delivery history from the log (JSON lines)
  herald version           print the version (also: herald --version)

Run "herald COMMAND -h" for a command's flags.
`

// Run runs the herald command with args (without the program name) and
// returns the process exit code: 0 success, 1 failure, 2 bad usage.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "--version", "-version", "version":
		fmt.Fprintf(stdout, "herald %s\n", version())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "serve":
		err = serve(ctx, rest, stdout, stderr)
	case "receive":
		err = receive(ctx, rest, stdout, stderr)
	case "audit":
		err = audit(ctx, rest, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "herald: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "herald %s: %v\n", args[0], err)
		return 2
	default:
		fmt.Fprintf(stderr, "herald %s: %v\n", args[0], err)
		return 1
	}
}

// usageError is bad command-line input.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// parseFlags parses args, turning the flag package's errors and stray
// arguments into usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
