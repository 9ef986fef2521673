// Package fleetcmd is what ec2-ssh, ec2-scp and ec2-rsync share beyond the connection flags
// (package hosts): the fan-out flags, confirmation, and the summary at the end.
package fleetcmd

import (
	"fmt"
	"os"
	"time"

	"ec2kit/internal/cli"
	"ec2kit/internal/fanout"
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
func Finish(results []fanout.Result) error {
	if len(results) > 1 || fanout.ExitCode(results) != cli.ExitOK {
		fanout.Summary(os.Stderr, results)
	}
	return fanout.Err(results)
}
