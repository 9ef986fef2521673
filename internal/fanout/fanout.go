// Package fanout runs one job on many hosts over SSH: bounded concurrency, a per-host
// timeout, results classified as ok / failed (remote exit status) / unreachable / timed out,
// a summary and the exit code. Commands with prefixed, grouped, coalesced, JSON or per-file
// output are one such job (RunCommand); file transfers are another.
package fanout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sync/errgroup"

	"ec2kit/internal/cli"
	"ec2kit/internal/sshx"
)

// Status is how a host's job ended.
type Status int

const (
	OK          Status = iota
	Failed             // the remote command exited non-zero (or the job failed locally)
	Unreachable        // dial, auth, host key, or the connection died
	TimedOut           // --timeout expired
	Reclaimed          // unreachable because EC2 took the spot instance back (or is about to)
	Interrupted        // Ctrl-C
)

func (s Status) String() string {
	return [...]string{"ok", "failed", "unreachable", "timed out", "reclaimed", "interrupted"}[s]
}

// Result is one host's outcome.
type Result struct {
	Host     sshx.Host
	Status   Status
	ExitCode int    // remote exit status (Failed), else 0
	Signal   string // remote signal name when the command was killed by one
	Err      error  // why, for anything but OK
	Elapsed  time.Duration
}

// Pool holds what every host's job shares.
type Pool struct {
	Config   *sshx.Config
	Parallel int           // hosts at a time (default 256)
	Timeout  time.Duration // per host, from dial to the end of its job; 0 = none
}

// Job is the work done on one connected host.
type Job func(ctx context.Context, h sshx.Host, c *sshx.Conn) error

// Each runs job on every host, at most Parallel at once, and returns one result per host in
// input order; done, if not nil, sees each result as its host finishes. A cancelled ctx
// (Ctrl-C) stops the jobs; each job must return promptly once its ctx is done.
func (p *Pool) Each(ctx context.Context, hosts []sshx.Host, job Job, done func(Result)) []Result {
	return p.Local(ctx, hosts, func(ctx context.Context, h sshx.Host) error {
		c, err := sshx.DialConn(ctx, h.Target, p.Config)
		if err != nil {
			return err
		}
		defer c.Close()
		err = job(ctx, h, c)
		if lost := c.Lost(); lost != nil {
			return lost
		}
		return err
	}, done)
}

// Local is Each for jobs that make their own connections (ec2-rsync runs rsync per host):
// the same concurrency, timeout, classification and results.
func (p *Pool) Local(ctx context.Context, hosts []sshx.Host, job func(ctx context.Context, h sshx.Host) error, done func(Result)) []Result {
	n := p.Parallel
	if n <= 0 {
		n = 256
	}
	results := make([]Result, len(hosts))
	var g errgroup.Group
	g.SetLimit(n)
	for i, h := range hosts {
		if ctx.Err() != nil {
			results[i] = Result{Host: h, Status: Interrupted, Err: ctx.Err()}
			if done != nil {
				done(results[i])
			}
			continue
		}
		g.Go(func() error {
			results[i] = p.one(ctx, h, job)
			if done != nil {
				done(results[i])
			}
			return nil
		})
	}
	g.Wait()
	return results
}

func (p *Pool) one(parent context.Context, h sshx.Host, job func(context.Context, sshx.Host) error) Result {
	start := time.Now()
	ctx, cancel := parent, context.CancelFunc(func() {})
	if p.Timeout > 0 {
		ctx, cancel = context.WithTimeoutCause(parent, p.Timeout, errTimeout)
	}
	defer cancel()
	r := classify(parent, ctx, job(ctx, h))
	r.Host, r.Elapsed = h, time.Since(start)
	return r
}

var errTimeout = errors.New("timed out")

func classify(parent, ctx context.Context, err error) Result {
	var ee *ssh.ExitError
	switch {
	case parent.Err() != nil:
		return Result{Status: Interrupted, Err: parent.Err()}
	case context.Cause(ctx) == errTimeout:
		return Result{Status: TimedOut, Err: errTimeout}
	case err == nil:
		return Result{Status: OK}
	case errors.As(err, &ee):
		return Result{Status: Failed, ExitCode: ee.ExitStatus(), Signal: ee.Signal(), Err: err}
	}
	if _, ok := sshx.KindOf(err); ok {
		return Result{Status: Unreachable, Err: err}
	}
	var missing *ssh.ExitMissingError
	if errors.As(err, &missing) || errors.Is(err, io.EOF) {
		return Result{Status: Unreachable, Err: fmt.Errorf("connection closed before the command ended: %w", err)}
	}
	return Result{Status: Failed, ExitCode: -1, Err: err}
}

// ExitCode is the command's exit code for results: unreachable or timed out outranks
// failed (cli.Worst); an interruption is 130.
func ExitCode(results []Result) int {
	var codes []int
	for _, r := range results {
		switch r.Status {
		case Failed:
			codes = append(codes, cli.ExitFailed)
		case Unreachable, TimedOut, Reclaimed:
			codes = append(codes, cli.ExitUnreachable)
		case Interrupted:
			return cli.ExitInterrupted
		}
	}
	return cli.Worst(codes...)
}

// Err turns results into the error cli.Run exits with: nil when all went well, else a
// silent error (the summary already told the story).
func Err(results []Result) error {
	if c := ExitCode(results); c != cli.ExitOK {
		return cli.Silent(c)
	}
	return nil
}

// Summary writes one line of counts, then one line per host that did not succeed.
func Summary(w io.Writer, results []Result) {
	count := map[Status]int{}
	for _, r := range results {
		count[r.Status]++
	}
	var parts []string
	for s := OK; s <= Interrupted; s++ {
		if count[s] > 0 || s == OK {
			parts = append(parts, fmt.Sprintf("%d %s", count[s], s))
		}
	}
	fmt.Fprintf(w, "%d host(s): %s\n", len(results), strings.Join(parts, ", "))
	bad := make([]Result, 0, len(results)-count[OK])
	for _, r := range results {
		if r.Status != OK {
			bad = append(bad, r)
		}
	}
	sort.SliceStable(bad, func(i, j int) bool { return bad[i].Status < bad[j].Status })
	for _, r := range bad {
		fmt.Fprintf(w, "  %-11s %s: %s\n", r.Status, r.Host.Label, r.reason())
	}
}

func (r Result) reason() string {
	switch {
	case r.Status == Failed && r.Signal != "":
		return "killed by SIG" + r.Signal
	case r.Status == Failed && r.ExitCode >= 0:
		// A job may prefix the exit error with what the remote side said.
		var ee *ssh.ExitError
		if errors.As(r.Err, &ee) {
			if detail, ok := strings.CutSuffix(r.Err.Error(), ": "+ee.Error()); ok {
				return fmt.Sprintf("exit %d: %s", r.ExitCode, detail)
			}
		}
		return fmt.Sprintf("exit %d", r.ExitCode)
	case r.Err != nil:
		msg := r.Err.Error()
		// Transport errors repeat the host id: drop it, the label already says it.
		msg = strings.TrimPrefix(msg, r.Host.Target.ID+": ")
		return msg
	}
	return r.Status.String()
}
