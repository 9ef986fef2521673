package fleetcmd

import (
	"context"
	"path/filepath"

	"ec2kit/internal/cli"
	"ec2kit/internal/fanout"
	"ec2kit/internal/sshx"
	"ec2kit/internal/transfer"
)

// CopyArgs are ec2-scp's flags.
type CopyArgs struct {
	Src       string   `arg:"positional,required" help:"source; a leading ':' marks a remote path"`
	Dst       string   `arg:"positional,required" help:"destination; a leading ':' marks a remote path"`
	Selectors []string `arg:"positional" help:"instance ids, Name tags or key=value tags (ids also from stdin)"`
	Yes       bool     `arg:"--yes" help:"do not ask before pushing to more than one host"`
	Conn
	cli.VersionFlag
}

// prepare parses the copy, resolves the hosts and asks before a fleet-wide push.
func (c *Conn) prepare(ctx context.Context, src, dst string, selectors []string, yes bool) (transfer.Spec, []fanout.Host, *sshx.Config, error) {
	spec, err := transfer.Parse(src, dst)
	if err != nil {
		return spec, nil, nil, err
	}
	if err := c.Check(); err != nil {
		return spec, nil, nil, err
	}
	sels, err := cli.Selectors(selectors)
	if err != nil {
		return spec, nil, nil, err
	}
	insts, err := Resolve(ctx, sels)
	if err != nil {
		return spec, nil, nil, err
	}
	cfg, err := c.Config(insts)
	if err != nil {
		return spec, nil, nil, err
	}
	hosts := c.Hosts(insts)
	if spec.Push {
		if err := Confirm("Copy "+spec.Local+" to", hosts, yes); err != nil {
			cfg.Close()
			return spec, nil, nil, err
		}
	}
	return spec, hosts, cfg, nil
}

// Copy runs ec2-scp: a push to every host, or a pull into Local/<id>/ from every host.
func Copy(ctx context.Context, a *CopyArgs) error {
	spec, hosts, cfg, err := a.prepare(ctx, a.Src, a.Dst, a.Selectors, a.Yes)
	if err != nil {
		return err
	}
	defer cfg.Close()
	p := &fanout.Pool{Config: cfg, Parallel: a.Parallel, Timeout: a.Timeout}
	return Finish(p.Each(ctx, hosts, func(ctx context.Context, h fanout.Host, c *sshx.Conn) error {
		if spec.Push {
			return transfer.Push(ctx, c.Client, spec.Local, spec.Remote)
		}
		return transfer.Pull(ctx, c.Client, spec.Remote, filepath.Join(spec.Local, h.Target.ID))
	}, nil))
}
