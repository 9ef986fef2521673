package sshx

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"ec2kit/internal/cli"
)

// WaitReady dials every target until it completes an SSH handshake (recording its host key
// on first contact), retrying refused, timed-out and not-yet-authorised attempts for up to
// maxWait. It returns the targets that became ready, in input order; when some did not, err
// is an ExitUnreachable error naming them (a host key mismatch is not retried).
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
	var bad []string
	for i, t := range targets {
		if errs[i] == nil {
			ready = append(ready, t)
		} else {
			bad = append(bad, errs[i].Error())
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return ready, cli.Errorf(cli.ExitUnreachable, "%d of %d host(s) not ready after %v:\n  %s",
			len(bad), len(targets), maxWait, strings.Join(bad, "\n  "))
	}
	return ready, nil
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
			c.Close()
			return nil
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

func orCtx(last error, ctx context.Context, t Target) error {
	if last != nil {
		return last
	}
	return fmt.Errorf("%s: %w", t.ID, ctx.Err())
}
