package fanout

import (
	"context"
	"io"
	"time"

	"golang.org/x/crypto/ssh"

	"ec2kit/internal/sshx"
)

// Command is what RunCommand runs on every host.
type Command struct {
	Cmd   string
	Stdin *Spool // sent to every host; nil sends an empty stdin
}

// killGrace is how long a signalled command has to end before its connection is closed
// (which makes the remote watchdog kill it).
const killGrace = time.Second

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
	if stdin != nil {
		go func() {
			io.Copy(stdin, cmd.Stdin.Reader(ctx))
			stdin.Close()
		}()
	}
	// Ctrl-C or --timeout: ask the remote side to stop (the wrapper kills the command's
	// process group), and if it does not, drop the connection (its watchdog then does).
	// sshd ignores signal requests for root logins and before OpenSSH 7.9.
	stop := context.AfterFunc(ctx, func() {
		s.Signal(ssh.SIGTERM)
		time.AfterFunc(killGrace, func() { c.Close() })
	})
	defer stop()
	err = s.Wait()
	if err == nil {
		err = stdout.Close()
	}
	return err
}
