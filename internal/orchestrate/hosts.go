package orchestrate

import (
	"context"
	"os"
	"slices"

	"ec2kit/internal/fanout"
	"ec2kit/internal/fleet"
	"ec2kit/internal/paths"
	"ec2kit/internal/sshx"
)

// SSHFlags are the connection flags orchestrate and merge share with the other fleet commands.
type SSHFlags struct {
	Key     []string `arg:"-i,--key,separate" placeholder:"FILE" help:"private key to offer (repeatable); default: the keys ec2-new made for the instances' key pairs, and ssh-agent"`
	User    string   `arg:"-l,--user" help:"login user (default: the instance's ec2kit:user tag, else ec2-user)"`
	Private bool     `arg:"--private" help:"connect to private addresses even when instances have public ones"`
}

// Resolve finds the running instances the selectors name and how to reach them.
func (f SSHFlags) Resolve(ctx context.Context, selectors []string) ([]fanout.Host, *sshx.Config, error) {
	fc, err := fleet.New(ctx)
	if err != nil {
		return nil, nil, err
	}
	insts, err := fc.Resolve(ctx, selectors, "running")
	if err != nil {
		return nil, nil, err
	}
	cfg := &sshx.Config{KeyFiles: f.Key, Agent: true, User: f.User}
	var hosts []fanout.Host
	for _, in := range insts {
		hosts = append(hosts, fanout.Host{
			Target: sshx.Target{ID: in.ID, Addr: in.Address(f.Private), User: in.User, Name: in.Name},
			Label:  in.Label(),
		})
		// Without --key, offer the key ec2-new saved for the instance's key pair.
		if k := paths.KeyFile(in.KeyName); len(f.Key) == 0 && in.KeyName != "" && !slices.Contains(cfg.KeyFiles, k) {
			if _, err := os.Stat(k); err == nil {
				cfg.KeyFiles = append(cfg.KeyFiles, k)
			}
		}
	}
	return hosts, cfg, cfg.LoadKeys()
}
