package fleetcmd

import (
	"context"
	"errors"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"golang.org/x/crypto/ssh"
	"golang.org/x/term"

	"ec2kit/internal/cli"
	"ec2kit/internal/fanout"
	"ec2kit/internal/hosts"
	"ec2kit/internal/sshx"
)

// SSHArgs are ec2-ssh's flags.
type SSHArgs struct {
	Selectors []string `arg:"positional" help:"instance ids, Name tags or key=value tags (ids also from stdin)"`
	Cmd       string   `arg:"--cmd" help:"command to run on every host; - reads it from stdin. Without it, one host gets an interactive shell"`
	Stdin     *string  `arg:"--stdin" help:"text sent to every command's stdin; - streams local stdin to every host"`
	Group     bool     `arg:"--group" help:"print each host's output as one block when it finishes"`
	Coalesce  bool     `arg:"--coalesce" help:"print identical outputs once, under the list of their hosts"`
	JSON      bool     `arg:"--json" help:"one JSON object per output line and per host result"`
	Outdir    string   `arg:"--outdir" help:"write each host's output to DIR/<id>.out and DIR/<id>.err"`
	Yes       bool     `arg:"--yes" help:"do not ask before running on more than one host"`
	hosts.Conn
	FanOut
	cli.VersionFlag
}

func (a *SSHArgs) mode() (fanout.Mode, error) {
	n, m := 0, fanout.Prefixed
	for _, f := range []struct {
		on bool
		m  fanout.Mode
	}{{a.Group, fanout.Grouped}, {a.Coalesce, fanout.Coalesced}, {a.JSON, fanout.JSON}} {
		if f.on {
			n, m = n+1, f.m
		}
	}
	if n > 1 {
		return 0, cli.Errorf(cli.ExitUsage, "--group, --coalesce and --json exclude each other")
	}
	return m, nil
}

// SSH runs ec2-ssh.
func SSH(ctx context.Context, a *SSHArgs) error {
	if err := a.Check(); err != nil {
		return err
	}
	mode, err := a.mode()
	if err != nil {
		return err
	}
	usesStdin := a.Cmd == "-" || (a.Stdin != nil && *a.Stdin == "-")
	if a.Cmd == "-" && a.Stdin != nil && *a.Stdin == "-" {
		return cli.Errorf(cli.ExitUsage, "--cmd - and --stdin - both want stdin")
	}
	sels := a.Selectors
	if !usesStdin {
		if sels, err = cli.Selectors(a.Selectors); err != nil {
			return err
		}
	}
	if a.Cmd == "-" {
		b, err := io.ReadAll(os.Stdin)
		if err != nil {
			return cli.Errorf(cli.ExitLocal, "reading the command from stdin: %v", err)
		}
		if a.Cmd = strings.TrimSpace(string(b)); a.Cmd == "" {
			return cli.Errorf(cli.ExitUsage, "--cmd -: empty command on stdin")
		}
	}
	hs, cfg, err := a.Conn.Resolve(ctx, sels)
	if err != nil {
		return err
	}
	defer cfg.Close()
	a.Relabel(hs)
	if a.Cmd == "" {
		if len(hs) != 1 {
			return cli.Errorf(cli.ExitUsage, "--cmd is required with more than one host (%d selected)", len(hs))
		}
		return Interactive(ctx, hs[0], cfg)
	}
	if err := Confirm("Run on", hs, a.Yes); err != nil {
		return err
	}
	cmd := fanout.Command{Cmd: a.Cmd}
	if a.Stdin != nil {
		in := io.Reader(strings.NewReader(*a.Stdin))
		if *a.Stdin == "-" {
			in = os.Stdin
		}
		if cmd.Stdin, err = fanout.NewSpool(in); err != nil {
			return cli.Errorf(cli.ExitLocal, "stdin: %v", err)
		}
		defer cmd.Stdin.Close()
	}
	out, err := fanout.NewOutput(mode, os.Stdout, os.Stderr, a.Outdir)
	if err != nil {
		return cli.Errorf(cli.ExitLocal, "--outdir: %v", err)
	}
	results := fanout.RunCommand(ctx, a.Pool(cfg), hs, cmd, out)
	if cmd.Stdin != nil {
		if err := cmd.Stdin.Err(); err != nil {
			fanout.Summary(os.Stderr, results)
			return cli.Errorf(cli.ExitLocal, "--stdin: %v", err)
		}
	}
	return Finish(ctx, results)
}

// Interactive opens a login shell on one host: with a pty when stdin is a terminal, else
// with stdin piped to the shell (`ec2-ssh web < script.sh`).
func Interactive(ctx context.Context, h sshx.Host, cfg *sshx.Config) error {
	c, err := sshx.DialConn(ctx, h.Target, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		return cli.Errorf(cli.ExitUnreachable, "%s: %v", h.Label, err)
	}
	defer s.Close()
	s.Stdin, s.Stdout, s.Stderr = os.Stdin, os.Stdout, os.Stderr
	fd := int(os.Stdin.Fd())
	if term.IsTerminal(fd) {
		w, hgt, _ := term.GetSize(fd)
		t := os.Getenv("TERM")
		if t == "" {
			t = "xterm"
		}
		if err := s.RequestPty(t, hgt, w, ssh.TerminalModes{ssh.ECHO: 1}); err != nil {
			return cli.Errorf(cli.ExitUnreachable, "%s: pty: %v", h.Label, err)
		}
		old, err := term.MakeRaw(fd)
		if err == nil {
			defer term.Restore(fd, old)
		}
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for range winch {
				if w, hgt, err := term.GetSize(fd); err == nil {
					s.WindowChange(hgt, w)
				}
			}
		}()
	}
	if err := s.Shell(); err != nil {
		return cli.Errorf(cli.ExitUnreachable, "%s: %v", h.Label, err)
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	err = s.Wait()
	if lost := c.Lost(); lost != nil {
		return lost
	}
	var ee *ssh.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee):
		return cli.Silent(cli.ExitFailed)
	}
	return cli.Errorf(cli.ExitUnreachable, "%s: %v", h.Label, err)
}
