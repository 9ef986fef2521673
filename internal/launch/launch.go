package launch

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"ec2kit/internal/awsconf"
	"ec2kit/internal/cli"
	"ec2kit/internal/fleet"
	"ec2kit/internal/hosts"
)

type launcher struct {
	ec2    *ec2.Client
	ssm    *ssm.Client
	sts    *sts.Client
	quotas *servicequotas.Client
	iam    *iam.Client
	// nodeProfile is the profile made and used by default (NodeProfile; tests use others).
	nodeProfile string
	fleet       *fleet.Client
	region      string
	log         io.Writer // stderr: what is happening
}

func newLauncher(cfg aws.Config, log io.Writer) *launcher {
	f := fleet.FromConfig(cfg)
	return &launcher{ec2: f.EC2, ssm: ssm.NewFromConfig(cfg), sts: sts.NewFromConfig(cfg), quotas: servicequotas.NewFromConfig(cfg, func(o *servicequotas.Options) { o.RetryMaxAttempts = 2 }),
		iam: iam.NewFromConfig(cfg), nodeProfile: NodeProfile,
		fleet: f, region: cfg.Region, log: log}
}

// Run is ec2-new: the ids on stdout once every instance is ready, talk on stderr.
func Run(ctx context.Context, o Options) error {
	named := o.Name != ""
	tags, err := o.check()
	if err != nil {
		return err
	}
	if !named {
		fmt.Fprintf(os.Stderr, "ec2-new: name: %s\n", o.Name)
	}
	cfg, err := awsconf.Load(ctx)
	if err != nil {
		return err
	}
	return newLauncher(cfg, os.Stderr).launch(ctx, o, tags, os.Stdout)
}

// launch launches the fleet described by checked options and prints its ids on out. Any
// failure after RunInstances, an interrupt included, terminates every instance this run
// launched before returning.
func (l *launcher) launch(ctx context.Context, o Options, tags map[string]string, out io.Writer) (err error) {
	if err := l.checkName(ctx, o); err != nil {
		return err
	}
	itypes := strings.Split(o.Type, ",")
	arch := ""
	for _, t := range itypes {
		a, vcpus, err := l.instanceType(ctx, t)
		if err != nil {
			return err
		}
		if arch != "" && a != arch {
			return cli.Errorf(cli.ExitUsage, "--type %s: %s runs %s images, %s runs %s: list types of one architecture", o.Type, itypes[0], arch, t, a)
		}
		arch = a
		if err := l.checkQuota(ctx, o, t, vcpus); err != nil {
			return err
		}
	}
	img, err := l.findImage(ctx, o.AMI, arch)
	if err != nil {
		return err
	}
	if o.User != "" {
		img.User = o.User
	}
	subnets, vpc, err := l.findSubnets(ctx, o.Subnets, o.VPC)
	if err != nil {
		return err
	}
	key, err := l.ensureKey(ctx)
	if err != nil {
		return err
	}
	group, err := l.ensureGroup(ctx, vpc)
	if err != nil {
		return err
	}
	profile, freshProfile, err := l.profile(ctx, o.Profile)
	if err != nil {
		return err
	}
	userData, err := UserData(img.User, o.Init, o.ttl())
	if err != nil {
		return err
	}
	token := randomHex(8)
	tags["Name"], tags[fleet.UserTag], tags[FleetTag], tags[LaunchTag] = o.Name, img.User, o.Name, token
	in := runInput(o, img, key, group, userData, tags)
	in.IamInstanceProfile = profile

	var ids []string
	defer func() {
		if err != nil {
			l.abort(ctx, token, ids, err)
		}
	}()
	fmt.Fprintf(l.log, "ec2-new: launching %d %s%s from %s (%s, user %s)\n", o.Num, o.Type, map[bool]string{true: " spot"}[o.Spot], img.ID, img.Name, img.User)
	ids, err = l.runTypes(ctx, in, itypes, subnets, token, freshProfile)
	if o.Min > 0 && o.Min < o.Num && slices.Contains(capacityCodes, apiCode(err)) && ctx.Err() == nil {
		// No pool has them all: EC2 launches as many as it can, at least MinCount.
		fmt.Fprintf(l.log, "ec2-new: no pool has %d; asking for at least %d (--min)\n", o.Num, o.Min)
		in.MinCount = aws.Int32(int32(o.Min))
		ids, err = l.runTypes(ctx, in, itypes, subnets, token+"-min", freshProfile)
		if err == nil && len(ids) < o.Num {
			fmt.Fprintf(l.log, "ec2-new: %d of the %d asked for (--min %d)\n", len(ids), o.Num, o.Min)
		}
	}
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return cli.Errorf(cli.ExitInterrupted, "interrupted")
	}
	if !o.NoWait {
		if err = l.wait(ctx, ids, o); err != nil {
			return err
		}
	}
	if _, err = io.WriteString(out, strings.Join(ids, "\n")+"\n"); err != nil {
		return cli.Errorf(cli.ExitLocal, "printing the ids: %v", err)
	}
	return nil
}

