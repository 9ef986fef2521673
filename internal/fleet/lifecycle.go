package fleet

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"ec2kit/internal/awsconf"
	"ec2kit/internal/cli"
)

// Terminate terminates insts and cancels their spot requests, in one call each (per 1000).
func (c *Client) Terminate(ctx context.Context, insts []Instance) error {
	var spot []string
	for _, in := range insts {
		if in.SpotRequest != "" {
			spot = append(spot, in.SpotRequest)
		}
	}
	for _, ids := range chunks(spot, 1000) {
		if _, err := c.EC2.CancelSpotInstanceRequests(ctx, &ec2.CancelSpotInstanceRequestsInput{SpotInstanceRequestIds: ids}); err != nil {
			return awsconf.Err("CancelSpotInstanceRequests", err)
		}
	}
	for _, ids := range chunks(IDs(insts), 1000) {
		if _, err := c.EC2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids}); err != nil {
			return awsconf.Err("TerminateInstances", err)
		}
	}
	return nil
}

func chunks(s []string, n int) [][]string {
	var out [][]string
	for len(s) > 0 {
		k := min(n, len(s))
		out = append(out, s[:k])
		s = s[k:]
	}
	return out
}

// WaitRunning polls until every instance in ids is running with an address, and returns
// them (in ids' order of launch). An instance that stops or terminates instead is an error.
// It filters on instance-id rather than naming the ids, so that instances just launched and
// not yet visible everywhere are waited for instead of failing with NotFound.
func (c *Client) WaitRunning(ctx context.Context, ids []string) ([]Instance, error) {
	return c.poll(ctx, ids, "running", func(in Instance) (bool, error) {
		switch in.State {
		case "running":
			return in.Address(false) != "", nil
		case "pending":
			return false, nil
		}
		why := ""
		if in.StateReason != "" {
			why = " (" + in.StateReason + ")"
		}
		return false, cli.Errorf(cli.ExitAWS, "instance %s is %s instead of running%s", in.ID, in.State, why)
	})
}

// WaitTerminated polls until every instance in ids is terminated.
func (c *Client) WaitTerminated(ctx context.Context, ids []string) error {
	_, err := c.poll(ctx, ids, "terminated", func(in Instance) (bool, error) { return in.State == "terminated", nil })
	return err
}

// PollInterval is the first delay between polls; it doubles up to 8 times that.
var PollInterval = 2 * time.Second

func (c *Client) poll(ctx context.Context, ids []string, goal string, done func(Instance) (bool, error)) ([]Instance, error) {
	delay := PollInterval
	for {
		var insts []Instance
		var pending []string
		for _, part := range chunks(ids, 1000) {
			got, err := c.Describe(ctx, []types.Filter{{Name: aws.String("instance-id"), Values: part}})
			if err != nil {
				return nil, err
			}
			insts = append(insts, got...)
		}
		seen := map[string]bool{}
		for _, in := range insts {
			seen[in.ID] = true
			ok, err := done(in)
			if err != nil {
				return nil, err
			}
			if !ok {
				pending = append(pending, in.ID)
			}
		}
		for _, id := range ids {
			if !seen[id] {
				pending = append(pending, id)
			}
		}
		if len(pending) == 0 {
			return insts, nil
		}
		select {
		case <-ctx.Done():
			return nil, waitErr(ctx, goal, pending)
		case <-time.After(delay):
		}
		delay = min(2*delay, 8*PollInterval)
	}
}

func waitErr(ctx context.Context, goal string, pending []string) error {
	what := fmt.Sprintf("%d instance(s) not %s: %s", len(pending), goal, strings.Join(pending, " "))
	if ctx.Err() == context.DeadlineExceeded {
		return cli.Errorf(cli.ExitUnreachable, "timed out: %s", what)
	}
	return cli.Errorf(cli.ExitInterrupted, "interrupted: %s", what)
}
