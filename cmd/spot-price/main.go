// Command spot-price shows spot and on-demand prices of instance types.
package main

import (
	"context"

	"ec2kit/internal/cli"
	"ec2kit/internal/pricing"
)

type args struct {
	Types []string `arg:"positional,required" placeholder:"TYPE" help:"instance types, for example i3en.2xlarge"`
	Num   int      `arg:"-n,--num" default:"1" help:"also show what this many instances cost per hour"`
	JSON  bool     `arg:"--json" help:"one JSON object per type and line"`
	cli.VersionFlag
}

const examples = `  spot-price i3en.2xlarge
      i3en.2xlarge
        us-east-1c     0.2712
        us-east-1a     0.279
        on demand: 0.904, spot offers 70% savings
  spot-price c5.xlarge m5.xlarge --num 12   # adds "12 instances: spot …/h, on demand …/h"
  spot-price t3.micro --json | jq .savings_percent

Prices are USD per hour for Linux in the configured region, zones lowest first; the saving
compares the cheapest zone with on-demand. An unknown type is a usage error (exit 2). When
the pricing API cannot be reached, spot prices still print and a warning goes to stderr.`

func main() {
	var a args
	cli.Main(&a, "spot-price: current spot price per availability zone, and on-demand price", examples, func(ctx context.Context) error {
		return pricing.Run(ctx, pricing.Options{Types: a.Types, Num: a.Num, JSON: a.JSON})
	})
}
