// Command ec2-wait-ssh waits until instances accept SSH.
package main

import (
	"context"
	"time"

	"ec2kit/internal/cli"
	"ec2kit/internal/launch"
)

type args struct {
	Selectors []string      `arg:"positional" placeholder:"SELECTOR" help:"instance id, Name tag value or key=value tag (several: union; - or a pipe: ids on stdin)"`
	MaxWait   time.Duration `arg:"--max-wait" default:"5m" help:"give up after this long"`
	Private   bool          `arg:"--private" help:"reach the instances on their private addresses"`
	cli.VersionFlag
}

const examples = `  ec2-wait-ssh web --max-wait 2m
  ids=$(ec2-new --num 4 --type t3.micro --no-wait); ec2-wait-ssh $ids

Prints the ids of the instances that accept SSH (and, for those ec2-new launched, finished
their boot script); names the others on stderr and exits 3. Host keys are recorded on first
contact in $EC2KIT_HOME/known_hosts, by instance id.`

func main() {
	var a args
	cli.Main(&a, "ec2-wait-ssh: wait until instances accept SSH", examples, func(ctx context.Context) error {
		return launch.WaitSSH(ctx, launch.WaitOptions{Selectors: a.Selectors, MaxWait: a.MaxWait, Private: a.Private})
	})
}
