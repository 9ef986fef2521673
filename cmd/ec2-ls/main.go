// Command ec2-ls lists instances.
package main

import (
	"context"

	"ec2kit/internal/cli"
	"ec2kit/internal/fleet"
)

type args struct {
	Selectors []string `arg:"positional" placeholder:"SELECTOR" help:"instance id, Name tag value or key=value tag (several: union; none: all; - or a pipe: ids on stdin)"`
	State     []string `arg:"--state,separate" placeholder:"STATE" help:"only these states (repeatable or comma-separated; pending, running, stopping, stopped, shutting-down, terminated, or all) [default: all but terminated]"`
	JSON      bool     `arg:"--json" help:"one JSON object per instance and line"`
	cli.VersionFlag
}

const examples = `  ec2-ls                          # every instance that is not terminated
  ec2-ls web                      # instances whose Name tag is web
  ec2-ls role=db i-0123456789abcdef0 --state all
  ec2-ls web | ec2-rm --yes       # the id is the first column, so listings pipe into commands
  ec2-ls --json | jq -r .private_ip

Columns (header on stderr): ID NAME TYPE STATE LIFECYCLE ZONE ADDRESS LAUNCHED TAGS.
Empty fields print as -, whitespace inside a field as _, tags as k=v,k=v (Name omitted).`

func main() {
	var a args
	cli.Main(&a, "ec2-ls: list EC2 instances, one per line", examples, func(ctx context.Context) error {
		return fleet.List(ctx, fleet.ListOptions{Selectors: a.Selectors, States: a.State, JSON: a.JSON})
	})
}
