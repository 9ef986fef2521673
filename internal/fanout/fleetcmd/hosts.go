// Package fleetcmd is what ec2-ssh, ec2-scp and ec2-rsync share: the connection flags,
// turning selectors into SSH hosts, confirmation, and the summary at the end.
package fleetcmd

import (
	"context"
	"fmt"
	"os"
	"time"

	"ec2kit/internal/cli"
	"ec2kit/internal/fanout"
	"ec2kit/internal/fleet"
	"ec2kit/internal/paths"
	"ec2kit/internal/sshx"
)

// Conn are the connection flags of every fan-out command.
type Conn struct {
	Parallel       int           `arg:"--parallel" default:"256" help:"hosts worked on at a time"`
	Timeout        time.Duration `arg:"--timeout" help:"per-host limit from connect to end (e.g. 30s, 5m; default none)"`
	ConnectTimeout time.Duration `arg:"--connect-timeout" default:"10s" help:"limit for TCP connect + SSH handshake + auth"`
	Private        bool          `arg:"--private" help:"use private addresses (also used when an instance has no public one)"`
	Key            []string      `arg:"--key,separate" help:"private key file to offer (repeatable; besides ec2-new's kept key and ssh-agent)"`
	User           string        `arg:"--user" help:"login user (default: ~/.ssh/config, else the instance's ec2kit:user tag, else ec2-user)"`
	Prefix         string        `arg:"--prefix" default:"name" help:"how output names hosts: name, id or addr"`
}

// Config builds the SSH configuration: --key files, the kept key of every key pair in use,
// ssh-agent when SSH_AUTH_SOCK is set. A bad --key is reported before any host is touched.
func (c *Conn) Config(insts []fleet.Instance) (*sshx.Config, error) {
	cfg := &sshx.Config{KeyFiles: c.Key, Agent: os.Getenv("SSH_AUTH_SOCK") != "", User: c.User, ConnectTimeout: c.ConnectTimeout}
	seen := map[string]bool{}
	for _, i := range insts {
		if i.KeyName == "" || seen[i.KeyName] {
			continue
		}
		seen[i.KeyName] = true
		if f := paths.KeyFile(i.KeyName); fileExists(f) {
			cfg.KeyFiles = append(cfg.KeyFiles, f)
		}
	}
	if err := cfg.LoadKeys(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Check validates the flags that need no AWS call.
func (c *Conn) Check() error {
	switch c.Prefix {
	case "name", "id", "addr":
	default:
		return cli.Errorf(cli.ExitUsage, "--prefix must be name, id or addr, not %q", c.Prefix)
	}
	if c.Parallel < 1 {
		return cli.Errorf(cli.ExitUsage, "--parallel must be at least 1")
	}
	return nil
}

// Resolve turns selectors into running instances; an empty selector list is a usage error
// (a fan-out to every instance in the account must be asked for by name).
func Resolve(ctx context.Context, selectors []string) ([]fleet.Instance, error) {
	if len(selectors) == 0 {
		return nil, cli.WithHint(cli.Errorf(cli.ExitUsage, "no selector given"), "name instances by id, Name tag or key=value tag, or pipe ids on stdin")
	}
	fc, err := fleet.New(ctx)
	if err != nil {
		return nil, err
	}
	return fc.Resolve(ctx, selectors, "running")
}

// Hosts turns instances into fan-out hosts labelled per --prefix.
func (c *Conn) Hosts(insts []fleet.Instance) []fanout.Host {
	var hs []fanout.Host
	for _, i := range insts {
		addr := i.Address(c.Private)
		label := i.Label()
		switch c.Prefix {
		case "id":
			label = i.ID
		case "addr":
			label = addr
		}
		hs = append(hs, fanout.Host{Label: label, Target: sshx.Target{ID: i.ID, Addr: addr, User: i.User, Name: i.Name}})
	}
	return hs
}

// Confirm asks before acting on more than one host, unless yes; with no terminal it
// refuses (DESIGN: fleet-wide commands ask).
func Confirm(action string, hosts []fanout.Host, yes bool) error {
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
