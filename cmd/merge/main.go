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
	Job       string   `arg:"--job" placeholder:"NAME" help:"the job to merge (default: the newest on the nodes)"`
	Cat       bool     `arg:"--cat" help:"write every result to stdout in order (key order, pieces in offset order) instead of summing"`
	Header    bool     `arg:"--header" help:"with --cat: drop the first line of every result but the first"`
	From      string   `arg:"--from" placeholder:"s3://BUCKET/PREFIX/" help:"read a map job's results from its --dst instead of from instances"`
	Yes       bool     `arg:"-y,--yes" help:"accepted for symmetry with the other fleet commands (merge changes nothing)"`
	Keep      string   `arg:"--keep" placeholder:"DIR" help:"keep the pulled results in DIR/<instance-id>/ (default: a temporary directory, removed)"`
	Partial   bool     `arg:"--partial" help:"sum what there is, with a warning, when a node is unreachable or a key's result is missing or malformed"`
	hosts.Conn
	cli.VersionFlag
}

const examples = `  merge $ids | sort -t, -k2 -nr | head       # passenger counts, most frequent first
  merge $ids --keep results/                 # also keep every node's files
  merge $ids --partial                       # a node is gone: sum the rest anyway
  merge $ids --job combined-0a1b2c3d4e       # one job of several on the fleet
  merge $ids --cat --header > out.csv        # a map job's results, in order

Prints one "value,count" line per value on stdout, sorted by value. Each S3 key counts
once even when two nodes hold its result (re-executed work), after checking that the copies
agree. The job manifest (/mnt/results/<job>/.manifest) says which results the job has: one
missing, a malformed results file or a sum past 64 bits is an error naming it, so a total is
never silently short. An unreachable node is only a note when the others hold every result
(after a failover).`

func main() {
	var a args
	cli.Main(&a, "merge: sum the results of every instance", examples, func(ctx context.Context) error {
		var sels []string
		if a.From == "" || len(a.Selectors) > 0 {
			var err error
			if sels, err = cli.Selectors(a.Selectors); err != nil {
				return err
			}
		}
		return merge.Run(ctx, merge.Options{Selectors: sels, From: a.From, Job: a.Job, Cat: a.Cat, Header: a.Header, Keep: a.Keep, Partial: a.Partial, SSH: a.Conn}, os.Stdout, os.Stderr)
	})
}
