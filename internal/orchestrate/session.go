package orchestrate

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/ssh"

	"ec2kit/internal/lines"
	"ec2kit/internal/nodejob"
	"ec2kit/internal/sshx"
)

// node is one instance taking part in the job.
type node struct {
	id, label string
	conn      *sshx.Conn
	bin       *Binary // the countpass deployed there, built for its architecture
	cores     int
	cmd       string              // the countpass command line for this node
	lockSess  *ssh.Session        // holds the job directory's lock
	lockIn    io.Writer           // its stdin: requests to the lock holder
	lockOut   *bufio.Reader       // its stdout: the answers
	dataJobs  []*nodejob.Manifest // count: the download jobs the node holds
	old       *nodejob.Manifest   // the job's previous manifest on the node
	files     []string            // the job directory's files before this run
	valid     []string            // of those, the results this run keeps

	inMu sync.Mutex
	in   io.Writer // the running countpass's stdin (nil between sessions)
}

// send writes one protocol line to the node's countpass, if one runs.
func (n *node) send(line string) error {
	n.inMu.Lock()
	defer n.inMu.Unlock()
	if n.in == nil {
		return io.ErrClosedPipe
	}
	_, err := io.WriteString(n.in, line+"\n")
	return err
}

// cancel asks node to stop its copy of key: another copy finished first.
func (j *job) cancel(node, key string) {
	if n := j.byID[node]; n != nil {
		_ = n.send(nodejob.EncodeCancel(key)) // a node that is gone stops anyway
	}
}

// session runs one countpass on n: it feeds items as the scheduler hands them out and
// reports each finished one back. It returns nil when the node is healthy at the end, and
// the reason when the node must count as dead (connection lost, countpass crashed, a disk
// that cannot hold results, a spot interruption notice). The end of ctx closes the session,
// which ends countpass.
func (j *job) session(ctx context.Context, n *node) error {
	s, err := n.conn.NewSession()
	if err != nil {
		return err
	}
	defer s.Close()
	// The end of ctx (Ctrl-C) ends countpass: a signal first, then the connection, whose
	// end the remote watchdog acts on even while countpass waits for a stalled S3.
	stop := sshx.StopOnDone(ctx, n.conn.Client, s)
	defer stop()
	stdin, err := s.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := s.StdoutPipe()
	if err != nil {
		return err
	}
	stderr := &lines.Writer{Dst: j.prog, Format: func(out, line []byte) []byte {
		out = append(append(out, n.label...), ": "...)
		return append(append(out, bytes.TrimSuffix(line, []byte("\r"))...), '\n')
	}}
	s.Stderr = stderr
	if err := s.Start(n.cmd); err != nil {
		return err
	}

	// sent holds the items given to this countpass and not yet reported; settled is poked
	// whenever one is.
	var mu sync.Mutex
	sent := map[string]bool{}
	settled := make(chan struct{}, 1)
	running := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(sent)
	}
	feedCtx, stopFeeding := context.WithCancel(ctx)
	fed := make(chan struct{})
	n.inMu.Lock()
	n.in = stdin
	n.inMu.Unlock()
	go func() {
		defer close(fed)
		defer func() {
			n.inMu.Lock()
			n.in = nil
			n.inMu.Unlock()
			stdin.Close() // no more items: countpass finishes what it has, then exits
		}()
		for {
			k, ok := j.sched.Next(feedCtx, n.id)
			if !ok {
				// Nothing more for this node now, but the input stays open while its items
				// run: one that a copy elsewhere finishes first is cancelled through it, and
				// work that comes back (a node died) can still come here.
				if running() == 0 {
					return
				}
				select {
				case <-settled:
					continue
				case <-feedCtx.Done():
					return
				}
			}
			mu.Lock()
			sent[k.Name] = true
			mu.Unlock()
			if n.send(j.items[k.Name].Encode()) != nil {
				return
			}
		}
	}()

	var sick error
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		e, ok := nodejob.ParseEvent(sc.Text())
		if !ok {
			continue
		}
		switch e.Kind {
		case "node":
			if e.Class == nodejob.Notice && sick == nil {
				// EC2 takes the node soon: it gets no more work, and what it runs or holds
				// starts again elsewhere now rather than when its connection drops.
				sick = fmt.Errorf("spot interruption notice: %s", e.Msg)
				stopFeeding()
				s.Close()
			}
			continue
		case "progress":
			j.prog.Partial(n.id, e.ID, e.Bytes)
			j.sched.Progress(n.id, e.ID, e.Bytes)
			continue
		case "ok":
			if j.sched.Done(n.id, e.ID) && e.Skipped > 0 && j.opts.Verbose {
				j.prog.Printf("%s: %s: skipped %d row(s) too short to hold the column\n", n.label, e.ID, e.Skipped)
			}
			j.addSkipped(n.id, e.Skipped)
		case "err":
			if e.Class == nodejob.Sick {
				// The node cannot hold results: it leaves the job, and its items go elsewhere.
				if sick == nil {
					sick = fmt.Errorf("%s: %s", e.ID, e.Msg)
				}
				stopFeeding()
				s.Close()
				continue
			}
			if e.Class == nodejob.Retry {
				if j.sched.Retry(n.id, e.ID, e.Msg) {
					j.prog.Printf("%s: %s: %s\n", n.label, e.ID, e.Msg)
				}
			} else if j.sched.Fail(n.id, e.ID, e.Msg) {
				j.prog.Printf("%s: %s: %s\n", n.label, e.ID, e.Msg)
			}
		}
		j.prog.Settled(n.id, e.ID)
		mu.Lock()
		delete(sent, e.ID)
		mu.Unlock()
		select {
		case settled <- struct{}{}:
		default:
		}
	}
	werr := s.Wait()
	stopFeeding()
	<-fed
	stderr.Close()
	if sick != nil {
		return sick
	}
	if lost := n.conn.Lost(); lost != nil {
		return lost
	}
	var exit *ssh.ExitError
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case werr == nil:
	case errors.As(werr, &exit) && exit.ExitStatus() == 1:
		// Some items failed; they were reported and the node is fine.
	case errors.As(werr, &exit):
		return fmt.Errorf("countpass exited with status %d", exit.ExitStatus())
	default:
		return fmt.Errorf("connection lost: %w", werr)
	}
	// A healthy countpass reports every item it was given; one it did not is a failure
	// (not a death: the node's other results stand).
	mu.Lock()
	defer mu.Unlock()
	for k := range sent {
		j.sched.Fail(n.id, k, "countpass ended without reporting it")
	}
	return nil
}

