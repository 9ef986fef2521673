// Package hosts turns selectors into the SSH hosts they name and the sshx configuration to
// reach them, from the connection flags every command that talks SSH to instances shares.
package hosts

import (
	"context"
	"os"
	"slices"
	"time"

	"ec2kit/internal/cli"
	"ec2kit/internal/fleet"
	"ec2kit/internal/paths"
	"ec2kit/internal/sshx"
)

// Conn are the connection flags; embed it in a command's go-arg struct.
type Conn struct {
	Key            []string      `arg:"-i,--key,separate" placeholder:"FILE" help:"private key file to offer (repeatable; besides ec2-new's kept key and ssh-agent)"`
	User           string        `arg:"-l,--user" help:"login user (default: ~/.ssh/config, else the instance's ec2kit:user tag, else ec2-user)"`
	Private        bool          `arg:"--private" help:"use private addresses (also used when an instance has no public one)"`
	ConnectTimeout time.Duration `arg:"--connect-timeout" default:"10s" placeholder:"DURATION" help:"limit for TCP connect + SSH handshake + auth"`
}

// Resolve finds the running instances the selectors name, and how to reach them. An empty
// selector list is a usage error: acting on every instance in the account must be asked for
// by name. A bad --key is reported before any host is touched.
func (c Conn) Resolve(ctx context.Context, selectors []string) ([]sshx.Host, *sshx.Config, error) {
	hs, cfg, _, err := c.ResolveInstances(ctx, selectors)
	return hs, cfg, err
}

// ResolveInstances is Resolve that also returns the instances, in the hosts' order.
func (c Conn) ResolveInstances(ctx context.Context, selectors []string) ([]sshx.Host, *sshx.Config, []fleet.Instance, error) {
	if len(selectors) == 0 {
		return nil, nil, nil, cli.WithHint(cli.Errorf(cli.ExitUsage, "no selector given"), "name instances by id, Name tag or key=value tag, or pipe ids on stdin")
	}
	fc, err := fleet.New(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	insts, err := fc.Resolve(ctx, selectors, "running")
	if err != nil {
		return nil, nil, nil, err
	}
	cfg, err := c.Config(insts)
	if err != nil {
		return nil, nil, nil, err
	}
	hs := make([]sshx.Host, len(insts))
	for i, in := range insts {
		hs[i] = sshx.Host{Label: in.Label(), Target: c.Target(in)}
	}
	return hs, cfg, insts, nil
}

// Target is how to reach one instance.
func (c Conn) Target(in fleet.Instance) sshx.Target {
	return sshx.Target{ID: in.ID, Addr: in.Address(c.Private), User: in.User, Name: in.Name}
}

// Config builds the SSH configuration for these instances: the --key files, the key ec2-new
// kept for every key pair in use, and ssh-agent when SSH_AUTH_SOCK is set. Keys are parsed
// here, so an unreadable --key fails (ExitLocal) before any host is touched.
func (c Conn) Config(insts []fleet.Instance) (*sshx.Config, error) {
	cfg := &sshx.Config{KeyFiles: slices.Clone(c.Key), Agent: os.Getenv("SSH_AUTH_SOCK") != "", User: c.User, ConnectTimeout: c.ConnectTimeout}
	seen := map[string]bool{}
	for _, in := range insts {
		if in.KeyName == "" || seen[in.KeyName] {
			continue
		}
		seen[in.KeyName] = true
		if f := paths.KeyFile(in.KeyName); exists(f) {
			cfg.KeyFiles = append(cfg.KeyFiles, f)
		}
	}
	if err := cfg.LoadKeys(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
