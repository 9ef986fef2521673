// Package orchestrate runs a job over a fleet: it lists the S3 objects, deploys the node
// program (countpass) to every node over SSH, locks the job's directory on each, spreads the
// items (largest first, more to whoever finishes early), redoes on the survivors whatever a
// dying node held, leaves the job manifest beside the results, and reports progress and a
// final summary. Where things live on a node and every line exchanged with it are
// nodejob's.
package orchestrate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"ec2kit/internal/cli"
	"ec2kit/internal/fleet"
	"ec2kit/internal/hosts"
	"ec2kit/internal/nodejob"
	"ec2kit/internal/s3stream"
	"ec2kit/internal/schedule"
	"ec2kit/internal/sshx"
)

// CombinedPieceSize is combined's default --split. A large object read by one node caps the
// job at that node's share of S3 (at most s3stream.MaxStreams GETs), whatever the other
// nodes do, and its end makes the job's tail; in pieces, every node reads some of it. Small
// pieces also leave items to hand out after every node's window is full, so that nodes end
// together, and make the last GETs short; each costs a request for the header and a result
// file (bench/RESULTS.md, "network model": the sizes measured).
const CombinedPieceSize = 16 << 20

// Options are orchestrate's flags.
type Options struct {
	Step      string
	Selectors []string
	Src       string // s3://bucket/prefix/
	Match     string // substring of the key
	Job       string // the job's name; default: derived from its spec
	Input     string // count: the download job to read (default: the newest)
	Force     bool   // redo every item of this job, clearing its earlier results first
	Jobs      int    // items at once per node; 0 = the node's cores
	Field     int    // combined, count: the 1-based field to count (0: the 4th)
	Column    string // combined, count: or the column of this name
	// map
	Cmd         string   // the user's command, under bash -c
	Split       int64    // map, combined: piece size; 0 keeps objects whole
	Header      bool     // pieces after an object's first start with its first line
	Put         []string // files copied into the job's working directory
	Dst         string   // s3://bucket/prefix/ the results also go to
	Retries     int      // attempts after the first, each on another node
	NoSpeculate bool     // no second copies of stragglers
	Yes         bool
	Verbose     bool // a line per item that skipped rows, besides the total
	SSH         hosts.Conn
}

// job is one run.
type job struct {
	opts  Options
	spec  nodejob.Spec
	name  string // the job's name: its directory on the nodes
	dir   string // that directory
	bins  Binaries
	insts []fleet.Instance // the fleet, for the job's cost
	live  bool             // stderr is a terminal: a progress bar
	objs  []nodejob.Object
	items map[string]nodejob.Item // result name -> item
	byID  map[string]*node
	input *nodejob.Manifest // count: the download job it reads
	// pinned maps count's items to the node holding their downloaded data.
	pinned map[string]string
	sched  *schedule.Scheduler
	prog   *progress
	// missing are items count cannot do because no node holds their downloaded data.
	missing   []schedule.Key
	puts      []putFile
	dst       *s3stream.Client // --dst
	dstPrefix string
	skipped   sync.Map // node id -> *atomic.Int64: rows too short to hold the column
	// adopted counts the results kept from an earlier run, and their objects' bytes.
	adopted      int
	adoptedBytes int64
}