// addSkipped adds to the rows a node skipped for being too short.
func (j *job) addSkipped(node string, n int64) {
	if n == 0 {
		return
	}
	v, _ := j.skipped.LoadOrStore(node, new(atomic.Int64))
	v.(*atomic.Int64).Add(n)
}

// hold starts the session that holds the job directory's lock on the node for as long as
// this run lasts (it ends when the connection does, however that happens), and reads what
// the directory holds: the previous run's manifest and the files.
func (n *node) hold(dir string) error {
	s, err := n.conn.NewSession()
	if err != nil {
		return err
	}
	in, err := s.StdinPipe() // kept open: its end releases the lock
	if err != nil {
		s.Close()
		return err
	}
	out, err := s.StdoutPipe()
	if err != nil {
		s.Close()
		return err
	}
	var stderr bytes.Buffer
	s.Stderr = &stderr
	if err := s.Start(n.bin.RemotePath + " --hold " + sshx.Quote(dir)); err != nil {
		s.Close()
		return err
	}
	r := bufio.NewReader(out)
	line, err := r.ReadString('\n')
	switch strings.TrimSpace(line) {
	case nodejob.HoldLocked:
		sv, err := nodejob.ReadSurvey(r)
		if err != nil {
			s.Close()
			return err
		}
		if sv.Manifest != nil {
			n.old, _ = nodejob.DecodeManifest(sv.Manifest) // unreadable: every file counts as stale
		}
		n.files = sv.Files
		n.lockSess, n.lockIn, n.lockOut = s, in, r
		return nil
	case nodejob.HoldBusy:
		s.Close()
		return errBusy
	}
	s.Close()
	if msg := strings.TrimSpace(stderr.String()); msg != "" {
		return errors.New(msg)
	}
	return fmt.Errorf("taking the lock: %v", err)
}

// write prepares the job directory for this run through the lock's session: it removes stale
// results (or, with force, every earlier result of this job) and writes the manifest.
func (n *node) write(stale []string, force bool, manifest []byte) error {
	if force {
		stale = n.files
	}
	if _, err := n.lockIn.Write(nodejob.Write{Stale: stale, Manifest: manifest}.Encode()); err != nil {
		return err
	}
	return nodejob.ReadWritten(n.lockOut)
}
