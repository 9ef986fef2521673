package merge

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"slices"
	"time"

	"ec2kit/internal/awsconf"
	"ec2kit/internal/cli"
	"ec2kit/internal/fanout"
	"ec2kit/internal/hosts"
	"ec2kit/internal/nodejob"
	"ec2kit/internal/sshx"
)

// Options are merge's flags.
type Options struct {
	Selectors []string
	Job       string // the job to merge; default: the newest on the nodes
	Cat       bool   // concatenate the results in order instead of summing
	Header    bool   // with Cat: drop the first line of every result but the first
	Keep      string // keep the pulled results here (one directory per instance)
	Partial   bool   // use what there is, warning about what is missing
	From      string // s3://bucket/prefix/: read a map job's --dst instead of nodes
	SSH       hosts.Conn
}

// Run pulls every node's results of the job, checks them and prints the sum (`value,count`
// lines) or, with Cat, the results in order.
func Run(ctx context.Context, o Options, stdout, stderr io.Writer) error {
	if o.From != "" {
		if len(o.Selectors) > 0 {
			return cli.Errorf(cli.ExitUsage, "--from reads S3, not instances: give one or the other")
		}
		return runFrom(ctx, o, stdout, stderr)
	}
	if len(o.Selectors) == 0 {
		return cli.WithHint(cli.Errorf(cli.ExitUsage, "no instances given"), "pass instance ids, e.g. merge $ids (or --from s3://...)")
	}
	if o.Job != "" {
		if err := nodejob.ValidName(o.Job); err != nil {
			return cli.Errorf(cli.ExitUsage, "--job: %v", err)
		}
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
	// First the manifests of every job on every node (small), to choose the job; then only
	// that job's results.
	manifests := make([][]*nodejob.Manifest, len(hosts))
	index := map[string]int{}
	for i, h := range hosts {
		index[h.Target.ID] = i
	}
	first := pool.Each(ctx, hosts, func(ctx context.Context, h sshx.Host, c *sshx.Conn) error {
		ms, err := readManifests(c)
		manifests[index[h.Target.ID]] = ms
		return err
	}, nil)
	if ctx.Err() != nil {
		return cli.Errorf(cli.ExitInterrupted, "interrupted")
	}
	var all []*nodejob.Manifest
	for _, ms := range manifests {
		for _, m := range ms {
			if o.Job == "" || m.Job == o.Job {
				all = append(all, m)
			}
		}
	}
	m := nodejob.Newest(all...)
	if m == nil {
		what := "any job's results"
		if o.Job != "" {
			what = "results of job " + o.Job
		}
		return cli.WithHint(cli.Errorf(cli.ExitData, "%w: no reachable node holds %s in %s", ErrNoJob, what, nodejob.ResultsRoot),
			"run orchestrate on these instances first (or name the right --job)")
	}
	var reachable []sshx.Host
	nodes := make([]Node, len(hosts))
	for _, r := range first {
		if r.Status != fanout.OK {
			nodes[index[r.Host.Target.ID]] = Node{Name: r.Host.Label, Err: r.Err}
			continue
		}
		reachable = append(reachable, r.Host)
	}
	pulled := pool.Each(ctx, reachable, func(ctx context.Context, h sshx.Host, c *sshx.Conn) error {
		dir := hostDir(root, h)
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		return pull(ctx, c, nodejob.ResultsDir(m.Job), dir)
	}, nil)
	if ctx.Err() != nil {
		return cli.Errorf(cli.ExitInterrupted, "interrupted")
	}
	for _, r := range pulled {
		i := index[r.Host.Target.ID]
		if r.Status != fanout.OK {
			nodes[i] = Node{Name: r.Host.Label, Err: r.Err}
			continue
		}
		nodes[i] = Load(r.Host.Label, os.DirFS(hostDir(root, r.Host)))
	}
	return output(Check(nodes, m, o.Cat, o.Partial), o, fmt.Sprintf("%d node(s)", len(reachable)), start, stdout, stderr)
}

// runFrom merges a map job's results from its --dst.
func runFrom(ctx context.Context, o Options, stdout, stderr io.Writer) error {
	start := time.Now()
	n, m, err := fromS3(ctx, o.From)
	switch {
	case errors.Is(err, ErrNoJob):
		return cli.WithHint(cli.Errorf(cli.ExitData, "%v", err), "run orchestrate map with --dst first")
	case errors.Is(err, nodejob.ErrManifest):
		return cli.Errorf(cli.ExitData, "%s: %v", o.From, err)
	case err != nil:
		return awsconf.Err("reading "+o.From, err)
	}
	if o.Job != "" && m.Job != o.Job {
		return cli.Errorf(cli.ExitData, "%s holds job %s, not %s", o.From, m.Job, o.Job)
	}
	return output(Check([]Node{n}, m, o.Cat, o.Partial), o, o.From, start, stdout, stderr)
}

// output prints the checked report: the sum, or the results in order.
func output(rep Report, o Options, from string, start time.Time, stdout, stderr io.Writer) error {
	for _, w := range rep.Warnings {
		fmt.Fprintf(stderr, "merge: warning: %s\n", w)
	}
	if err := rep.Err(); err != nil {
		return err
	}
	bw := bufio.NewWriterSize(stdout, 1<<20)
	var rows int64
	var err error
	if o.Cat {
		rows, err = writeCat(bw, rep.Order, o.Header)
	} else {
		for _, v := range slices.Sorted(maps.Keys(rep.Counts)) {
			fmt.Fprintf(bw, "%s,%d\n", v, rep.Counts[v])
			rows += rep.Counts[v]
		}
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return cli.Errorf(cli.ExitLocal, "writing the result: %v", err)
	}
	what := "rows"
	if o.Cat {
		what = "lines"
	}
	fmt.Fprintf(stderr, "merge: job %s: %d result(s) from %s, %d %s in %.1fs\n",
		rep.Job.Job, rep.Items, from, rows, what, time.Since(start).Seconds())
	return nil
}

// writeCat writes the results in order; with header, every result but the first loses its
// first line (each piece's output carries its own header). It returns the lines written.
func writeCat(w io.Writer, order []Piece, header bool) (int64, error) {
	var lines int64
	for i, p := range order {
		b, err := fs.ReadFile(p.Node.FS, p.Name)
		if err != nil {
			return lines, err
		}
		if header && i > 0 {
			if j := bytes.IndexByte(b, '\n'); j >= 0 {
				b = b[j+1:]
			} else {
				b = nil
			}
		}
		lines += int64(bytes.Count(b, []byte{'\n'}))
		if _, err := w.Write(b); err != nil {
			return lines, err
		}
	}
	return lines, nil
}
