package merge

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"time"

	"ec2kit/internal/cli"
	"ec2kit/internal/fanout"
	"ec2kit/internal/hosts"
	"ec2kit/internal/orchestrate"
	"ec2kit/internal/sshx"
)

// Options are merge's flags.
type Options struct {
	Selectors []string
	Keep      string // keep the pulled results here (one directory per instance)
	Partial   bool   // sum what there is, warning about what is missing
	SSH       hosts.Conn
}

// Run pulls every node's results, sums them and prints `value,count` lines on stdout.
func Run(ctx context.Context, o Options, stdout, stderr io.Writer) error {
	if len(o.Selectors) == 0 {
		return cli.WithHint(cli.Errorf(cli.ExitUsage, "no instances given"), "pass instance ids, e.g. merge $ids")
	}
	hosts, cfg, err := o.SSH.Resolve(ctx, o.Selectors)
	if err != nil {
		return err
	}
	defer cfg.Close()
	root := o.Keep
	if root == "" {
		if root, err = os.MkdirTemp("", "ec2kit-merge-"); err != nil {
			return cli.Errorf(cli.ExitLocal, "%v", err)
		}
		defer os.RemoveAll(root)
	}
	start := time.Now()
	pool := &fanout.Pool{Config: cfg, Timeout: 10 * time.Minute}
	results := pool.Each(ctx, hosts, func(ctx context.Context, h sshx.Host, c *sshx.Conn) error {
		dir := hostDir(root, h)
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		return pull(ctx, c, orchestrate.ResultsDir, dir)
	}, nil)
	if ctx.Err() != nil {
		return cli.Errorf(cli.ExitInterrupted, "interrupted")
	}
	var nodes []Node
	for _, r := range results {
		if r.Status != fanout.OK {
			nodes = append(nodes, Node{Name: r.Host.Label, Err: r.Err})
			continue
		}
		nodes = append(nodes, Load(r.Host.Label, os.DirFS(hostDir(root, r.Host))))
	}
	rep := Sum(nodes, o.Partial)
	for _, w := range rep.Warnings {
		fmt.Fprintf(stderr, "merge: warning: %s\n", w)
	}
	if err := rep.Err(); err != nil {
		return err
	}
	bw := bufio.NewWriter(stdout)
	var total int64
	for _, v := range slices.Sorted(maps.Keys(rep.Counts)) {
		fmt.Fprintf(bw, "%s,%d\n", v, rep.Counts[v])
		total += rep.Counts[v]
	}
	if err := bw.Flush(); err != nil {
		return cli.Errorf(cli.ExitLocal, "writing the result: %v", err)
	}
	fmt.Fprintf(stderr, "merge: %d keys from %d node(s), %d rows in %.1fs\n", rep.Keys, len(hosts), total, time.Since(start).Seconds())
	return nil
}
