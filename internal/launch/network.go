package launch

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"ec2kit/internal/awsconf"
	"ec2kit/internal/cli"
)

// SecurityGroup is the group ec2-new ensures in each VPC: SSH in from anywhere.
const SecurityGroup = "ec2kit"

// findSubnets returns the subnets to try, in zone order: --subnet's, else --vpc's, else the
// default VPC's, and the VPC they are in.
func (l *launcher) findSubnets(ctx context.Context, subnets []string, vpc string) ([]types.Subnet, string, error) {
	in := &ec2.DescribeSubnetsInput{}
	what := "the default VPC (pass --subnet or --vpc)"
	switch {
	case len(subnets) > 0:
		in.Filters = []types.Filter{{Name: aws.String("subnet-id"), Values: subnets}}
		what = strings.Join(subnets, ", ")
	case vpc != "":
		in.Filters = []types.Filter{{Name: aws.String("vpc-id"), Values: []string{vpc}}}
		what = "VPC " + vpc
	default:
		in.Filters = []types.Filter{{Name: aws.String("default-for-az"), Values: []string{"true"}}}
	}
	var found []types.Subnet
	p := ec2.NewDescribeSubnetsPaginator(l.ec2, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, "", awsconf.Err("DescribeSubnets", err)
		}
		found = append(found, page.Subnets...)
	}
	if len(found) == 0 {
		return nil, "", cli.Errorf(cli.ExitUsage, "no subnet found in %s", what)
	}
	for _, s := range subnets {
		if !slices.ContainsFunc(found, func(f types.Subnet) bool { return aws.ToString(f.SubnetId) == s }) {
			return nil, "", cli.Errorf(cli.ExitUsage, "no such subnet: %s", s)
		}
	}
	vpcID := aws.ToString(found[0].VpcId)
	for _, s := range found {
		if aws.ToString(s.VpcId) != vpcID {
			return nil, "", cli.Errorf(cli.ExitUsage, "the subnets are in several VPCs (%s, %s): pick subnets of one", vpcID, aws.ToString(s.VpcId))
		}
	}
	if len(subnets) == 0 {
		// Given subnets keep their order (the user's preference); found ones go by zone.
		slices.SortFunc(found, func(a, b types.Subnet) int {
			return strings.Compare(aws.ToString(a.AvailabilityZone), aws.ToString(b.AvailabilityZone))
		})
	} else {
		slices.SortFunc(found, func(a, b types.Subnet) int {
			return slices.Index(subnets, aws.ToString(a.SubnetId)) - slices.Index(subnets, aws.ToString(b.SubnetId))
		})
	}
	return found, vpcID, nil
}

// ensureGroup returns the id of the ec2kit security group of a VPC, creating it (SSH in) on
// first use.
func (l *launcher) ensureGroup(ctx context.Context, vpc string) (string, error) {
	find := func() (string, error) {
		out, err := l.ec2.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: []types.Filter{
			{Name: aws.String("group-name"), Values: []string{SecurityGroup}},
			{Name: aws.String("vpc-id"), Values: []string{vpc}}}})
		if err != nil || len(out.SecurityGroups) == 0 {
			return "", awsconf.Err("DescribeSecurityGroups", err)
		}
		return aws.ToString(out.SecurityGroups[0].GroupId), nil
	}
	if id, err := find(); id != "" || err != nil {
		return id, err
	}
	out, err := l.ec2.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{
		GroupName: aws.String(SecurityGroup), VpcId: aws.String(vpc),
		Description: aws.String("ec2kit instances: SSH in"),
	})
	if apiCode(err) == "InvalidGroup.Duplicate" { // another ec2-new made it meanwhile
		return find()
	}
	if err != nil {
		return "", awsconf.Err("CreateSecurityGroup", err)
	}
	id := aws.ToString(out.GroupId)
	_, err = l.ec2.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{
		GroupId: aws.String(id),
		IpPermissions: []types.IpPermission{{
			IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22),
			IpRanges:   []types.IpRange{{CidrIp: aws.String("0.0.0.0/0"), Description: aws.String("SSH")}},
			Ipv6Ranges: []types.Ipv6Range{{CidrIpv6: aws.String("::/0"), Description: aws.String("SSH")}},
		}},
	})
	if err != nil && apiCode(err) != "InvalidPermission.Duplicate" {
		return "", awsconf.Err("AuthorizeSecurityGroupIngress", err)
	}
	return id, nil
}

// apiCode is an AWS error's code ("" for other errors).
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}
