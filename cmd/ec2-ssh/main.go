// Command ec2-ssh runs a command on every selected instance in parallel over SSH.
package main

import (
	"context"

	"ec2kit/internal/cli"
	"ec2kit/internal/fleetcmd"
)

const examples = `  ec2-ssh i-0abc i-0def --yes --cmd 'df -h /mnt'
  ec2-ls web | ec2-ssh --yes --cmd uptime --coalesce
  ec2-ssh role=worker --yes --stdin - --cmd 'sha256sum' < data.bin
  ec2-ssh web --yes --private --timeout 5m --outdir logs --cmd 'journalctl -b'
  ec2-ssh i-0abc                      # interactive shell on one instance

Each output line is prefixed with its host ("web/i-0abc: ..."). A summary goes to stderr.
Running on more than one host asks first; without a terminal it needs --yes. Ctrl-C stops
the remote commands too. Transport failures (unreachable, timed out, host key mismatch, no
accepted key) exit 3; a non-zero remote exit status exits 1. An unreadable --key exits 7.
A command that reboots or powers off its host (reboot, poweroff, halt, shutdown) succeeds
when the host's shutdown closes its connection.`

func main() {
	var a fleetcmd.SSHArgs
	cli.Main(&a, "ec2-ssh: run a command on many instances over SSH", examples, func(ctx context.Context) error {
		return fleetcmd.SSH(ctx, &a)
	})
}
