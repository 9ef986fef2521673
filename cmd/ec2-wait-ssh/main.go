// Command ec2-wait-ssh waits until instances accept SSH.
package main

import (
	"context"
	"time"

	"ec2kit/internal/cli"
	"ec2kit/internal/hosts"
	"ec2kit/internal/launch"
)

type args struct {
	Selectors []string      `arg:"positional" placeholder:"SELECTOR" help:"instance id, Name tag value or key=value tag (several: union; - or a pipe: ids on stdin)"`
	MaxWait   time.Duration `arg:"--max-wait" default:"5m" help:"give up after this long"`
	Yes       bool          `arg:"-y,--yes" help:"accepted as by every fleet command; waiting changes nothing, so it never asks"`
	hosts.Conn
	cli.VersionFlag
}

const examples = `  ec2-wait-ssh web --max-wait 2m
  ids=$(ec2-new --num 4 --type t3.micro --no-wait); ec2-wait-ssh $ids --yes
  ec2-wait-ssh role=worker --private --user admin --key ~/.ssh/fleet.pem

Prints the ids of the instances that accept SSH (and, for those ec2-new launched, finished
their boot script); names the others on stderr and exits 3. A host key that differs from
the recorded one is not waited on: it is reported at once (exit 3). Host keys are recorded
on first contact in $EC2KIT_HOME/known_hosts, by instance id.`

func main() {
	var a args
	cli.Main(&a, "ec2-wait-ssh: wait until instances accept SSH", examples, func(ctx context.Context) error {
		return launch.WaitSSH(ctx, launch.WaitOptions{Selectors: a.Selectors, MaxWait: a.MaxWait, Conn: a.Conn})
	})
}
