package sshx

import (
	"context"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// Host is one target and how output names it.
type Host struct {
	Target Target
	Label  string
}

// watchdog runs the command ($1) in a session of its own, so that it can be killed as a
// whole process group: on SIGTERM/SIGHUP/SIGINT (ssh signal requests reach this shell),
// and when the sshd serving the connection goes away (the client died, was interrupted, or
// the link broke) — sshd kills nothing itself for sessions without a pty. That is told by
// this shell's parent changing (it is reparented when sshd exits), never by whether sshd's
// pid answers: a pid may be reused, or linger as an unreaped zombie. The child's stdin is
// the session's, passed explicitly since background jobs otherwise get /dev/null. The
// watchdog polls once a second, with its output closed so it never holds the session open.
const watchdog = `p=$PPID
exec 3<&0
setsid sh -c "$1" <&3 3<&- &
c=$!
exec 3<&- </dev/null
trap 'kill -TERM -$c 2>/dev/null' HUP INT TERM
up() { if read -r s </proc/$$/stat; then s=${s##*) }; set -- $s; else set -- x $(ps -o ppid= -p $$); fi; [ "$2" = "$p" ]; }
(while up; do sleep 1; done; kill -TERM -$c; sleep 2; kill -KILL -$c) >/dev/null 2>&1 &
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

// stopGrace is how long a signalled command has to end before its connection is closed.
const stopGrace = time.Second

// StopOnDone ends the wrapped command running in s when ctx ends: it asks with SIGTERM
// (sshd ignores signal requests for root logins and before OpenSSH 7.9), and after a
// second closes the connection, which ends the command through its watchdog and unblocks
// every read and write of the session. Call the returned stop once the command is over.
func StopOnDone(ctx context.Context, c *ssh.Client, s *ssh.Session) (stop func() bool) {
	return context.AfterFunc(ctx, func() {
		s.Signal(ssh.SIGTERM)
		time.AfterFunc(stopGrace, func() { c.Close() })
	})
}