// Run runs the job and returns its exit status as an error.
func Run(ctx context.Context, o Options) error {
	switch o.Step {
	case nodejob.Download, nodejob.Count, nodejob.Combined:
		if o.Cmd != "" || o.Header || len(o.Put) > 0 || o.Dst != "" {
			return cli.Errorf(cli.ExitUsage, "--cmd, --header, --put and --dst are for orchestrate map")
		}
		if o.Split < 0 || o.Split != 0 && o.Step != nodejob.Combined {
			return cli.Errorf(cli.ExitUsage, "--split is for map and combined, and takes a size (combined: 0 keeps objects whole)")
		}
		if o.Step == nodejob.Download && (o.Field != 0 || o.Column != "") {
			return cli.Errorf(cli.ExitUsage, "download keeps the first 5 columns; --field and --column are for combined and count")
		}
		if o.Field < 0 || o.Field != 0 && o.Column != "" {
			return cli.Errorf(cli.ExitUsage, "--field N counts from 1, and excludes --column")
		}
	case nodejob.Map:
		if o.Cmd == "" {
			return cli.WithHint(cli.Errorf(cli.ExitUsage, "orchestrate map needs --cmd"), "e.g. orchestrate map $ids --cmd 'wc -l'")
		}
		if o.Split < 0 {
			return cli.Errorf(cli.ExitUsage, "--split must be positive")
		}
		if o.Field != 0 || o.Column != "" {
			return cli.Errorf(cli.ExitUsage, "--field and --column are for combined and count; map runs --cmd")
		}
	default:
		return cli.Errorf(cli.ExitUsage, "unknown step %q: one of download, count, combined, map", o.Step)
	}
	bucket, prefix, err := s3stream.ParseURL(o.Src)
	if err != nil {
		return cli.Errorf(cli.ExitUsage, "--src: %v", err)
	}
	var dst *s3stream.Client
	var dstPrefix string
	if o.Dst != "" {
		b, p, err := s3stream.ParseURL(o.Dst)
		if err != nil {
			return cli.Errorf(cli.ExitUsage, "--dst: %v", err)
		}
		if p != "" && !strings.HasSuffix(p, "/") {
			p += "/"
		}
		dst, dstPrefix = &s3stream.Client{Bucket: b}, p
	}
	puts, digests, err := readPuts(o.Put)
	if err != nil {
		return err
	}
	if o.Job != "" {
		if err := nodejob.ValidName(o.Job); err != nil {
			return cli.Errorf(cli.ExitUsage, "--job: %v", err)
		}
	}
	if len(o.Selectors) == 0 {
		return cli.WithHint(cli.Errorf(cli.ExitUsage, "no instances given"), "pass instance ids, e.g. orchestrate combined $ids")
	}
	bins, err := LocalCountpass()
	if err != nil {
		return err
	}
	hosts, cfg, insts, err := o.SSH.ResolveInstances(ctx, o.Selectors)
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
	j := &job{opts: o, bins: bins, insts: insts, live: cli.IsTerminal(os.Stderr), items: map[string]nodejob.Item{}, puts: puts,
		dst: dst, dstPrefix: dstPrefix}
	j.spec.Put = digests
	if o.Step != nodejob.Count {
		var c *s3stream.Client
		if j.objs, c, err = listObjects(ctx, bucket, prefix, o.Match); err != nil {
			return err
		}
		if len(j.objs) == 0 {
			return cli.Errorf(cli.ExitData, "no key under %s matches %q", o.Src, o.Match)
		}
		if o.Split > 0 {
			if err := j.splitObjects(ctx, c); err != nil {
				return err
			}
		}
		if dst != nil {
			dst.S3 = c.S3
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
	if err := j.define(nodes); err != nil {
		return err
	}
	if nodes, err = j.lock(nodes, &unreachable); err != nil {
		return err
	}
	if err := j.plan(ctx, nodes, &unreachable); err != nil {
		return err
	}
	labels := map[string]string{}
	j.byID = map[string]*node{}
	for _, n := range nodes {
		labels[n.id] = n.label
		j.byID[n.id] = n
	}
	j.prog = newProgress(os.Stderr, j.live, j.sched, labels)
	for _, u := range unreachable {
		j.prog.Printf("orchestrate: left out: %s\n", u)
	}
	died := j.run(ctx, nodes)
	j.prog.Close()
	return j.report(ctx, time.Since(start), len(nodes)+len(unreachable), died, unreachable)
}

// connect dials every node, deploys its countpass and reads what jobs it holds, in parallel.
// Nodes that fail are left out and described.
func (j *job) connect(ctx context.Context, hosts []sshx.Host, cfg *sshx.Config) ([]*node, []string) {
	var mu sync.Mutex
	var nodes []*node
	var bad []string
	var wg sync.WaitGroup
	for _, h := range hosts {
		wg.Go(func() {
			n, err := j.connectOne(ctx, h, cfg)
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
	slices.SortFunc(nodes, func(a, b *node) int { return strings.Compare(a.id, b.id) })
	return nodes, bad
}

func (j *job) connectOne(ctx context.Context, h sshx.Host, cfg *sshx.Config) (*node, error) {
	c, err := sshx.DialConn(ctx, h.Target, cfg)
	if err != nil {
		return nil, err
	}
	n := &node{id: h.Target.ID, label: h.Label, conn: c}
	if n.bin, n.cores, err = prepare(c, j.bins); err == nil && j.opts.Step == nodejob.Count {
		n.dataJobs, err = readManifests(c, nodejob.DataRoot)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return n, nil
}

// define settles the job's spec, name and directory (count: from its input download job).
func (j *job) define(nodes []*node) error {
	o := j.opts
	j.spec.Step, j.spec.Src, j.spec.Match = o.Step, o.Src, o.Match
	j.spec.Cmd, j.spec.Split, j.spec.Header = o.Cmd, o.Split, o.Header
	j.spec.Field, j.spec.Column = o.Field, o.Column
	if o.Step == nodejob.Count {
		in, holder, err := j.countInput(nodes)
		if err != nil {
			return err
		}
		j.input = in
		j.spec.Src, j.spec.Match, j.spec.Input = in.Spec.Src, in.Spec.Match, in.Job
		j.objs = in.Objects
		j.pinned = holder
	}
	j.name = o.Job
	if j.name == "" {
		j.name = j.spec.Name()
	}
	j.dir = nodejob.ResultsDir(j.name)
	if o.Step == nodejob.Download {
		j.dir = nodejob.DataDir(j.name)
	}
	return nil
}

// lock takes the job directory's lock on every node before anything there changes: a second
// run of the same job on the same nodes is refused. A node that cannot take it (other than
// by being busy) is left out.
func (j *job) lock(nodes []*node, left *[]string) ([]*node, error) {
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { errs[i] = n.hold(j.dir) })
	}
	wg.Wait()
	var busy []string
	var kept []*node
	for i, n := range nodes {
		switch {
		case errors.Is(errs[i], errBusy):
			busy = append(busy, n.label)
		case errs[i] != nil:
			*left = append(*left, fmt.Sprintf("%s: locking %s: %v", n.label, j.dir, errs[i]))
			n.conn.Close()
		default:
			kept = append(kept, n)
		}
	}
	if len(busy) > 0 {
		return nil, cli.WithHint(cli.Errorf(cli.ExitFailed, "job %s is already running on %s", j.name, strings.Join(busy, ", ")),
			"wait for it to end, or run this one as another job (--job NAME)")
	}
	if len(kept) == 0 {
		return nil, cli.Errorf(cli.ExitUnreachable, "no node could take part: %s", strings.Join(*left, "; "))
	}
	return kept, nil
}

// plan builds the scheduler from what every node (and --dst) holds, and only then changes
// the nodes: stale results go, the manifest is written. A node whose disk refuses is left
// out.
func (j *job) plan(ctx context.Context, nodes []*node, left *[]string) error {
	var keys []schedule.Key
	for _, o := range j.objs {
		for _, it := range j.itemsOf(o) {
			j.items[it.Result()] = it
			size := it.End - it.Start
			if it.Whole() {
				size = o.Size
			}
			keys = append(keys, schedule.Key{Name: it.Result(), Size: size})
		}
	}
	if j.pinned != nil {
		var have []schedule.Key
		for _, k := range keys {
			if j.pinned[k.Name] == "" {
				j.missing = append(j.missing, k)
			} else {
				have = append(have, k)
			}
		}
		keys = have
	}
	j.sched = schedule.New(keys)
	j.sched.SetPolicy(schedule.Policy{Retries: j.opts.Retries, Durable: j.dst != nil,
		Speculate: j.opts.Step == nodejob.Map && !j.opts.NoSpeculate, Factor: 2, Min: 3 * time.Second})
	j.sched.OnCancel = j.cancel
	for k, on := range j.pinned {
		j.sched.Pin(k, on)
	}
	var inDst []string
	if !j.opts.Force {
		var err error
		if inDst, err = j.dstState(ctx); err != nil {
			return err
		}
	}
	m := &nodejob.Manifest{Version: nodejob.Version, Job: j.name, Run: runID(), Spec: j.spec,
		Created: time.Now().UTC(), Objects: j.objs}
	data := m.Encode()
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		var stale []string
		if !j.opts.Force {
			stale = j.adoptable(n)
		}
		wg.Go(func() {
			if errs[i] = n.write(stale, j.opts.Force, data); errs[i] == nil && j.opts.Step == nodejob.Map {
				errs[i] = n.putWork(nodejob.WorkDir(j.name), j.puts)
			}
		})
	}
	wg.Wait()
	if err := j.putDstManifest(ctx, data); err != nil {
		return err
	}
	if len(inDst) > 0 {
		j.sched.AddNode(dstNode, 0)
		for _, f := range inDst {
			j.adopt(dstNode, f)
		}
	}
	alive := 0
	for i, n := range nodes {
		if errs[i] != nil {
			*left = append(*left, fmt.Sprintf("%s: writing %s: %v", n.label, j.dir, errs[i]))
			n.conn.Close()
			continue
		}
		alive++
		jobs := j.opts.Jobs
		if jobs <= 0 {
			jobs = nodejob.Jobs(j.opts.Step, n.cores)
		}
		// One item more than it runs at once, so a node never idles between two.
		j.sched.AddNode(n.id, jobs+1)
		for _, f := range n.valid {
			j.adopt(n.id, f)
		}
		n.cmd = j.countpassCmd(n, jobs)
	}
	if alive == 0 {
		return cli.Errorf(cli.ExitUnreachable, "no node could take part: %s", strings.Join(*left, "; "))
	}
	return nil
}

// adopt keeps a result made by an earlier run.
func (j *job) adopt(node, name string) {
	if j.sched.Adopt(node, name) {
		j.adopted++
		j.adoptedBytes += j.items[name].End - j.items[name].Start
	}
}

// adoptable sorts a node's files in the job directory into results this run can keep (made
// by the same job from the same version of their object) and stale ones, which it returns.
func (j *job) adoptable(n *node) (stale []string) {
	for _, f := range n.files {
		if it, ok := j.items[f]; ok && n.old != nil && n.old.Job == j.name && sameObject(n.old, it) {
			n.valid = append(n.valid, f)
		} else {
			stale = append(stale, f)
		}
	}
	return stale
}

// countpassCmd is the countpass command line for this step on node n.
func (j *job) countpassCmd(n *node, jobs int) string {
	args := []string{n.bin.RemotePath, "--jobs", fmt.Sprint(jobs)}
	switch j.opts.Step {
	case nodejob.Download:
		args = append(args, "--download", "--src", sshx.Quote(j.spec.Src), "--data", j.dir)
	case nodejob.Count:
		args = append(args, "--count-files", "--data", nodejob.DataDir(j.input.Job), "--results", j.dir)
	case nodejob.Map:
		args = append(args, "--map", "--src", sshx.Quote(j.spec.Src), "--results", j.dir,
			"--work", nodejob.WorkDir(j.name), "--node", sshx.Quote(n.id), "--cmd", sshx.Quote(j.opts.Cmd))
		if j.opts.Header {
			args = append(args, "--header")
		}
		if j.dst != nil {
			args = append(args, "--dst", sshx.Quote("s3://"+j.dst.Bucket+"/"+j.dstPrefix))
		}
	default:
		args = append(args, "--keys", "--src", sshx.Quote(j.spec.Src), "--results", j.dir)
	}
	if j.opts.Field != 0 {
		args = append(args, "--field", fmt.Sprint(j.opts.Field))
	}
	if j.opts.Column != "" {
		args = append(args, "--column", sshx.Quote(j.opts.Column))
	}
	// Progress lines feed the scheduler (the last items go to the nodes with the least left
	// to read) as well as the progress bar.
	args = append(args, "--progress")
	return sshx.Wrap(strings.Join(args, " "))
}

func runID() string {
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
