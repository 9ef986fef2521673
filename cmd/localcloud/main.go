// Command localcloud runs the local cloud: EC2, S3 and SSH hosts on one machine.
package main

import (
	"context"

	"ec2kit/internal/cli"
)

type args struct {
	cli.VersionFlag
}

func main() {
	var a args
	cli.Main(&a, "localcloud: a local EC2+S3+SSH cloud (placeholder)", "", func(ctx context.Context) error { return nil })
}
