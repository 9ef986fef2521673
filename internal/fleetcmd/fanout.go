// Package fleetcmd is what ec2-ssh, ec2-scp and ec2-rsync share beyond the connection flags
// (package hosts): the fan-out flags, confirmation, and the summary at the end.
package fleetcmd

import (
	"context"
	"fmt"
	"os"
	"time"

	"ec2kit/internal/cli"
	"ec2kit/internal/fanout"
	"ec2kit/internal/fleet"
	"ec2kit/internal/sshx"
)

// FanOut are the flags of the commands that run one job on many hosts.
type FanOut struct {
	Parallel int           `arg:"--parallel" default:"256" help:"hosts worked on at a time"`
	Timeout  time.Duration `arg:"--timeout" help:"per-host limit from connect to end (e.g. 30s, 5m; default none)"`
	Prefix   string        `arg:"--prefix" default:"name" help:"how output names hosts: name, id or addr"`
}

// Check validates the flags that need no AWS call.
func (f *FanOut) Check() error {
	switch f.Prefix {
	case "name", "id", "addr":
	default:
		return cli.Errorf(cli.ExitUsage, "--prefix must be name, id or addr, not %q", f.Prefix)
	}
	if f.Parallel < 1 {
		return cli.Errorf(cli.ExitUsage, "--parallel must be at least 1")
	}
	return nil
}

// Relabel names the hosts per --prefix (they arrive named by instance name).
func (f *FanOut) Relabel(hosts []sshx.Host) {
	for i, h := range hosts {
		switch f.Prefix {
		case "id":
			hosts[i].Label = h.Target.ID
		case "addr":
			hosts[i].Label = h.Target.Addr
		}
	}
}

// Pool is the fan-out pool these flags ask for.
func (f *FanOut) Pool(cfg *sshx.Config) *fanout.Pool {
	return &fanout.Pool{Config: cfg, Parallel: f.Parallel, Timeout: f.Timeout}
}

// Confirm asks before acting on more than one host, unless yes; with no terminal it
// refuses (DESIGN: fleet-wide commands ask).
func Confirm(action string, hosts []sshx.Host, yes bool) error {
	if len(hosts) <= 1 || yes {
		return nil
	}
	var names []string
	for _, h := range hosts {
		names = append(names, fmt.Sprintf("%s (%s)", h.Label, h.Target.Addr))
	}
	return cli.Confirm(action, names, false)
}

// Finish prints the summary (unless a single host simply succeeded) and returns the error
// carrying the exit code.
func Finish(ctx context.Context, results []fanout.Result) error {
	reclaimed(ctx, results)
	if len(results) > 1 || fanout.ExitCode(results) != cli.ExitOK {
		fanout.Summary(os.Stderr, results)
	}
	return fanout.Err(results)
}

// reclaimed tells, among the hosts that were lost, the spot instances EC2 took back (their
// spot request says so): they are counted apart from plain unreachable hosts. Best effort:
// when EC2 cannot be asked, the hosts stay unreachable.
func reclaimed(ctx context.Context, results []fanout.Result) {
	var lost []string
	for _, r := range results {
		if r.Status == fanout.Unreachable {
			lost = append(lost, r.Host.Target.ID)
		}
	}
	if len(lost) == 0 || ctx.Err() != nil {
		return
	}
	fc, err := fleet.New(ctx)
	if err != nil {
		return
	}
	insts, _ := fc.Resolve(ctx, lost, fleet.States...) // one that matches nothing stays unreachable
	if fc.Interruptions(ctx, insts) != nil {
		return
	}
	why := map[string]fleet.Instance{}
	for _, in := range insts {
		if in.Interruption != fleet.NotInterrupted {
			why[in.ID] = in
		}
	}
	for i, r := range results {
		if in, ok := why[r.Host.Target.ID]; ok && r.Status == fanout.Unreachable {
			results[i].Status = fanout.Reclaimed
			results[i].Err = fmt.Errorf("spot interruption (%s): %s; %w", in.Interruption, in.InterruptionNote, r.Err)
		}
	}
}
