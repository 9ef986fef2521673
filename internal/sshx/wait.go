package sshx

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"ec2kit/internal/cli"
)

// WaitReady dials every target until it completes an SSH handshake (recording its host key
// on first contact) and is neither booting nor going down (so a wait right after a reboot
// is for the new boot, not the old sshd still up), retrying refused, timed-out and
// not-yet-authorised attempts for up to maxWait. It returns the targets that became ready,
// in input order; when some did not, err is an ExitUnreachable error naming them, whose
// hosts' errors KindOf sees (a host key mismatch is final: it is not retried).
func WaitReady(ctx context.Context, targets []Target, cfg *Config, maxWait time.Duration) ([]Target, error) {
	if err := cfg.LoadKeys(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, maxWait)
	defer cancel()
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = waitOne(ctx, t, cfg, sem)
		}()
	}
	wg.Wait()
	var ready []Target
	var bad hostErrors
	retried := false
	for i, t := range targets {
		if errs[i] == nil {
			ready = append(ready, t)
			continue
		}
		bad = append(bad, errs[i])
		if k, _ := KindOf(errs[i]); k != HostKey {
			retried = true
		}
	}
	if len(bad) == 0 {
		return ready, nil
	}
	within := ""
	if retried {
		within = fmt.Sprintf(" within %v", maxWait.Round(time.Second)) // callers pass what is left of a deadline
	}
	return ready, &cli.Error{Code: cli.ExitUnreachable, Hint: bad.hint(),
		Err: fmt.Errorf("%d of %d host(s) not ready%s:\n  %w", len(bad), len(targets), within, bad)}
}

// hostErrors are the failures of several hosts, one per line, sorted; errors.As and KindOf
// see each of them.
type hostErrors []error

func (h hostErrors) Error() string {
	lines := make([]string, len(h))
	for i, err := range h {
		lines[i] = err.Error()
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n  ")
}

func (h hostErrors) Unwrap() []error { return h }

// hint is the advice the failures carry (a host key mismatch names the file to edit), each
// once.
func (h hostErrors) hint() string {
	var hints []string
	for _, err := range h {
		var ce *cli.Error
		if errors.As(err, &ce) && ce.Hint != "" && !slices.Contains(hints, ce.Hint) {
			hints = append(hints, ce.Hint)
		}
	}
	return strings.Join(hints, "; ")
}

func waitOne(ctx context.Context, t Target, cfg *Config, sem chan struct{}) error {
	backoff := 250 * time.Millisecond
	var last error
	for {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return orCtx(last, ctx, t)
		}
		c, err := DialConn(ctx, t, cfg)
		<-sem
		if err == nil {
			err = settled(ctx, c, t)
			c.Close()
			if err == nil {
				return nil
			}
		}
		if ctx.Err() != nil && last != nil {
			return last // an attempt cut short by the deadline tells less than the one before
		}
		last = err
		if k, _ := KindOf(err); k == HostKey {
			return err
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return orCtx(last, ctx, t)
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// upProbe succeeds on a host that is neither booting nor going down. systemd reports
// "stopping" from the moment a reboot or poweroff is queued, while the old sshd may still
// answer; /run/nologin exists while a host boots and once it shuts down (pam_nologin then
// refuses logins). Hosts without systemd pass the second test.
const upProbe = `test ! -e /run/nologin && [ "$(systemctl is-system-running 2>/dev/null)" != stopping ]`

// errSettling is a host that accepts SSH but is booting or shutting down (a reboot not yet
// under way): waiting goes on for the new boot.
var errSettling = errors.New("booting or shutting down (/run/nologin exists, or systemd is stopping)")

// settled runs upProbe on c.
func settled(ctx context.Context, c *Conn, t Target) error {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	s, err := c.NewSession()
	if err != nil {
		return transportErr(Unreachable, t, err)
	}
	defer s.Close()
	err = s.Run(upProbe)
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		err = errSettling
	}
	if err != nil {
		return transportErr(Unreachable, t, err)
	}
	return nil
}

func orCtx(last error, ctx context.Context, t Target) error {
	if last != nil {
		return last
	}
	return fmt.Errorf("%s: %w", t.ID, ctx.Err())
}
