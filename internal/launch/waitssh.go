package launch

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"ec2kit/internal/cli"
	"ec2kit/internal/fleet"
	"ec2kit/internal/hosts"
	"ec2kit/internal/sshx"
)

// Ready waits, until ctx's deadline, for every instance to accept SSH (recording its host
// key on first contact) and, for instances ec2-new launched, to finish its boot script (so
// /mnt is there). It returns the ready instances in order, and an ExitUnreachable error
// naming the others. A failed --init script is reported on log but does not count. conn
// says how to connect (keys, user, addresses, timeout).
func Ready(ctx context.Context, insts []fleet.Instance, conn hosts.Conn, log io.Writer) ([]fleet.Instance, error) {
	cfg, err := conn.Config(insts)
	if err != nil {
		return nil, err
	}
	defer cfg.Close()
	targets := make([]sshx.Target, len(insts))
	byID := map[string]fleet.Instance{}
	for i, in := range insts {
		targets[i] = conn.Target(in)
		byID[in.ID] = in
	}
	maxWait := 5 * time.Minute
	if d, ok := ctx.Deadline(); ok {
		maxWait = time.Until(d)
	}
	up, err := sshx.WaitReady(ctx, targets, cfg, maxWait)
	var problems []string
	if err != nil {
		problems = append(problems, err.Error())
	}
	booted := make([]error, len(up))
	var wg sync.WaitGroup
	for i, t := range up {
		if _, ours := byID[t.ID].Tags[LaunchTag]; !ours {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			booted[i] = waitBoot(ctx, t, cfg, log)
		}()
	}
	wg.Wait()
	var ready []fleet.Instance
	for i, t := range up {
		if booted[i] != nil {
			problems = append(problems, booted[i].Error())
			continue
		}
		ready = append(ready, byID[t.ID])
	}
	if len(problems) > 0 {
		return ready, cli.WithHint(cli.Errorf(cli.ExitUnreachable, "%d of %d instance(s) not ready: %s", len(insts)-len(ready), len(insts), strings.Join(problems, "; ")), cli.HintOf(err))
	}
	return ready, nil
}

// waitBoot waits on the instance until the boot script has written BootDone, and warns when
// the --init script failed.
func waitBoot(ctx context.Context, t sshx.Target, cfg *sshx.Config, log io.Writer) error {
	c, err := sshx.Dial(ctx, t, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	s, err := c.NewSession()
	if err != nil {
		return fmt.Errorf("%s: %v", t.ID, err)
	}
	out, err := s.Output(fmt.Sprintf("while [ ! -e %s ]; do sleep 1; done; cat %s", BootDone, BootDone))
	if ctx.Err() != nil {
		return fmt.Errorf("%s: boot script not finished: %v", t.ID, ctx.Err())
	}
	if err != nil {
		return fmt.Errorf("%s: waiting for the boot script: %v", t.ID, err)
	}
	if code, _ := strconv.Atoi(strings.TrimSpace(string(out))); code != 0 {
		fmt.Fprintf(log, "%s: warning: the --init script exited with %d (its output is in %s there)\n", t.ID, code, InitLog)
	}
	return nil
}

// WaitOptions are ec2-wait-ssh's arguments.
type WaitOptions struct {
	Selectors []string
	MaxWait   time.Duration
	Conn      hosts.Conn
}

// WaitSSH is ec2-wait-ssh: it waits until the selected instances run and accept SSH, prints
// the ready ids on stdout and names the others on stderr (ExitUnreachable).
func WaitSSH(ctx context.Context, o WaitOptions) error {
	sels, err := cli.Selectors(o.Selectors)
	if err != nil {
		return err
	}
	if len(sels) == 0 {
		return cli.Errorf(cli.ExitUsage, "no selector: name the instances to wait for")
	}
	if o.MaxWait <= 0 {
		return cli.Errorf(cli.ExitUsage, "--max-wait must be positive")
	}
	c, err := fleet.New(ctx)
	if err != nil {
		return err
	}
	insts, err := c.Resolve(ctx, sels, "pending", "running")
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, o.MaxWait)
	defer cancel()
	if insts, err = c.WaitRunning(wctx, fleet.IDs(insts)); err != nil {
		return err
	}
	ready, err := Ready(wctx, insts, o.Conn, os.Stderr)
	for _, in := range ready {
		fmt.Println(in.ID)
	}
	if err != nil && ctx.Err() != nil {
		return cli.Errorf(cli.ExitInterrupted, "interrupted")
	}
	return err
}
