package fleetcmd

import (
	"context"
	"path/filepath"

	"ec2kit/internal/cli"
	"ec2kit/internal/hosts"
	"ec2kit/internal/sshx"
	"ec2kit/internal/transfer"
)

// CopyArgs are ec2-scp's flags, and ec2-rsync's but for rsync's own.
type CopyArgs struct {
	Src       string   `arg:"positional,required" help:"source; a leading ':' marks a remote path"`
	Dst       string   `arg:"positional,required" help:"destination; a leading ':' marks a remote path"`
	Selectors []string `arg:"positional" help:"instance ids, Name tags or key=value tags (ids also from stdin)"`
	Yes       bool     `arg:"--yes" help:"do not ask before pushing to more than one host"`
	hosts.Conn
	FanOut
	cli.VersionFlag
}

// prepare parses the copy, resolves the hosts and asks before a fleet-wide push.
func (a *CopyArgs) prepare(ctx context.Context) (transfer.Spec, []sshx.Host, *sshx.Config, error) {
	spec, err := transfer.Parse(a.Src, a.Dst)
	if err != nil {
		return spec, nil, nil, err
	}
	if err := a.Check(); err != nil {
		return spec, nil, nil, err
	}
	sels, err := cli.Selectors(a.Selectors)
	if err != nil {
		return spec, nil, nil, err
	}
	hs, cfg, err := a.Conn.Resolve(ctx, sels)
	if err != nil {
		return spec, nil, nil, err
	}
	a.Relabel(hs)
	if spec.Push {
		if err := Confirm("Copy "+spec.Local+" to", hs, a.Yes); err != nil {
			cfg.Close()
			return spec, nil, nil, err
		}
	}
	return spec, hs, cfg, nil
}

// Copy runs ec2-scp: a push to every host, or a pull into Local/<id>/ from every host.
func Copy(ctx context.Context, a *CopyArgs) error {
	spec, hs, cfg, err := a.prepare(ctx)
	if err != nil {
		return err
	}
	defer cfg.Close()
	return Finish(ctx, a.Pool(cfg).Each(ctx, hs, func(ctx context.Context, h sshx.Host, c *sshx.Conn) error {
		if spec.Push {
			return transfer.Push(ctx, c.Client, spec.Local, spec.Remote)
		}
		return transfer.Pull(ctx, c.Client, spec.Remote, filepath.Join(spec.Local, h.Target.ID))
	}, nil))
}
