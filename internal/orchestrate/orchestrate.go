// Package orchestrate runs the data job over a fleet: it lists the S3 keys, deploys countpass
// to every node over SSH, spreads the keys (largest first, more to whoever finishes early),
// redoes on the survivors whatever a dying node held, leaves the job manifest beside the
// results, and reports progress and a final summary.
package orchestrate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"ec2kit/internal/cli"
	"ec2kit/internal/hosts"
	"ec2kit/internal/manifest"
	"ec2kit/internal/s3stream"
	"ec2kit/internal/schedule"
	"ec2kit/internal/sshx"
)

// Where the job's files live on a node.
const (
	DataDir    = "/mnt/data"    // download's output, count's input
	ResultsDir = "/mnt/results" // count's and combined's output, merge's input
)

// Steps of the job, as in the original workflow.
const (
	Download = "download" // S3 -> first 5 columns -> /mnt/data/<key>
	Count    = "count"    // /mnt/data/<key> -> /mnt/results/<key>
	Combined = "combined" // S3 -> /mnt/results/<key>, never touching local disk
)

// Options are orchestrate's flags.
type Options struct {
	Step      string
	Selectors []string
	Src       string // s3://bucket/prefix/
	Match     string // substring of the key's base name
	Force     bool   // redo every key, clearing earlier results first
	Jobs      int    // keys at once per node; 0 = the node's cores
	Yes       bool
	SSH       hosts.Conn
}

// job is one run.
type job struct {
	opts  Options
	bin   *Binary
	live  bool // stderr is a terminal: progress bar, and progress lines from countpass
	sched *schedule.Scheduler
	prog  *progress
	keys  []schedule.Key
	// missing are keys count cannot do because no node holds their downloaded data.
	missing []schedule.Key
}

// Run runs the job and returns its exit status as an error.
func Run(ctx context.Context, o Options) error {
	switch o.Step {
	case Download, Count, Combined:
	default:
		return cli.Errorf(cli.ExitUsage, "unknown step %q: one of download, count, combined", o.Step)
	}
	bucket, prefix, err := s3stream.ParseURL(o.Src)
	if err != nil {
		return cli.Errorf(cli.ExitUsage, "--src: %v", err)
	}
	if len(o.Selectors) == 0 {
		return cli.WithHint(cli.Errorf(cli.ExitUsage, "no instances given"), "pass instance ids, e.g. orchestrate combined $ids")
	}
	bin, err := LocalCountpass()
	if err != nil {
		return err
	}
	hosts, cfg, err := o.SSH.Resolve(ctx, o.Selectors)
	if err != nil {
		return err
	}
	defer cfg.Close()
	if !allIDs(o.Selectors) {
		// A name or tag may match more instances than meant: show them first.
		var labels []string
		for _, h := range hosts {
			labels = append(labels, h.Label)
		}
		if err := cli.Confirm("Run "+o.Step+" on", labels, o.Yes); err != nil {
			return err
		}
	}
	start := time.Now()
	j := &job{opts: o, bin: bin, live: cli.IsTerminal(os.Stderr)}
	if o.Step != Count {
		if j.keys, err = listKeys(ctx, bucket, prefix, o.Match); err != nil {
			return err
		}
		if len(j.keys) == 0 {
			return cli.Errorf(cli.ExitData, "no key under %s matches %q", o.Src, o.Match)
		}
	}
	nodes, unreachable := j.connect(ctx, hosts, cfg)
	defer func() {
		for _, n := range nodes {
			n.conn.Close()
		}
	}()
	if len(nodes) == 0 {
		return cli.Errorf(cli.ExitUnreachable, "no node could be reached: %s", strings.Join(unreachable, "; "))
	}
	if err := j.plan(ctx, nodes); err != nil {
		return err
	}
	labels := map[string]string{}
	for _, n := range nodes {
		labels[n.id] = n.label
	}
	j.prog = newProgress(os.Stderr, j.live, j.sched, labels)
	for _, u := range unreachable {
		j.prog.Printf("orchestrate: left out: %s\n", u)
	}
	died := j.run(ctx, nodes)
	j.prog.Close()
	return j.report(ctx, time.Since(start), len(nodes)+len(unreachable), died, unreachable)
}

