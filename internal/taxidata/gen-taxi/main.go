// Command gen-taxi writes a taxi-like data set (see package taxidata) into a directory, for the
// demo, tests and benchmarks: `go run ./internal/taxidata/gen-taxi --out DIR --size 1G`.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"ec2kit/internal/cli"
	"ec2kit/internal/taxidata"
)

type args struct {
	Out   string `arg:"--out,required" help:"directory to write: objects under OUT/data/, the Parquet counts in OUT/parquet-counts.csv"`
	Size  string `arg:"--size" default:"1G" help:"total uncompressed size (K, M, G suffixes)"`
	Seed  uint64 `arg:"--seed" default:"1" help:"random seed"`
	Print bool   `arg:"--version-key" help:"print the cache key of this data set (version, seed, size) and exit"`
}

func main() {
	var a args
	cli.Main(&a, "gen-taxi: write a taxi-like data set", "  go run ./internal/taxidata/gen-taxi --out /tmp/taxi --size 64M", func(ctx context.Context) error {
		size, err := taxidata.ParseSize(a.Size)
		if err != nil {
			return cli.Errorf(cli.ExitUsage, "--size: %v", err)
		}
		if a.Print {
			fmt.Printf("%s-seed%d-%d\n", taxidata.Version, a.Seed, size)
			return nil
		}
		objs := taxidata.Plan(size, a.Seed)
		if err := taxidata.Write(objs, filepath.Join(a.Out, "data"), filepath.Join(a.Out, "parquet-counts.csv")); err != nil {
			return cli.Errorf(cli.ExitLocal, "%v", err)
		}
		fmt.Fprintf(os.Stderr, "gen-taxi: %d objects in %s\n", len(objs), filepath.Join(a.Out, "data"))
		return nil
	})
}
