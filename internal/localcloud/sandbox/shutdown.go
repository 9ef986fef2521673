package sandbox

import (
	"bufio"
	"bytes"
	"log"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// shutdownFile is where a scheduled shutdown is kept, in systemd's format (USEC=, MODE=).
// It is on /run, so a reboot forgets it, as on a real OS.
const shutdownFile = "/run/systemd/shutdown/scheduled"

// perBootDir holds the scripts cloud-init runs on every boot (its scripts-per-boot module).
const perBootDir = "/var/lib/cloud/scripts/per-boot"

// shutdownScript is systemd's shutdown for this instance: shutdown [-P|-H|-h|-r|-k|-c|--show]
// [TIME] [WALL...] with TIME now, +MINUTES or HH:MM, +1 when omitted. A later shutdown is
// written to shutdownFile and the timer is the init's (SIGHUP makes it read the file), so
// no process of the instance can stop it except `shutdown -c`.
const shutdownScript = `#!/bin/sh
# ec2kit local cloud: shutdown, as systemd's, for this instance only.
[ "$(id -u)" = 0 ] || { echo "$0: must be superuser" >&2; exit 1; }
file=` + shutdownFile + `
mode=poweroff when= dry=
for a in "$@"; do
  case "$a" in
    -r|--reboot) mode=reboot ;;
    -P|--poweroff|-H|--halt|-h) mode=poweroff ;;
    -k) dry=1 ;;
    --no-wall) ;;
    -c) rm -f "$file"; kill -HUP 1; exit 0 ;;
    --show)
      [ -e "$file" ] || { echo "No scheduled shutdown." >&2; exit 0; }
      . "$file"; echo "Shutdown ($MODE) scheduled for $(date -d "@$((USEC / 1000000))")." >&2; exit 0 ;;
    -*) echo "$0: unknown option $a" >&2; exit 1 ;;
    *) [ -n "$when" ] || when=$a ;;
  esac
done
now=$(date +%s)
case "${when:=+1}" in
  now) at=$now ;;
  +*) m=${when#+}
      case "$m" in ''|*[!0-9]*) echo "Failed to parse time specification: $when" >&2; exit 1 ;; esac
      at=$((now + m * 60)) ;;
  [0-9]*:[0-9]*)
      at=$(date -d "$when" +%s 2>/dev/null) || { echo "Failed to parse time specification: $when" >&2; exit 1; }
      [ "$at" -gt "$now" ] || at=$((at + 86400)) ;;
  *) echo "Failed to parse time specification: $when" >&2; exit 1 ;;
esac
[ -z "$dry" ] || exit 0
if [ "$at" -le "$now" ]; then
  rm -f "$file"
  [ "$mode" = reboot ] && exec kill -USR2 1
  exec kill -USR1 1
fi
mkdir -p "${file%/*}"
printf 'USEC=%s000000\nMODE=%s\n' "$at" "$mode" >"$file.tmp" && mv "$file.tmp" "$file"
kill -HUP 1
echo "Shutdown scheduled for $(date -d "@$at"), use 'shutdown -c' to cancel." >&2
`

// shutdownTimer is the init's timer for a scheduled shutdown.
type shutdownTimer struct{ t *time.Timer }

// rearm replaces the timer with what shutdownFile says now (none when it is gone). When it
// fires, the init gets the signal poweroff or reboot would have sent.
func (s *shutdownTimer) rearm() {
	if s.t != nil {
		s.t.Stop()
		s.t = nil
	}
	b, err := os.ReadFile(shutdownFile)
	if err != nil {
		log.Print("no shutdown scheduled")
		return
	}
	var usec int64
	mode := "poweroff"
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "USEC":
			usec, _ = strconv.ParseInt(v, 10, 64)
		case "MODE":
			mode = v
		}
	}
	sig := syscall.SIGUSR1
	if mode == "reboot" {
		sig = syscall.SIGUSR2
	}
	at := time.UnixMicro(usec)
	log.Printf("%s scheduled for %s", mode, at.UTC().Format(time.RFC3339))
	s.t = time.AfterFunc(time.Until(at), func() { syscall.Kill(os.Getpid(), sig) })
}

// startPerBoot runs the per-boot scripts in name order, as cloud-init does on every boot,
// their output appended to userDataLog. It is not waited for: the init reaps it.
func startPerBoot(spec Spec) {
	if _, err := os.Stat(perBootDir); err != nil {
		return
	}
	cmd := exec.Command("/bin/sh", "-c", `for f in "$0"/*; do [ -x "$f" ] && "$f"; done >>`+userDataLog+` 2>&1`, perBootDir)
	cmd.Dir = "/"
	cmd.Env = scriptEnv(spec)
	if err := cmd.Start(); err != nil {
		log.Printf("per-boot scripts: %v", err)
	}
}

// scriptEnv is the environment of the boot's scripts (root's, plus the instance's).
func scriptEnv(spec Spec) []string {
	return append([]string{"HOME=/root", "USER=root", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, spec.Env...)
}
