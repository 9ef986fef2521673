// Command orchestrate runs a job on a fleet: S3 objects (or line-aligned pieces of them)
// spread over every core of every instance, progress, retries, and survival of a node that
// dies.
package main

import (
	"context"
	"strings"

	"ec2kit/internal/cli"
	"ec2kit/internal/hosts"
	"ec2kit/internal/orchestrate"
)

type args struct {
	Step        string     `arg:"positional,required" placeholder:"STEP" help:"map (your --cmd over every object or piece), combined (S3 -> counts), download (S3 -> first 5 columns -> /mnt/data) or count (/mnt/data -> counts)"`
	Selectors   []string   `arg:"positional" placeholder:"SELECTOR" help:"instance id, Name tag value or key=value tag (several: union; - or a pipe: ids on stdin)"`
	Src         string     `arg:"--src" default:"s3://nyc-tlc/trip data/" help:"S3 prefix holding the objects"`
	Match       *string    `arg:"--match" help:"only keys containing this string [default: yellow; for map: every key]"`
	Field       int        `arg:"--field" placeholder:"N" help:"combined, count: count the Nth comma-separated field, from 1 [default: 4, passenger_count]"`
	Column      string     `arg:"--column" placeholder:"NAME" help:"combined, count: count the column NAME of each object's header (Parquet: that column)"`
	Cmd         string     `arg:"--cmd" help:"map: the command each item's bytes stream into (bash -c, in the job's working directory); its stdout is the item's result"`
	Split       *pieceSize `arg:"--split" placeholder:"SIZE" help:"map, combined: cut plain-text objects larger than SIZE (e.g. 64MiB) into line-aligned pieces, each an item of its own; 0: whole objects [default: combined 16MiB, so that many nodes read a large object; map: 0]"`
	Header      bool       `arg:"--header" help:"map: every piece after an object's first starts with the object's first line"`
	Put         []string   `arg:"--put,separate" placeholder:"FILE" help:"map: copy FILE into the job's working directory on every node (repeatable)"`
	Dst         string     `arg:"--dst" placeholder:"s3://BUCKET/PREFIX/" help:"map: also put every result (and the manifest) there; a re-run skips what is there (the nodes' instance profile must be allowed to write there: ec2-new --profile)"`
	Retries     int        `arg:"--retries" default:"1" help:"map: attempts after a failed one, each on another node"`
	NoSpeculate bool       `arg:"--no-speculate" help:"map: never start a second copy of an item that runs far longer than the median"`
	Job         string     `arg:"--job" placeholder:"NAME" help:"the job's name: its directory on the nodes (default: derived from what defines the job)"`
	Input       string     `arg:"--input" placeholder:"JOB" help:"count: the download job to read (default: the newest on the nodes)"`
	Force       bool       `arg:"--force" help:"redo every item: clear this job's earlier results first (default: keep and skip them)"`
	Jobs        int        `arg:"-j,--jobs" help:"items at once per node (default: the node's cores; for combined and download at least 32, which a node's network needs)"`
	Yes         bool       `arg:"-y,--yes" help:"do not ask for confirmation when a selector is a name or tag (required without a terminal)"`
	Verbose     bool       `arg:"-v,--verbose" help:"also name each item that skipped rows too short to hold the column (the final line gives the total)"`
	hosts.Conn
	cli.VersionFlag
}

// pieceSize is --split: a size, or 0 for whole objects.
type pieceSize struct{ cli.Size }

func (p *pieceSize) UnmarshalText(b []byte) error {
	if strings.TrimSpace(string(b)) == "0" {
		p.Size = 0
		return nil
	}
	return p.Size.UnmarshalText(b)
}

const examples = `  ids=$(ec2-new --num 4 --type i3en.2xlarge)
  orchestrate combined $ids                  # S3 -> count, on every core of every node
  merge $ids | sort -t, -k2 -nr | head       # the answer
  orchestrate download $ids && orchestrate count $ids   # the two-step variant
  orchestrate combined $ids --src s3://my-bucket/csv/ --match 2019
  orchestrate combined $ids --force          # redo everything
  orchestrate combined $ids --column payment_type   # another column, found by name
  orchestrate map $ids --src s3://b/big/ --split 64MiB --header --put classify.py \
      --cmd 'python3 classify.py' --dst s3://b/out/
  merge --cat --header --from s3://b/out/ > out.csv

combined counts a CSV object larger than --split (16MiB) in line-aligned pieces, each an item
of its own, so that a large object is read by many nodes at once and never makes the job's end
alone; gzip, zstd and Parquet objects stay whole.

countpass (next to this binary, or on PATH; countpass-linux-amd64 and countpass-linux-arm64
beside it for nodes of another architecture) is copied to each node over SSH. Items go out
largest first, a few per node at a time, so fast nodes take more. If a node dies, the items
it held (finished or not, unless they are in --dst) are redone on the others; a spot node
whose instance metadata warns of its interruption leaves the job at once, the same way. The
job succeeds if every item ends up done. Each job lives in a directory of its own on every node,
/mnt/results/<job>/ (download: /mnt/data/<job>/), with its manifest (.manifest) and a lock
that refuses a second run of the same job at once. A re-run of the same job skips items whose
results exist and whose object (size, ETag) is unchanged; a job over another source, match,
command or split is another job and never reuses these.

map: each item's bytes (decompressed by content; gzip, zstd and Parquet objects stay whole)
stream into --cmd on some node, with EC2KIT_KEY, EC2KIT_PART, EC2KIT_RANGE (start-end) and
EC2KIT_NODE in its environment. Its stdout, kept only when it exits 0, is the item's result:
/mnt/results/<job>/<key> or <key>.part-NNNNN. A failed item is retried on another node
(--retries); a straggler is started again on a node with room once nothing is pending.

Progress is shown when stderr is a terminal; a final line with totals and wall time is always
printed on stderr.`

func main() {
	var a args
	cli.Main(&a, "orchestrate: run a job over S3 data on a fleet", examples, func(ctx context.Context) error {
		sels, err := cli.Selectors(a.Selectors)
		if err != nil {
			return err
		}
		match := "yellow"
		if a.Step == "map" {
			match = ""
		}
		if a.Match != nil {
			match = *a.Match
		}
		split := int64(0)
		switch {
		case a.Split != nil:
			split = int64(a.Split.Size)
		case a.Step == "combined":
			split = orchestrate.CombinedPieceSize
		}
		return orchestrate.Run(ctx, orchestrate.Options{Step: a.Step, Selectors: sels, Src: a.Src, Match: match,
			Job: a.Job, Input: a.Input, Force: a.Force, Jobs: a.Jobs, Yes: a.Yes, SSH: a.Conn,
			Field: a.Field, Column: a.Column, Cmd: a.Cmd, Split: split, Header: a.Header, Put: a.Put, Dst: a.Dst, Retries: a.Retries,
			NoSpeculate: a.NoSpeculate, Verbose: a.Verbose})
	})
}
