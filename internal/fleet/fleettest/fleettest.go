// Package fleettest helps tests that need EC2 from the local cloud: a client whose API calls
// are counted, and a loopback subnet to launch into (instances get 127.x addresses only).
package fleettest

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmw "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go/middleware"

	"ec2kit/internal/awsconf"
	"ec2kit/internal/cloudtest"
	"ec2kit/internal/fleet"
)

// Calls counts API requests per operation (every attempt, retries included).
type Calls struct {
	mu sync.Mutex
	n  map[string]int
}

// Total is the number of requests sent.
func (c *Calls) Total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := 0
	for _, n := range c.n {
		t += n
	}
	return t
}

// Counts returns a copy of the per-operation counts.
func (c *Calls) Counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[string]int{}
	for k, v := range c.n {
		m[k] = v
	}
	return m
}

// Reset forgets the counts so far.
func (c *Calls) Reset() {
	c.mu.Lock()
	c.n = map[string]int{}
	c.mu.Unlock()
}

// Config returns the local cloud's AWS configuration with every request counted in calls.
// It skips the test when the local cloud is not up.
func Config(t testing.TB) (aws.Config, *Calls) {
	cloudtest.Require(t)
	cfg, err := awsconf.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	calls := &Calls{n: map[string]int{}}
	cfg.APIOptions = append(cfg.APIOptions, func(s *middleware.Stack) error {
		// In the Finalize step after Retry, so each attempt counts.
		return s.Finalize.Add(middleware.FinalizeMiddlewareFunc("ec2kit-count",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				calls.mu.Lock()
				calls.n[awsmw.GetOperationName(ctx)]++
				calls.mu.Unlock()
				return next.HandleFinalize(ctx, in)
			}), middleware.After)
	})
	return cfg, calls
}

// Client returns a fleet client on Config.
func Client(t testing.TB) (*fleet.Client, *Calls) {
	cfg, calls := Config(t)
	return fleet.FromConfig(cfg), calls
}

// Subnet returns a subnet whose addresses are loopback addresses: EC2KIT_SUBNET when the local
// cloud set it, else one made in a new 127.1.0.0/16 VPC. Never launch without one: an
// emulator invents routable addresses for instances without a subnet.
func Subnet(t testing.TB, c *fleet.Client) string {
	if s := os.Getenv("EC2KIT_SUBNET"); s != "" {
		return s
	}
	ctx := context.Background()
	out, err := c.EC2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{
		Filters: []types.Filter{{Name: aws.String("cidr-block"), Values: []string{"127.1.0.0/20"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Subnets) > 0 {
		return aws.ToString(out.Subnets[0].SubnetId)
	}
	vpc, err := c.EC2.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("127.1.0.0/16")})
	if err != nil {
		t.Fatal(err)
	}
	sn, err := c.EC2.CreateSubnet(ctx, &ec2.CreateSubnetInput{
		VpcId: vpc.Vpc.VpcId, CidrBlock: aws.String("127.1.0.0/20"), AvailabilityZone: aws.String(c.Config.Region + "a")})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(sn.Subnet.SubnetId)
}

// Image returns an Amazon Linux image id the endpoint knows.
func Image(t testing.TB, c *fleet.Client) string {
	out, err := c.EC2.DescribeImages(context.Background(), &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
	if err != nil || len(out.Images) == 0 {
		t.Fatalf("no image: %v", err)
	}
	return aws.ToString(out.Images[0].ImageId)
}

// Launch starts n instances in subnet with tags and terminates them when the test ends.
func Launch(t testing.TB, c *fleet.Client, subnet string, n int, tags map[string]string) []string {
	var ts []types.Tag
	for k, v := range tags {
		ts = append(ts, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	in := &ec2.RunInstancesInput{
		ImageId: aws.String(Image(t, c)), InstanceType: types.InstanceTypeT3Micro,
		MinCount: aws.Int32(int32(n)), MaxCount: aws.Int32(int32(n)), SubnetId: aws.String(subnet),
	}
	if len(ts) > 0 {
		in.TagSpecifications = []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: ts}}
	}
	out, err := c.EC2.RunInstances(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, i := range out.Instances {
		ids = append(ids, aws.ToString(i.InstanceId))
	}
	t.Cleanup(func() {
		c.EC2.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: ids})
	})
	return ids
}
