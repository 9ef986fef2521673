package fleet

import (
	"context"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"ec2kit/internal/awsconf"
	"ec2kit/internal/cli"
)

// UserTag records an instance's login user (ec2-new sets it from the AMI).
const UserTag = "ec2kit:user"

// DefaultUser is the login user of instances without UserTag (Amazon Linux).
const DefaultUser = "ec2-user"

// States are the instance states EC2 knows.
var States = []string{"pending", "running", "stopping", "stopped", "shutting-down", "terminated"}

// LiveStates is every state but terminated: the default of Resolve.
var LiveStates = States[:len(States)-1]

// Resolve turns selectors (instance ids, Name tag values, key=value tags; several mean the
// union) into instances in a stable order: launch time, then id. No selector selects every
// instance. A selector that matches nothing is an ExitNoMatch error naming it. states limits
// the instance states (default: all but terminated). One paginated DescribeInstances call,
// however many selectors.
func (c *Client) Resolve(ctx context.Context, selectors []string, states ...string) ([]Instance, error) {
	sels, err := ParseSelectors(selectors)
	if err != nil {
		return nil, err
	}
	if len(states) == 0 {
		states = LiveStates
	}
	for _, s := range states {
		if !slices.Contains(States, s) {
			return nil, cli.Errorf(cli.ExitUsage, "unknown instance state %q (one of %s)", s, strings.Join(States, ", "))
		}
	}
	all, err := c.Describe(ctx, append(narrow(sels), types.Filter{Name: aws.String("instance-state-name"), Values: states}))
	if err != nil {
		return nil, err
	}
	if len(sels) == 0 {
		return all, nil
	}
	var out []Instance
	matched := make([]bool, len(sels))
	for _, inst := range all {
		hit := false
		for i, s := range sels {
			if s.Match(inst) {
				matched[i], hit = true, true
			}
		}
		if hit {
			out = append(out, inst)
		}
	}
	var missing []string
	for i, s := range sels {
		if !matched[i] {
			missing = append(missing, s.Raw)
		}
	}
	if len(missing) > 0 {
		return out, cli.Errorf(cli.ExitNoMatch, "no %s instance matches %s", strings.Join(states, "/"), strings.Join(missing, ", "))
	}
	return out, nil
}

// narrow returns a server-side filter that selects a superset of the union when all the
// selectors are of one kind (the common case); mixed kinds are matched client-side only,
// since EC2 filters can only AND.
func narrow(sels []Selector) []types.Filter {
	if len(sels) == 0 {
		return nil
	}
	name := ""
	var values []string
	for _, s := range sels {
		n := "tag:" + s.Key
		switch s.Kind {
		case ByID:
			n = "instance-id"
		case ByName:
			n = "tag:Name"
		}
		if name != "" && n != name {
			return nil
		}
		name = n
		values = append(values, s.Value)
	}
	return []types.Filter{{Name: aws.String(name), Values: values}}
}

// Describe lists the instances matching filters (all pages), sorted by launch time, then id.
func (c *Client) Describe(ctx context.Context, filters []types.Filter) ([]Instance, error) {
	var out []Instance
	p := ec2.NewDescribeInstancesPaginator(c.EC2, &ec2.DescribeInstancesInput{Filters: filters, MaxResults: aws.Int32(1000)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, awsconf.Err("DescribeInstances", err)
		}
		for _, r := range page.Reservations {
			for _, i := range r.Instances {
				out = append(out, fromEC2(i))
			}
		}
	}
	slices.SortFunc(out, func(a, b Instance) int {
		if c := a.LaunchTime.Compare(b.LaunchTime); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

func fromEC2(i types.Instance) Instance {
	inst := Instance{
		ID:          aws.ToString(i.InstanceId),
		Type:        string(i.InstanceType),
		Lifecycle:   "on-demand",
		PrivateIP:   aws.ToString(i.PrivateIpAddress),
		PublicIP:    aws.ToString(i.PublicIpAddress),
		KeyName:     aws.ToString(i.KeyName),
		User:        DefaultUser,
		LaunchTime:  aws.ToTime(i.LaunchTime),
		Tags:        map[string]string{},
		SpotRequest: aws.ToString(i.SpotInstanceRequestId),
	}
	if i.State != nil {
		inst.State = string(i.State.Name)
	}
	if i.StateReason != nil {
		inst.StateReason = aws.ToString(i.StateReason.Message)
	}
	// Derived here rather than filtered on instance-lifecycle, which not every endpoint implements.
	if i.InstanceLifecycle == types.InstanceLifecycleTypeSpot {
		inst.Lifecycle = "spot"
	}
	if i.Placement != nil {
		inst.Zone = aws.ToString(i.Placement.AvailabilityZone)
	}
	for _, t := range i.Tags {
		inst.Tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	inst.Name = inst.Tags["Name"]
	if u := inst.Tags[UserTag]; u != "" {
		inst.User = u
	}
	return inst
}

// IDs returns the instances' ids, in order.
func IDs(insts []Instance) []string {
	ids := make([]string, len(insts))
	for i, in := range insts {
		ids[i] = in.ID
	}
	return ids
}
