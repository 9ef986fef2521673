package sshx

import "strings"

// Host is one target and how output names it.
type Host struct {
	Target Target
	Label  string
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