// instanceType checks the instance type (one call): the image architecture it runs, and its
// vCPUs (0 when not told).
func (l *launcher) instanceType(ctx context.Context, instanceType string) (arch string, vcpus int, err error) {
	out, err := l.ec2.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: []types.InstanceType{types.InstanceType(instanceType)}})
	if apiCode(err) == "InvalidInstanceType" {
		return "", 0, cli.Errorf(cli.ExitUsage, "unknown instance type %s", instanceType)
	}
	if err != nil {
		return "", 0, awsconf.Err("DescribeInstanceTypes", err)
	}
	if len(out.InstanceTypes) == 0 {
		return "x86_64", 0, nil
	}
	it := out.InstanceTypes[0]
	if it.VCpuInfo != nil {
		vcpus = int(aws.ToInt32(it.VCpuInfo.DefaultVCpus))
	}
	arch = "x86_64"
	if it.ProcessorInfo != nil {
		archs := it.ProcessorInfo.SupportedArchitectures
		if len(archs) > 0 && !slices.Contains(archs, types.ArchitectureTypeX8664) && slices.Contains(archs, types.ArchitectureTypeArm64) {
			arch = "arm64"
		}
	}
	return arch, vcpus, nil
}

// runInput is the one RunInstances request for the whole fleet (subnet set per attempt).
func runInput(o Options, img image, key, group, userData string, tags map[string]string) *ec2.RunInstancesInput {
	var ts []types.Tag
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		ts = append(ts, types.Tag{Key: aws.String(k), Value: aws.String(tags[k])})
	}
	in := &ec2.RunInstancesInput{
		ImageId: aws.String(img.ID),
		// Equal counts: all or nothing, so a partial fleet never needs explaining.
		MinCount:         aws.Int32(int32(o.Num)),
		MaxCount:         aws.Int32(int32(o.Num)),
		KeyName:          aws.String(key),
		SecurityGroupIds: []string{group},
		UserData:         aws.String(userData),
		TagSpecifications: []types.TagSpecification{
			{ResourceType: types.ResourceTypeInstance, Tags: ts},
			{ResourceType: types.ResourceTypeVolume, Tags: ts},
		},
	}
	if o.Gigs > 0 && img.RootDevice != "" {
		in.BlockDeviceMappings = []types.BlockDeviceMapping{{DeviceName: aws.String(img.RootDevice),
			Ebs: &types.EbsBlockDevice{VolumeSize: aws.Int32(int32(o.Gigs)), VolumeType: types.VolumeTypeGp3, DeleteOnTermination: aws.Bool(true)}}}
	}
	if o.Spot {
		in.InstanceMarketOptions = &types.InstanceMarketOptionsRequest{MarketType: types.MarketTypeSpot,
			SpotOptions: &types.SpotMarketOptions{SpotInstanceType: types.SpotInstanceTypeOneTime,
				InstanceInterruptionBehavior: types.InstanceInterruptionBehaviorTerminate}}
	}
	// A powered-off fleet member is ended, not kept as a stopped instance (a bill for EBS,
	// and an instance-store disk lost anyway), unless --shutdown stop asks for that.
	in.InstanceInitiatedShutdownBehavior = types.ShutdownBehaviorTerminate
	if o.Shutdown == ShutdownStop {
		in.InstanceInitiatedShutdownBehavior = types.ShutdownBehaviorStop
	}
	return in
}

// runTypes tries the types in the order given, each in every subnet before the next: the
// first is the one wanted, the others are fallbacks when it has no capacity anywhere.
func (l *launcher) runTypes(ctx context.Context, in *ec2.RunInstancesInput, itypes []string, subnets []types.Subnet, token string, freshProfile bool) (ids []string, err error) {
	for i, t := range itypes {
		in.InstanceType = types.InstanceType(t)
		ids, err = l.run(ctx, in, subnets, fmt.Sprintf("%s-%d", token, i), freshProfile)
		if err == nil || !slices.Contains(capacityCodes, apiCode(err)) || i == len(itypes)-1 || ctx.Err() != nil {
			return ids, err
		}
		fmt.Fprintf(l.log, "ec2-new: no %s capacity in any subnet (%s); trying %s\n", t, apiCode(err), itypes[i+1])
	}
	return nil, cli.Errorf(cli.ExitUsage, "no instance type to launch")
}

// capacityCodes are the errors that mean "not in this zone": the next subnet may do.
var capacityCodes = []string{"InsufficientInstanceCapacity", "InsufficientCapacity", "Unsupported",
	"InsufficientFreeAddressesInSubnet", "InsufficientHostCapacity"}

