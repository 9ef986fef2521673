package launch

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"ec2kit/internal/awsconf"
	"ec2kit/internal/cli"
)

// NodeProfile is the IAM role and instance profile ec2-new makes once per account and
// launches with by default: EC2 may assume it, and it may read S3.
const NodeProfile = "ec2kit-node"

// NoProfile is the --profile value that launches without an instance profile.
const NoProfile = "none"

// nodeTrust lets EC2 instances assume the node role.
const nodeTrust = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`

// nodeS3Read is read-only S3, as the managed policy AmazonS3ReadOnlyAccess grants, inline so
// that it exists in every partition and emulator.
const nodeS3Read = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:Get*","s3:List*"],"Resource":"*"}]}`

// nodePolicy is the name of the node role's inline policy.
const nodePolicy = "ec2kit-s3-read"

// profile returns the instance profile to launch with (nil for none), and whether this run
// made it (RunInstances may not see a new one for a while). The default is NodeProfile,
// made on first use.
func (l *launcher) profile(ctx context.Context, given string) (*types.IamInstanceProfileSpecification, bool, error) {
	switch {
	case given == NoProfile:
		return nil, false, nil
	case given == "":
		made, err := l.ensureNodeProfile(ctx)
		return &types.IamInstanceProfileSpecification{Name: aws.String(l.nodeProfile)}, made, err
	}
	spec := &types.IamInstanceProfileSpecification{Name: aws.String(given)}
	name := given
	if strings.HasPrefix(given, "arn:") {
		// arn:PARTITION:iam::ACCOUNT:instance-profile/PATH/NAME
		spec = &types.IamInstanceProfileSpecification{Arn: aws.String(given)}
		name = given[strings.LastIndex(given, "/")+1:]
	}
	_, err := l.iam.GetInstanceProfile(ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String(name)})
	var missing *iamtypes.NoSuchEntityException
	switch {
	case errors.As(err, &missing):
		return nil, false, cli.WithHint(cli.Errorf(cli.ExitAWS, "IAM GetInstanceProfile: no instance profile named %s in this account", name),
			"create it, name another (--profile NAME|ARN), use ec2-new's own (leave --profile out) or launch without one (--profile none)")
	case err != nil && apiCode(err) != "AccessDenied":
		return nil, false, awsconf.Err("IAM GetInstanceProfile", err)
	}
	// Not allowed to look: RunInstances will say whether it may pass the profile.
	return spec, false, nil
}

// ensureNodeProfile makes the node profile and its role when they are missing, and says whether
// it made anything. Every step accepts "already exists", so two launches racing in a fresh
// account both end with the one profile.
func (l *launcher) ensureNodeProfile(ctx context.Context) (bool, error) {
	out, err := l.iam.GetInstanceProfile(ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String(l.nodeProfile)})
	if err == nil && len(out.InstanceProfile.Roles) > 0 {
		return false, nil
	}
	var missing *iamtypes.NoSuchEntityException
	if err != nil && !errors.As(err, &missing) {
		return false, iamErr("GetInstanceProfile", err)
	}
	fmt.Fprintf(l.log, "ec2-new: making the IAM role and instance profile %s (EC2 nodes may read S3), once\n", l.nodeProfile)
	var exists *iamtypes.EntityAlreadyExistsException
	_, err = l.iam.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String(l.nodeProfile), AssumeRolePolicyDocument: aws.String(nodeTrust),
		Description: aws.String("ec2kit nodes: read S3")})
	if err != nil && !errors.As(err, &exists) {
		return false, iamErr("CreateRole", err)
	}
	if _, err = l.iam.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(l.nodeProfile), PolicyName: aws.String(nodePolicy),
		PolicyDocument: aws.String(nodeS3Read)}); err != nil {
		return false, iamErr("PutRolePolicy", err)
	}
	_, err = l.iam.CreateInstanceProfile(ctx, &iam.CreateInstanceProfileInput{InstanceProfileName: aws.String(l.nodeProfile)})
	if err != nil && !errors.As(err, &exists) {
		return false, iamErr("CreateInstanceProfile", err)
	}
	var full *iamtypes.LimitExceededException // the profile has its one role already
	_, err = l.iam.AddRoleToInstanceProfile(ctx, &iam.AddRoleToInstanceProfileInput{InstanceProfileName: aws.String(l.nodeProfile), RoleName: aws.String(l.nodeProfile)})
	if err != nil && !errors.As(err, &full) {
		return false, iamErr("AddRoleToInstanceProfile", err)
	}
	return true, nil
}

// iamErr is a failed IAM call of the node profile's set-up, with what to do instead.
func iamErr(op string, err error) error {
	return cli.WithHint(awsconf.Err("IAM "+op, err), fmt.Sprintf("ec2-new makes the instance profile %s once (iam:GetInstanceProfile, CreateRole, PutRolePolicy, "+
		"CreateInstanceProfile, AddRoleToInstanceProfile, PassRole): allow those, have someone run ec2-new once with them, "+
		"or launch with an existing profile (--profile NAME) or none (--profile none)", NodeProfile))
}
