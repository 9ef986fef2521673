package fanout

import (
	"context"
	"io"
	"strings"
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
func RunCommand(ctx context.Context, p *Pool, hosts []Host, cmd Command, out Output) []Result {
	results := p.Each(ctx, hosts, func(ctx context.Context, h Host, c *sshx.Conn) error {
		return runOne(ctx, h, c, cmd, out)
	}, out.Done)
	out.Close()
	return results
}

func runOne(ctx context.Context, h Host, c *sshx.Conn, cmd Command, out Output) error {
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
	if err := s.Start(Wrap(cmd.Cmd)); err != nil {
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

// watchdog runs the command ($1) in a session of its own, so that it can be killed as a
// whole process group: on SIGTERM/SIGHUP/SIGINT (ssh signal requests reach this shell),
// and when this shell's parent, the sshd serving the connection, goes away (the client
// died, was interrupted, or the link broke) — sshd kills nothing itself for sessions
// without a pty. The child's stdin is the session's, passed explicitly since background
// jobs otherwise get /dev/null. The watchdog polls once a second, with its output closed so
// it never holds the session open.
const watchdog = `p=$PPID
exec 3<&0
setsid sh -c "$1" <&3 3<&- &
c=$!
exec 3<&- </dev/null
trap 'kill -TERM -$c 2>/dev/null' HUP INT TERM
(while kill -0 $p 2>/dev/null; do sleep 1; done; kill -TERM -$c; sleep 2; kill -KILL -$c) >/dev/null 2>&1 &
w=$!
while :; do wait $c; r=$?; kill -0 $c 2>/dev/null || break; done
kill $w 2>/dev/null
exit $r`

// Wrap returns the remote command line that runs cmd under the watchdog. The login shell
// execs sh, so the watchdog's parent is sshd itself.
func Wrap(cmd string) string {
	return "exec sh -c " + Quote(watchdog) + " ec2kit " + Quote(cmd)
}

// Quote quotes s for a POSIX shell.
func Quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
