package launch

import (
	"context"
	"errors"
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
// /mnt is there). It returns the ready instances in order, and an error naming the others:
// ExitUnreachable when some could not be reached, else ExitFailed. An instance whose --init
// script failed is not ready when strictInit, else it is, with a warning on log; either way
// the script's last lines go to log. conn says how to connect (keys, user, addresses, timeout).
func Ready(ctx context.Context, insts []fleet.Instance, conn hosts.Conn, strictInit bool, log io.Writer) ([]fleet.Instance, error) {
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
	code := cli.ExitOK
	if err != nil {
		problems, code = append(problems, err.Error()), cli.ExitUnreachable
	}
	booted := make([]error, len(up))
	dials := make(chan struct{}, bootDials)
	var wg sync.WaitGroup
	for i, t := range up {
		if _, ours := byID[t.ID].Tags[LaunchTag]; !ours {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			booted[i] = waitBoot(ctx, t, cfg, dials)
		}()
	}
	wg.Wait()
	var ready []fleet.Instance
	for i, t := range up {
		var ie *InitError
		switch {
		case errors.As(booted[i], &ie):
			fmt.Fprintf(log, "%s: the --init script exited with %d; %s", t.ID, ie.Code, tailNote(ie.Tail))
			if strictInit {
				problems, code = append(problems, ie.Error()), cli.Worst(code, cli.ExitFailed)
				continue
			}
			fmt.Fprintf(log, "%s: warning: going on (--init-ok-fail)\n", t.ID)
		case booted[i] != nil:
			problems, code = append(problems, booted[i].Error()), cli.ExitUnreachable
			continue
		}
		ready = append(ready, byID[t.ID])
	}
	if len(problems) > 0 {
		return ready, cli.WithHint(cli.Errorf(code, "%d of %d instance(s) not ready: %s", len(insts)-len(ready), len(insts), strings.Join(problems, "; ")), cli.HintOf(err))
	}
	return ready, nil
}

// InitError is an --init script that failed on an instance.
type InitError struct {
	ID   string
	Code int    // its exit status
	Tail string // the last lines of its output
}

func (e *InitError) Error() string {
	return fmt.Sprintf("%s: the --init script exited with %d", e.ID, e.Code)
}

// initTailLines is how much of a failed --init script's output is shown.
const initTailLines = 20

// bootDials bounds the SSH handshakes waitBoot makes at once, as sshx.WaitReady bounds its
// own: a thousand at once outlast --connect-timeout on a small machine, failing hosts that
// were ready (727 of 1000 on 2 cores).
const bootDials = 64

// waitBoot waits on the instance until the boot script has written BootDone; a failed --init
// script is an *InitError. Its handshake takes a place in dials.
func waitBoot(ctx context.Context, t sshx.Target, cfg *sshx.Config, dials chan struct{}) error {
	select {
	case dials <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%s: boot script not finished: %v", t.ID, ctx.Err())
	}
	c, err := sshx.Dial(ctx, t, cfg)
	<-dials
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
	out, err := s.Output(fmt.Sprintf("while [ ! -e %[1]s ]; do sleep 1; done; cat %[1]s; grep -qx 0 %[1]s || tail -n %[2]d %[3]s",
		BootDone, initTailLines, InitLog))
	if ctx.Err() != nil {
		return fmt.Errorf("%s: boot script not finished: %v", t.ID, ctx.Err())
	}
	if err != nil {
		return fmt.Errorf("%s: waiting for the boot script: %v", t.ID, err)
	}
	status, tail, _ := strings.Cut(string(out), "\n")
	if code, _ := strconv.Atoi(strings.TrimSpace(status)); code != 0 {
		return &InitError{ID: t.ID, Code: code, Tail: tail}
	}
	return nil
}

// tailNote shows the end of a failed script's output, each line prefixed so that it stands
// apart from ec2-new's own.
func tailNote(s string) string {
	if strings.TrimSpace(s) == "" {
		return fmt.Sprintf("it wrote nothing (%s there)\n", InitLog)
	}
	b := strings.Builder{}
	fmt.Fprintf(&b, "the end of its output (%s there):\n", InitLog)
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("  | " + line + "\n")
	}
	return b.String()
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
	ready, err := Ready(wctx, insts, o.Conn, false, os.Stderr)
	for _, in := range ready {
		fmt.Println(in.ID)
	}
	if err != nil && ctx.Err() != nil {
		return cli.Errorf(cli.ExitInterrupted, "interrupted")
	}
	return err
}
