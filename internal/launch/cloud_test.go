package launch

import (
	"context"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	sqtypes "github.com/aws/aws-sdk-go-v2/service/servicequotas/types"
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
	// DescribeInstances (the name is free), DescribeInstanceTypes, the vCPU quota (up to 3:
	// the local cloud has none, so the default is asked for too, and fails), STS, SSM,
	// DescribeImages, DescribeKeyPairs, ImportKeyPair, DescribeSubnets,
	// DescribeSecurityGroups (+ Create, Authorize), GetInstanceProfile (+ 4 calls to make
	// it the first time), RunInstances.
	if len(ids) != 50 || n > 20 || calls.Counts()["RunInstances"] != 1 {
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
	inject(&cfg, "no-capacity", func(p any) (any, error, bool) {
		if r, ok := p.(*ec2.RunInstancesInput); ok && aws.ToString(r.SubnetId) == first {
			return nil, &smithy.GenericAPIError{Code: "InsufficientInstanceCapacity", Message: "none here"}, true
		}
		return nil, nil, false
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

// inject answers an operation in front of the real endpoint: answer returns the result (or
// error) to give, or ok false to let the request through.
func inject(cfg *aws.Config, name string, answer func(params any) (result any, err error, ok bool)) {
	cfg.APIOptions = append(cfg.APIOptions, func(s *middleware.Stack) error {
		return s.Initialize.Add(middleware.InitializeMiddlewareFunc(name,
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				if res, err, ok := answer(in.Parameters); ok {
					return middleware.InitializeOutput{Result: res}, middleware.Metadata{}, err
				}
				return next.HandleInitialize(ctx, in)
			}), middleware.After)
	})
}

// TestQuota: a fleet needing more vCPUs than the account's quota is refused before
// RunInstances (a usage error); one within it launches.
func TestQuota(t *testing.T) {
	cfg, calls := fleettest.Config(t)
	t.Setenv("EC2KIT_HOME", t.TempDir())
	inject(&cfg, "quota-10", func(p any) (any, error, bool) {
		if _, ok := p.(*servicequotas.GetServiceQuotaInput); ok {
			return &servicequotas.GetServiceQuotaOutput{Quota: &sqtypes.ServiceQuota{Value: aws.Float64(10)}}, nil, true
		}
		return nil, nil, false
	})
	var log strings.Builder
	l := newLauncher(cfg, &log)
	sn := fleettest.Subnet(t, l.fleet)
	o := Options{Name: "quota-" + randomHex(3), Num: 6, Type: "t3.micro", NoWait: true, Subnets: []string{sn}}
	cleanup(t, l, o.Name)
	tags, _ := o.check()
	err := l.launch(context.Background(), o, tags, io.Discard)
	if cli.CodeOf(err) != cli.ExitUsage || !strings.Contains(err.Error(), "12 vCPUs, more than the account's quota of 10") || calls.Counts()["RunInstances"] != 0 {
		t.Fatalf("6 x 2 vCPUs against a quota of 10: %v, %v", err, calls.Counts())
	}
	o.Num = 5
	if err := l.launch(context.Background(), o, tags, io.Discard); err != nil {
		t.Fatalf("5 x 2 vCPUs: %v\n%s", err, log.String())
	}
}

// TestAbortRetriesNotFound: instances TerminateInstances does not see yet (NotFound, as
// right after a launch) are terminated on a later try, told apart by the API's error code.
func TestAbortRetriesNotFound(t *testing.T) {
	cfg, calls := fleettest.Config(t)
	t.Setenv("EC2KIT_HOME", t.TempDir())
	var refused atomic.Bool
	inject(&cfg, "not-found-once", func(p any) (any, error, bool) {
		if _, ok := p.(*ec2.TerminateInstancesInput); ok && refused.CompareAndSwap(false, true) {
			return nil, &smithy.GenericAPIError{Code: "InvalidInstanceID.NotFound", Message: "not yet"}, true
		}
		return nil, nil, false
	})
	var log strings.Builder
	l := newLauncher(cfg, &log)
	o := Options{Name: "abort-" + randomHex(3), Num: 2, Type: "t3.micro", Wait: 3 * time.Second, Init: "sleep 600",
		Subnets: []string{fleettest.Subnet(t, l.fleet)}}
	cleanup(t, l, o.Name)
	tags, _ := o.check()
	if err := l.launch(context.Background(), o, tags, io.Discard); err == nil {
		t.Fatal("want a timeout")
	}
	if !refused.Load() || calls.Counts()["TerminateInstances"] != 1 || !strings.Contains(log.String(), "terminated the 2 instance(s)") {
		t.Fatalf("%v\n%s", calls.Counts(), log.String())
	}
}

// TestProfilePropagation: RunInstances refusing a just-made instance profile (IAM has not
// told EC2 yet) is retried; a profile that was there before is not waited for.
func TestProfilePropagation(t *testing.T) {
	cfg, calls := fleettest.Config(t)
	t.Setenv("EC2KIT_HOME", t.TempDir())
	var refusals atomic.Int32
	inject(&cfg, "profile-not-yet", func(p any) (any, error, bool) {
		if _, ok := p.(*ec2.RunInstancesInput); ok && refusals.Add(1) <= 2 {
			return nil, &smithy.GenericAPIError{Code: "InvalidParameterValue", Message: "Invalid IAM Instance Profile name"}, true
		}
		return nil, nil, false
	})
	var log strings.Builder
	l := newLauncher(cfg, &log)
	o := Options{Name: "profile-" + randomHex(3), Num: 1, Type: "t3.micro", NoWait: true, Subnets: []string{fleettest.Subnet(t, l.fleet)}}
	cleanup(t, l, o.Name)
	tags, _ := o.check()
	if _, err := l.ensureNodeProfile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := l.launch(context.Background(), o, tags, io.Discard); apiCode(err) != "InvalidParameterValue" || calls.Counts()["RunInstances"] != 0 {
		t.Fatalf("an old profile refused: %v, %v", err, calls.Counts())
	}
	refusals.Store(0)
	in := runInput(o, image{ID: "ami-1"}, "k", "sg", "", tags)
	in.SubnetId = aws.String(o.Subnets[0])
	_, err := l.runInstances(context.Background(), in, true)
	if refusals.Load() != 3 || !strings.Contains(log.String(), "does not accept the new instance profile yet") {
		t.Fatalf("a new profile: %d tries, %v\n%s", refusals.Load(), err, log.String())
	}
}

// TestNodeProfileRace: two launches making the node profile at once both succeed, and the
// account ends with one profile holding its one role.
func TestNodeProfileRace(t *testing.T) {
	cfg, _ := fleettest.Config(t)
	name := "ec2kit-race-" + randomHex(3)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	var logs [2]strings.Builder
	for i := range errs {
		l := newLauncher(cfg, &logs[i])
		l.nodeProfile = name
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = l.ensureNodeProfile(context.Background())
		}()
	}
	wg.Wait()
	c := iam.NewFromConfig(cfg)
	ctx := context.Background()
	t.Cleanup(func() {
		c.RemoveRoleFromInstanceProfile(ctx, &iam.RemoveRoleFromInstanceProfileInput{InstanceProfileName: &name, RoleName: &name})
		c.DeleteInstanceProfile(ctx, &iam.DeleteInstanceProfileInput{InstanceProfileName: &name})
		c.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: &name, PolicyName: aws.String(nodePolicy)})
		c.DeleteRole(ctx, &iam.DeleteRoleInput{RoleName: &name})
	})
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("%v / %v", errs[0], errs[1])
	}
	out, err := c.GetInstanceProfile(ctx, &iam.GetInstanceProfileInput{InstanceProfileName: &name})
	if err != nil || len(out.InstanceProfile.Roles) != 1 || aws.ToString(out.InstanceProfile.Roles[0].RoleName) != name {
		t.Fatalf("%v %+v", err, out)
	}
}
