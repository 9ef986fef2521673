// Command ec2-rm terminates instances.
package main

import (
	"context"
	"time"

	"ec2kit/internal/cli"
	"ec2kit/internal/fleet"
)

type args struct {
	Selectors []string      `arg:"positional" placeholder:"SELECTOR" help:"instance id, Name tag value or key=value tag (several: union; - or a pipe: ids on stdin); at least one"`
	Yes       bool          `arg:"-y,--yes" help:"do not ask for confirmation (required without a terminal)"`
	Wait      bool          `arg:"--wait" help:"wait until every instance is terminated"`
	MaxWait   time.Duration `arg:"--max-wait" default:"10m" help:"bound on --wait"`
	cli.VersionFlag
}

const examples = `  ec2-rm web                      # asks, then terminates every instance named web
  ec2-rm $ids --yes --wait        # ids from ec2-new; waits until they are gone
  ec2-ls role=tmp | ec2-rm --yes  # ids on stdin (first word of each line)

Prints the terminated ids on stdout. Spot requests of the instances are cancelled too.
Instances already terminated are skipped, so running it twice is harmless.`

func main() {
	var a args
	cli.Main(&a, "ec2-rm: terminate EC2 instances", examples, func(ctx context.Context) error {
		return fleet.Remove(ctx, fleet.RemoveOptions{Selectors: a.Selectors, Yes: a.Yes, Wait: a.Wait, MaxWait: a.MaxWait})
	})
}
