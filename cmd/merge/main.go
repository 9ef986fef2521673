// Command merge pulls every instance's /mnt/results/ and sums the counts.
package main

import (
	"context"
	"os"

	"ec2kit/internal/cli"
	"ec2kit/internal/hosts"
	"ec2kit/internal/merge"
)

type args struct {
	Selectors []string `arg:"positional" placeholder:"SELECTOR" help:"instance id, Name tag value or key=value tag (several: union; - or a pipe: ids on stdin)"`
	Keep      string   `arg:"--keep" placeholder:"DIR" help:"keep the pulled results in DIR/<instance-id>/ (default: a temporary directory, removed)"`
	Partial   bool     `arg:"--partial" help:"sum what there is, with a warning, when a node is unreachable or a key's result is missing or malformed"`
	hosts.Conn
	cli.VersionFlag
}

const examples = `  merge $ids | sort -t, -k2 -nr | head       # passenger counts, most frequent first
  merge $ids --keep results/                 # also keep every node's files
  merge $ids --partial                       # a node is gone: sum the rest anyway

Prints one "value,count" line per value on stdout, sorted by value. Each S3 key counts
once even when two nodes hold its result (re-executed work), after checking that the copies
agree. The job manifest (/mnt/results/.manifest) says which keys the job has: a key with no
result, a malformed results file or an unreachable node is an error naming it, so a total is
never silently short.`

func main() {
	var a args
	cli.Main(&a, "merge: sum the results of every instance", examples, func(ctx context.Context) error {
		sels, err := cli.Selectors(a.Selectors)
		if err != nil {
			return err
		}
		return merge.Run(ctx, merge.Options{Selectors: sels, Keep: a.Keep, Partial: a.Partial, SSH: a.Conn}, os.Stdout, os.Stderr)
	})
}
