//go:build linux

// Command localcloud runs the local cloud: EC2, S3 and SSH hosts on one machine.
package main

import (
	"context"

	"ec2kit/internal/cli"
	"ec2kit/internal/localcloud"
)

type args struct {
	Name   string             `arg:"--name,env:EC2KIT_LOCALCLOUD_NAME" default:"ec2kit" help:"which local cloud: its network namespace, and /run/NAME-localcloud, /var/tmp/NAME-localcloud"`
	Up     *localcloud.Up     `arg:"subcommand:up" help:"start the cloud (idempotent; needs root)"`
	Status *localcloud.Status `arg:"subcommand:status" help:"say what runs (exit 7 when down)"`
	Env    *localcloud.Env    `arg:"subcommand:env" help:"print the cloud's environment as export lines for eval"`
	Run    *localcloud.Run    `arg:"subcommand:run" help:"run CMD inside the cloud's network namespace with its environment; exits with CMD's status"`
	Fault  *localcloud.Fault  `arg:"subcommand:fault" help:"inject a failure into one instance: down, hang, slow (its NIC), up to restore, or a spot interrupt"`
	Down   *localcloud.Down   `arg:"subcommand:down" help:"stop everything; leaves no process, mount or namespace"`
	Serve  *localcloud.Serve  `arg:"subcommand:serve,hidden"`
	Boot   *localcloud.Boot   `arg:"subcommand:boot,hidden"`
	cli.VersionFlag
}

const examples = `  localcloud up
  localcloud run -- aws ec2 describe-instances
  eval "$(localcloud env)"
  localcloud fault i-0123456789abcdef0 hang
  localcloud fault i-0123456789abcdef0 interrupt --notice 10s
  localcloud up --net ec2 && localcloud fault i-0123456789abcdef0 slow --nic 0.5
  localcloud up --net ec2 --ssh-rtt 1.92s   # SSH as from a laptop 60 ms from the region
  localcloud up --net ec2 --scale 64        # 64 times slower than EC2: more nodes fit
  localcloud down`

func main() {
	var a args
	cli.Main(&a, "localcloud: a local EC2+S3+SSH cloud in a private network namespace", examples,
		func(ctx context.Context) error {
			return localcloud.Dispatch(ctx, a.Name, a.Up, a.Status, a.Env, a.Run, a.Fault, a.Down, a.Serve, a.Boot)
		})
}
