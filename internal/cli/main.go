package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"

	"github.com/alexflint/go-arg"
)

// Version is the toolkit's version; release builds override it with -ldflags -X.
var Version = "0.1.0"

func versionString(name string) string {
	v := name + " (ec2kit) " + Version
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " " + s.Value[:12]
			}
		}
	}
	return v
}

// Main parses os.Args into args (a go-arg struct), then runs fn with a context that is
// cancelled on SIGINT/SIGTERM, prints any error as "name: message" on stderr and exits with
// the error's code. description is the one-line summary; examples go into --help.
func Main(args any, description, examples string, fn func(ctx context.Context) error) {
	name := filepath.Base(os.Args[0])
	p, err := arg.NewParser(arg.Config{
		Program: name,
		Exit:    os.Exit,
	}, args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: internal flag error: %v\n", name, err)
		os.Exit(ExitUsage)
	}
	help := func() {
		fmt.Fprintln(os.Stdout, description)
		fmt.Fprintln(os.Stdout)
		p.WriteHelp(os.Stdout)
		if examples != "" {
			fmt.Fprintf(os.Stdout, "\nExamples:\n%s\n", examples)
		}
		fmt.Fprintf(os.Stdout, "\n%s\n", ExitTable)
	}
	switch err := p.Parse(os.Args[1:]); {
	case errors.Is(err, arg.ErrHelp):
		help()
		os.Exit(ExitOK)
	case errors.Is(err, arg.ErrVersion):
		fmt.Println(versionString(name))
		os.Exit(ExitOK)
	case err != nil:
		p.WriteUsage(os.Stderr)
		fmt.Fprintf(os.Stderr, "%s: %v\nTry '%s --help'.\n", name, err, name)
		os.Exit(ExitUsage)
	}
	os.Exit(Run(name, fn))
}

// Run runs fn with a signal-aware context and turns its error into an exit code, printing
// it on stderr. Exposed separately so commands with special parsing can share the tail.
// The first SIGINT or SIGTERM cancels the context, so fn can clean up; a second one exits
// at once with ExitInterrupted, for when cleaning up takes too long.
func Run(name string, fn func(ctx context.Context) error) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	finished := make(chan struct{})
	defer close(finished)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		select {
		case <-sigs:
		case <-finished:
			return
		}
		cancel()
		fmt.Fprintf(os.Stderr, "%s: interrupted: stopping (interrupt again to quit at once)\n", name)
		select {
		case <-sigs:
			fmt.Fprintf(os.Stderr, "%s: interrupted again: quitting\n", name)
			os.Exit(ExitInterrupted)
		case <-finished:
		}
	}()
	err := fn(ctx)
	if err == nil {
		return ExitOK
	}
	code := CodeOf(err)
	if ctx.Err() != nil && code == ExitFailed {
		code = ExitInterrupted
	}
	if !errors.Is(err, ErrSilent) {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
	}
	if hint := HintOf(err); hint != "" {
		fmt.Fprintf(os.Stderr, "%s: hint: %s\n", name, hint)
	}
	return code
}

// ErrSilent marks an error whose story was already told on stderr (for example a fan-out
// summary); only its exit code remains to report.
var ErrSilent = errors.New("(reported above)")

// Silent returns an error that exits with code without printing anything more.
func Silent(code int) error { return &Error{Code: code, Err: ErrSilent} }
