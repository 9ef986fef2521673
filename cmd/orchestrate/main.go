// Command orchestrate runs the data job on a fleet: S3 keys spread over every core of every
// instance, progress, and survival of a node that dies.
package main

import (
	"context"

	"ec2kit/internal/cli"
	"ec2kit/internal/hosts"
	"ec2kit/internal/orchestrate"
)

type args struct {
	Step      string   `arg:"positional,required" placeholder:"STEP" help:"download (S3 -> first 5 columns -> /mnt/data), count (/mnt/data -> /mnt/results) or combined (S3 -> /mnt/results)"`
	Selectors []string `arg:"positional" placeholder:"SELECTOR" help:"instance id, Name tag value or key=value tag (several: union; - or a pipe: ids on stdin)"`
	Src       string   `arg:"--src" default:"s3://nyc-tlc/trip data/" help:"S3 prefix holding the objects"`
	Match     string   `arg:"--match" default:"yellow" help:"only keys containing this string"`
	Job       string   `arg:"--job" placeholder:"NAME" help:"the job's name: its directory on the nodes (default: derived from the step, source, match and column)"`
	Input     string   `arg:"--input" placeholder:"JOB" help:"count: the download job to read (default: the newest on the nodes)"`
	Force     bool     `arg:"--force" help:"redo every key: clear the nodes' earlier results first (default: keep and skip them)"`
	Jobs      int      `arg:"-j,--jobs" help:"keys at once per node (default: the node's cores)"`
	Yes       bool     `arg:"-y,--yes" help:"do not ask for confirmation when a selector is a name or tag (required without a terminal)"`
	hosts.Conn
	cli.VersionFlag
}

const examples = `  ids=$(ec2-new --num 4 --type i3en.2xlarge)
  orchestrate combined $ids                  # S3 -> count, on every core of every node
  merge $ids | sort -t, -k2 -nr | head       # the answer
  orchestrate download $ids && orchestrate count $ids   # the two-step variant
  orchestrate combined $ids --src s3://my-bucket/csv/ --match 2019
  orchestrate combined $ids --force          # redo everything

countpass (next to this binary, or on PATH) is copied to each node over SSH. Keys go out
largest first, a few per node at a time, so fast nodes take more. If a node dies, the keys
it held (finished or not) are redone on the others; the job succeeds if every key ends up
done on a live node. Each job lives in a directory of its own on every node,
/mnt/results/<job>/ (download: /mnt/data/<job>/), with its manifest (.manifest) and a lock
that refuses a second run of the same job at once. A re-run of the same job skips keys whose
results exist and whose object (size, ETag) is unchanged; a job over another source, match
or column is another job and never reuses these. Progress is shown when stderr is a
terminal; a final line with totals and wall time is always printed on stderr.`

func main() {
	var a args
	cli.Main(&a, "orchestrate: run the S3 -> count job on a fleet", examples, func(ctx context.Context) error {
		sels, err := cli.Selectors(a.Selectors)
		if err != nil {
			return err
		}
		return orchestrate.Run(ctx, orchestrate.Options{Step: a.Step, Selectors: sels, Src: a.Src, Match: a.Match,
			Job: a.Job, Input: a.Input, Force: a.Force, Jobs: a.Jobs, Yes: a.Yes, SSH: a.Conn})
	})
}
