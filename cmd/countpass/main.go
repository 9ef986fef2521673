// Command countpass counts taxi rides by passenger count: a filter over CSV/gzip/zstd/Parquet
// files, or the per-node worker of orchestrate over S3 keys on stdin.
package main

import (
	"context"
	"os"

	"ec2kit/internal/cli"
	"ec2kit/internal/countpass"
)

type args struct {
	cli.VersionFlag
	Files      []string `arg:"positional" placeholder:"FILE" help:"files to count (filter mode; default stdin)"`
	Keys       bool     `arg:"--keys" help:"S3 keys on stdin: stream, count, write RESULTS/<key>"`
	Download   bool     `arg:"--download" help:"S3 keys on stdin: write their first 5 CSV fields (Parquet: those columns, by name) to DATA/<key>"`
	CountFiles bool     `arg:"--count-files" help:"keys on stdin: count DATA/<key>, write RESULTS/<key>"`
	Map        bool     `arg:"--map" help:"S3 items on stdin: stream each into --cmd, its stdout is RESULTS/<item> (orchestrate map)"`
	Cmd        string   `arg:"--cmd" help:"--map: the command, run under bash -c"`
	Work       string   `arg:"--work" placeholder:"DIR" help:"--map: the command's working directory"`
	Node       string   `arg:"--node" placeholder:"ID" help:"--map: this instance's id (EC2KIT_NODE)"`
	Dst        string   `arg:"--dst" placeholder:"s3://BUCKET/PREFIX/" help:"--map: also put each result there"`
	Header     bool     `arg:"--header" help:"--map: pieces after an object's first start with the object's first line"`
	Src        string   `arg:"--src" placeholder:"s3://BUCKET[/PREFIX]" help:"where the keys live (--keys, --download)"`
	Results    string   `arg:"--results" default:"/mnt/results" help:"directory of result files"`
	Data       string   `arg:"--data" default:"/mnt/data" help:"directory of downloaded data"`
	Jobs       int      `arg:"-j,--jobs" help:"keys processed at once [default: the number of CPUs; for --keys and --download at least 32, which a node's network needs]"`
	Streams    int      `arg:"--streams" help:"ranged GETs in flight per object [default: one per 4 MiB of it, from 6 to 32 (fewer when memory is short)]"`
	GETs       int      `arg:"--gets" help:"ranged GETs in flight in all, over every object read at once [default: 128]"`
	PartMiB    int64    `arg:"--part-mib" help:"size of each ranged GET, MiB [default: 4, less for an object of fewer than --streams parts, down to 1]"`
	Progress   bool     `arg:"--progress" help:"print progress lines (source bytes read) once a second per key"`
	Hold       string   `arg:"--hold" placeholder:"DIR" help:"take the lock of job directory DIR, print locked (or busy) and what DIR holds, make the writes orchestrate asks for on stdin, keep the lock until stdin ends"`
	Field      *int     `arg:"--field" placeholder:"N" help:"count the Nth comma-separated field, from 1 (Parquet: the column standing in for it, among the first 5) [default: 4]"`
	Column     string   `arg:"--column" placeholder:"NAME" help:"count the column NAME of each object's header, case-insensitively (Parquet: the column NAME)"`
}

const examples = `  countpass < yellow_tripdata_2015-01.csv
  countpass yellow_tripdata_2015-01.csv.gz yellow_tripdata_2024-01.parquet
  countpass --column payment_type yellow_tripdata_2015-01.csv
  printf 'trip data/yellow_tripdata_2015-01.csv\n' | countpass --keys --src 's3://nyc-tlc/trip data/'

With --keys/--download/--count-files, items (or bare keys) come on stdin, and stdout has one
event line per item for the orchestrator (the protocol is documented in internal/nodejob):
  ok<TAB>ID<TAB>BYTES<TAB>ROWS<TAB>SKIPPED   err<TAB>ID<TAB>CLASS<TAB>MESSAGE   progress<TAB>ID<TAB>BYTES`

func main() {
	var a args
	cli.Main(&a, "countpass: count rows by one CSV field (the 4th, passenger_count, by default); keys on stdin, results per key",
		examples, func(ctx context.Context) error {
			field := 0
			if a.Field != nil {
				if field = *a.Field; field < 1 {
					return cli.Errorf(cli.ExitUsage, "--field %d: give a field number, from 1", field)
				}
			}
			return countpass.Run(ctx, countpass.Options{
				Files: a.Files, Keys: a.Keys, Download: a.Download, CountFiles: a.CountFiles,
				Src: a.Src, Results: a.Results, Data: a.Data, Jobs: a.Jobs, Streams: a.Streams, GETs: a.GETs,
				PartSize: a.PartMiB << 20, Progress: a.Progress, Hold: a.Hold,
				Map: a.Map, Cmd: a.Cmd, Work: a.Work, Node: a.Node, Dst: a.Dst, Header: a.Header,
				Field: field, Column: a.Column,
			}, os.Stdin, os.Stdout)
		})
}