// connect dials every node, prepares its directories and deploys countpass, in parallel.
// Nodes that fail are left out and described.
func (j *job) connect(ctx context.Context, hosts []sshx.Host, cfg *sshx.Config) ([]*node, []string) {
	dirs := []string{ResultsDir}
	if j.opts.Step == Download {
		dirs = []string{DataDir}
	}
	var mu sync.Mutex
	var nodes []*node
	var bad []string
	var wg sync.WaitGroup
	for _, h := range hosts {
		wg.Go(func() {
			n, err := j.connectOne(ctx, h, cfg, dirs)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				bad = append(bad, fmt.Sprintf("%s: %v", h.Label, strings.TrimPrefix(err.Error(), h.Target.ID+": ")))
				return
			}
			nodes = append(nodes, n)
		})
	}
	wg.Wait()
	return nodes, bad
}

func (j *job) connectOne(ctx context.Context, h sshx.Host, cfg *sshx.Config, dirs []string) (*node, error) {
	c, err := sshx.DialConn(ctx, h.Target, cfg)
	if err != nil {
		return nil, err
	}
	cores, err := prepare(c, j.bin, dirs, j.opts.Force)
	if err != nil {
		c.Close()
		return nil, err
	}
	return &node{id: h.Target.ID, label: h.Label, conn: c, cores: cores}, nil
}

// plan builds the scheduler: keys, nodes, results that already exist, the manifest on every
// node, and each node's countpass command line.
func (j *job) plan(ctx context.Context, nodes []*node) error {
	out := ResultsDir
	if j.opts.Step == Download {
		out = DataDir
	}
	if j.opts.Step == Count {
		if err := j.countKeys(nodes); err != nil {
			return err
		}
	} else {
		j.sched = schedule.New(j.keys)
	}
	m := &manifest.Manifest{Version: manifest.Version, Job: jobID(), Step: j.opts.Step, Src: j.opts.Src,
		Match: j.opts.Match, Created: time.Now().UTC()}
	for _, k := range j.keys {
		m.Keys = append(m.Keys, manifest.Key{Key: k.Name, Size: k.Size})
	}
	data := m.Encode()
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		jobs := j.opts.Jobs
		if jobs <= 0 {
			jobs = n.cores
		}
		// One key more than it runs at once, so a node never idles between two keys.
		j.sched.AddNode(n.id, jobs+1)
		wg.Go(func() {
			skip := false
			if !j.opts.Force {
				skip, errs[i] = j.adopt(n, out)
			}
			if errs[i] == nil {
				errs[i] = putFile(n.conn, out+"/"+manifest.Name, data)
			}
			n.cmd = j.countpassCmd(jobs, skip)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return cli.Errorf(cli.ExitUnreachable, "%s: %v", nodes[i].label, err)
		}
	}
	return nil
}

// adopt records the results a node already holds from an earlier run of the same source, so
// that a re-run skips them. It reports whether countpass should skip existing results too.
func (j *job) adopt(n *node, dir string) (bool, error) {
	b, err := readFile(n.conn, dir+"/"+manifest.Name)
	if err != nil || len(b) == 0 {
		return false, err
	}
	old, err := manifest.Decode(b)
	if err != nil || old.Src != j.opts.Src {
		// Results of another source (or unreadable): never mistake them for this job's.
		return false, nil
	}
	files, err := listFiles(n.conn, dir)
	if err != nil {
		return false, err
	}
	for _, f := range files {
		j.sched.Adopt(n.id, f)
	}
	return true, nil
}

// countpassCmd is the countpass command line for this step.
func (j *job) countpassCmd(jobs int, skipExisting bool) string {
	args := []string{j.bin.RemotePath, "--jobs", fmt.Sprint(jobs)}
	switch j.opts.Step {
	case Download:
		args = append(args, "--download", "--src", sshx.Quote(j.opts.Src), "--data", DataDir)
	case Count:
		args = append(args, "--count-files", "--data", DataDir, "--results", ResultsDir)
	default:
		args = append(args, "--keys", "--src", sshx.Quote(j.opts.Src), "--results", ResultsDir)
	}
	if skipExisting {
		args = append(args, "--skip-existing")
	}
	if j.live {
		args = append(args, "--progress")
	}
	return strings.Join(args, " ")
}

func jobID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

func allIDs(sels []string) bool {
	for _, s := range sels {
		if !strings.HasPrefix(s, "i-") || strings.Contains(s, "=") {
			return false
		}
	}
	return true
}