// run sends RunInstances to each subnet in turn until one has capacity. The call is not
// abandoned on an interrupt (its reply holds the ids to clean up); the caller checks ctx
// after it.
func (l *launcher) run(ctx context.Context, in *ec2.RunInstancesInput, subnets []types.Subnet, token string, freshProfile bool) ([]string, error) {
	for i, sn := range subnets {
		in.SubnetId = sn.SubnetId
		// Idempotent per subnet: a retried request never launches twice.
		in.ClientToken = aws.String(fmt.Sprintf("%s-%d", token, i))
		out, err := l.runInstances(ctx, in, freshProfile)
		if err == nil {
			ids := make([]string, len(out.Instances))
			for j, inst := range out.Instances {
				ids[j] = aws.ToString(inst.InstanceId)
			}
			fmt.Fprintf(l.log, "ec2-new: launched %d %s in %s (%s)\n", len(ids), in.InstanceType, aws.ToString(sn.SubnetId), aws.ToString(sn.AvailabilityZone))
			return ids, nil
		}
		if !slices.Contains(capacityCodes, apiCode(err)) || i == len(subnets)-1 || ctx.Err() != nil {
			return nil, awsconf.Err("RunInstances", err)
		}
		fmt.Fprintf(l.log, "ec2-new: %s (%s): %s; trying the next subnet\n", aws.ToString(sn.SubnetId), aws.ToString(sn.AvailabilityZone), apiCode(err))
	}
	return nil, cli.Errorf(cli.ExitUsage, "no subnet to launch in")
}

// profileWait bounds how long a launch refused for a just-made instance profile is retried:
// IAM takes a few seconds to tell EC2 about it.
const profileWait = time.Minute

// runInstances is one RunInstances request, not abandoned on an interrupt (its reply holds
// the ids to clean up). With a just-made instance profile, EC2's refusal of the profile
// (InvalidParameterValue) is retried until profileWait.
func (l *launcher) runInstances(ctx context.Context, in *ec2.RunInstancesInput, freshProfile bool) (*ec2.RunInstancesOutput, error) {
	token := aws.ToString(in.ClientToken)
	deadline := time.Now().Add(profileWait)
	for try := 1; ; try++ {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		out, err := l.ec2.RunInstances(rctx, in)
		cancel()
		if err == nil || !freshProfile || apiCode(err) != "InvalidParameterValue" || time.Now().After(deadline) {
			return out, err
		}
		fmt.Fprintf(l.log, "ec2-new: EC2 does not accept the new instance profile yet (%s); retrying\n", apiCode(err))
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(2 * time.Second):
		}
		// A refused request launched nothing; a token of its own keeps the retry apart.
		in.ClientToken = aws.String(fmt.Sprintf("%s-%d", token, try))
	}
}

// wait waits, within o.Wait, until every instance runs, accepts SSH and finished booting.
func (l *launcher) wait(ctx context.Context, ids []string, o Options) error {
	wctx, cancel := context.WithTimeout(ctx, o.Wait)
	defer cancel()
	insts, err := l.fleet.WaitRunning(wctx, ids)
	if err == nil {
		_, err = Ready(wctx, insts, hosts.Conn{Private: o.Private, ConnectTimeout: o.ConnectTimeout}, !o.InitOkFail, l.log)
	}
	if err != nil && ctx.Err() != nil {
		return cli.Errorf(cli.ExitInterrupted, "interrupted while waiting")
	}
	return err
}

// abort terminates every instance the run launched: the ids RunInstances returned, and any
// carrying the run's launch tag (a launch whose reply was lost). It runs even after an
// interrupt, and says what it did.
func (l *launcher) abort(ctx context.Context, token string, ids []string, cause error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	found, _ := l.fleet.Describe(ctx, []types.Filter{{Name: aws.String("tag:" + LaunchTag), Values: []string{token}}})
	var targets []fleet.Instance
	for _, in := range found {
		if in.State != "terminated" {
			targets = append(targets, in)
		}
	}
	for _, id := range ids {
		if !slices.ContainsFunc(found, func(in fleet.Instance) bool { return in.ID == id }) {
			targets = append(targets, fleet.Instance{ID: id})
		}
	}
	if len(targets) == 0 {
		return
	}
	all := fleet.IDs(targets)
	var err error
	for try := 0; try < 5; try++ {
		// Instances just launched may not be visible to TerminateInstances yet.
		if err = l.fleet.Terminate(ctx, targets); apiCode(err) != "InvalidInstanceID.NotFound" {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil {
		fmt.Fprintf(l.log, "ec2-new: %v; COULD NOT TERMINATE the %d instance(s) launched: %v\nec2-new: run: ec2-rm --yes %s\n",
			cause, len(all), err, strings.Join(all, " "))
		return
	}
	fmt.Fprintf(l.log, "ec2-new: terminated the %d instance(s) this run launched: %s\n", len(all), strings.Join(all, " "))
}
