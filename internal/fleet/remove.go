package fleet

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"ec2kit/internal/cli"
	"ec2kit/internal/pricing"
)

// RemoveOptions are ec2-rm's choices.
type RemoveOptions struct {
	Selectors []string      // as given: cli.Selectors adds ids from stdin
	Yes       bool          // do not ask
	Wait      bool          // wait until terminated
	MaxWait   time.Duration // bound on Wait
}

// Remove is ec2-rm.
func Remove(ctx context.Context, o RemoveOptions) error {
	sels, err := cli.Selectors(o.Selectors)
	if err != nil {
		return err
	}
	if err := needSelectors(sels); err != nil {
		return err
	}
	c, err := New(ctx)
	if err != nil {
		return err
	}
	return c.Remove(ctx, sels, o, os.Stdout)
}

// Remove terminates the selected instances (cancelling their spot requests) after listing
// them and asking, prints the ids it terminated on w, and optionally waits until they are
// terminated. Refuses an empty selection: terminating "everything" is never a default.
// Instances already terminated are skipped with a note, so rerunning it is harmless.
func (c *Client) Remove(ctx context.Context, selectors []string, o RemoveOptions, w io.Writer) error {
	if err := needSelectors(selectors); err != nil {
		return err
	}
	insts, err := c.Resolve(ctx, selectors, States...)
	if err != nil {
		return err
	}
	var targets []Instance
	var labels []string
	for _, in := range insts {
		if in.State == "terminated" {
			fmt.Fprintf(os.Stderr, "%s: already terminated\n", in.Label())
			continue
		}
		targets = append(targets, in)
		labels = append(labels, fmt.Sprintf("%s  %s  %s  %s", in.Label(), in.Type, in.Lifecycle, in.State))
	}
	if len(targets) == 0 {
		return nil
	}
	if err := cli.Confirm("Terminate", labels, o.Yes); err != nil {
		return err
	}
	if err := c.Terminate(ctx, targets); err != nil {
		return err
	}
	for _, in := range targets {
		fmt.Fprintln(w, in.ID)
	}
	fmt.Fprintf(os.Stderr, "ec2-rm: %d instance(s) from launch to now: %s\n", len(targets), lifetimeCost(ctx, targets))
	if !o.Wait {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, o.MaxWait)
	defer cancel()
	return c.WaitTerminated(wctx, IDs(targets))
}

func needSelectors(sels []string) error {
	if len(sels) == 0 {
		return cli.WithHint(cli.Errorf(cli.ExitUsage, "no selector: refusing to terminate every instance"),
			"name the instances: ids, Name values or key=value tags (or pipe ids from ec2-ls)")
	}
	return nil
}

// lifetimeCost prices the instances from their launch to now.
func lifetimeCost(ctx context.Context, insts []Instance) pricing.Cost {
	uses := make([]pricing.Use, len(insts))
	for i, in := range insts {
		uses[i] = pricing.Use{Type: in.Type, Zone: in.Zone, Spot: in.Lifecycle == "spot", For: time.Since(in.LaunchTime)}
	}
	return pricing.Of(ctx, uses)
}
