package fanout

import (
	"context"
	"errors"
	"io"
	"path"
	"strings"

	"golang.org/x/crypto/ssh"

	"ec2kit/internal/sshx"
)

// Command is what RunCommand runs on every host.
type Command struct {
	Cmd   string
	Stdin *Spool // sent to every host; nil sends an empty stdin
}

// RunCommand runs cmd on every host, showing output through out, and returns the results.
func RunCommand(ctx context.Context, p *Pool, hosts []sshx.Host, cmd Command, out Output) []Result {
	results := p.Each(ctx, hosts, func(ctx context.Context, h sshx.Host, c *sshx.Conn) error {
		return runOne(ctx, h, c, cmd, out)
	}, out.Done)
	out.Close()
	return results
}

func runOne(ctx context.Context, h sshx.Host, c *sshx.Conn, cmd Command, out Output) error {
	s, err := c.NewSession()
	if err != nil {
		return err
	}
	defer s.Close()
	stdout, stderr, err := out.Open(h)
	if err != nil {
		return err
	}
	defer stdout.Close()
	defer stderr.Close()
	s.Stdout, s.Stderr = stdout, stderr
	var stdin io.WriteCloser
	if cmd.Stdin != nil {
		if stdin, err = s.StdinPipe(); err != nil {
			return err
		}
	}
	if err := s.Start(sshx.Wrap(cmd.Cmd)); err != nil {
		return err
	}
	spoolErr := make(chan error, 1)
	if stdin != nil {
		go func() {
			_, err := io.Copy(stdin, cmd.Stdin.Reader(ctx))
			if serr := cmd.Stdin.Err(); err != nil && serr != nil {
				// A truncated input must not pass for the whole: no EOF is sent, and the
				// dropped connection makes the watchdog end the command.
				spoolErr <- serr
				c.Close()
				return
			}
			stdin.Close()
		}()
	}
	stop := sshx.StopOnDone(ctx, c.Client, s)
	defer stop()
	err = s.Wait()
	select {
	case serr := <-spoolErr:
		return serr
	default:
	}
	if err != nil && shutsDown(cmd.Cmd) && endedByShutdown(err) {
		err = nil
	}
	if err == nil {
		err = stdout.Close()
	}
	return err
}

// shutsDown reports whether cmd asks the host to reboot or power off: for such a command the
// host's own shutdown ends the session, which is its expected end and no lost host.
func shutsDown(cmd string) bool {
	words := strings.FieldsFunc(cmd, func(r rune) bool { return strings.ContainsRune(" \t\n;&|()`'\"", r) })
	for _, w := range words {
		switch path.Base(w) {
		case "reboot", "poweroff", "halt", "shutdown":
			return true
		}
	}
	return false
}

// endedByShutdown tells the ways a shutdown ends a session: the connection closes before an
// exit status arrives, or the command is killed by a signal, which the shell around it may
// report as exit 128+N (SIGHUP, SIGTERM, SIGKILL: what a shutdown sends).
func endedByShutdown(err error) bool {
	var missing *ssh.ExitMissingError
	var ee *ssh.ExitError
	if errors.As(err, &missing) || errors.Is(err, io.EOF) {
		return true
	}
	if !errors.As(err, &ee) {
		return false
	}
	switch ee.ExitStatus() {
	case 128 + 1, 128 + 9, 128 + 15:
		return true
	}
	return ee.Signal() != ""
}
