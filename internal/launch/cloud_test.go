package launch

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"ec2kit/internal/cli"
	"ec2kit/internal/fleet"
	"ec2kit/internal/fleet/fleettest"
)

// newTestLauncher returns a launcher on the local cloud with counted API calls, its state
// directory in a temporary one.
func newTestLauncher(t *testing.T) (*launcher, *fleettest.Calls, *strings.Builder) {
	cfg, calls := fleettest.Config(t)
	t.Setenv("EC2KIT_HOME", t.TempDir())
	var log strings.Builder
	return newLauncher(cfg, &log), calls, &log
}

func subnetOf(t *testing.T, l *launcher) string {
	return fleettest.Subnet(t, l.fleet)
}

// live returns the live instances of a fleet name.
func live(t *testing.T, l *launcher, name string) []fleet.Instance {
	insts, err := l.fleet.Resolve(context.Background(), []string{FleetTag + "=" + name})
	if cli.CodeOf(err) == cli.ExitNoMatch {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return insts
}

func cleanup(t *testing.T, l *launcher, name string) {
	t.Cleanup(func() {
		if insts := live(t, l, name); len(insts) > 0 {
			l.fleet.Terminate(context.Background(), insts)
		}
	})
}

// TestLaunchFiftyCalls: a fleet of 50 is a constant number of API calls.
func TestLaunchFiftyCalls(t *testing.T) {
	l, calls, log := newTestLauncher(t)
	o := Options{Name: "calls-" + randomHex(3), Num: 50, Type: "t3.micro", NoWait: true, Subnets: []string{subnetOf(t, l)}}
	cleanup(t, l, o.Name)
	tags, err := o.check()
	if err != nil {
		t.Fatal(err)
	}
	calls.Reset()
	var out strings.Builder
	if err := l.launch(context.Background(), o, tags, &out); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	ids := strings.Fields(out.String())
	n := calls.Total()
	t.Logf("%d instances, %d API calls: %v", len(ids), n, calls.Counts())
	// STS, DescribeInstanceTypes, SSM, DescribeImages, DescribeKeyPairs, ImportKeyPair,
	// DescribeSubnets, DescribeSecurityGroups (+ Create, Authorize), RunInstances.
	if len(ids) != 50 || n > 11 || calls.Counts()["RunInstances"] != 1 {
		t.Fatalf("%d ids, %d calls", len(ids), n)
	}
	if got := live(t, l, o.Name); len(got) != 50 || got[0].User != "ec2-user" || got[0].Tags[LaunchTag] == "" {
		t.Fatalf("tags: %+v", got[0])
	}
}

// TestLaunchTimeoutCleansUp: an instance that never finishes booting makes ec2-new fail
// and terminate the whole fleet.
func TestLaunchTimeoutCleansUp(t *testing.T) {
	l, _, log := newTestLauncher(t)
	o := Options{Name: "timeout-" + randomHex(3), Num: 2, Type: "t3.micro", Wait: 4 * time.Second,
		Init: "sleep 600", Subnets: []string{subnetOf(t, l)}}
	cleanup(t, l, o.Name)
	tags, _ := o.check()
	var out strings.Builder
	err := l.launch(context.Background(), o, tags, &out)
	if cli.CodeOf(err) != cli.ExitUnreachable || out.Len() != 0 {
		t.Fatalf("want a timeout and no ids, got %v %q", err, out.String())
	}
	if !strings.Contains(log.String(), "terminated the 2 instance(s) this run launched") {
		t.Fatalf("log:\n%s", log)
	}
	if insts := live(t, l, o.Name); len(insts) != 0 {
		for _, in := range insts {
			if in.State != "shutting-down" {
				t.Fatalf("left behind: %v", fleet.IDs(insts))
			}
		}
	}
}

// TestCapacityNextZone: a zone without capacity sends the fleet, whole, to the next subnet.
// The capacity error is injected in front of the real endpoint, which never runs out.
func TestCapacityNextZone(t *testing.T) {
	cfg, _ := fleettest.Config(t)
	t.Setenv("EC2KIT_HOME", t.TempDir())
	first := fleettest.Subnet(t, fleet.FromConfig(cfg))
	second := extraSubnet(t, fleet.FromConfig(cfg), first)
	cfg.APIOptions = append(cfg.APIOptions, func(s *middleware.Stack) error {
		return s.Initialize.Add(middleware.InitializeMiddlewareFunc("no-capacity",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				if r, ok := in.Parameters.(*ec2.RunInstancesInput); ok && aws.ToString(r.SubnetId) == first {
					return middleware.InitializeOutput{}, middleware.Metadata{}, &smithy.GenericAPIError{Code: "InsufficientInstanceCapacity", Message: "none here"}
				}
				return next.HandleInitialize(ctx, in)
			}), middleware.After)
	})
	var log strings.Builder
	l := newLauncher(cfg, &log)
	o := Options{Name: "capacity-" + randomHex(3), Num: 3, Type: "t3.micro", NoWait: true, Subnets: []string{first, second}}
	cleanup(t, l, o.Name)
	tags, _ := o.check()
	if err := l.launch(context.Background(), o, tags, io.Discard); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	insts := live(t, l, o.Name)
	if len(insts) != 3 || !strings.Contains(log.String(), "InsufficientInstanceCapacity; trying the next subnet") {
		t.Fatalf("%v\n%s", fleet.IDs(insts), log.String())
	}
}

// extraSubnet makes (or finds) a second loopback subnet in the VPC of subnet.
func extraSubnet(t *testing.T, c *fleet.Client, subnet string) string {
	ctx := context.Background()
	out, err := c.EC2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{subnet}})
	if err != nil {
		t.Fatal(err)
	}
	vpc := out.Subnets[0].VpcId
	cidr := "127.1.240.0/24"
	found, err := c.EC2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []types.Filter{
		{Name: aws.String("vpc-id"), Values: []string{*vpc}}, {Name: aws.String("cidr-block"), Values: []string{cidr}}}})
	if err == nil && len(found.Subnets) > 0 {
		return *found.Subnets[0].SubnetId
	}
	sn, err := c.EC2.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: vpc, CidrBlock: aws.String(cidr), AvailabilityZone: aws.String(c.Config.Region + "b")})
	if err != nil {
		t.Fatal(err)
	}
	return *sn.Subnet.SubnetId
}
