package watcher

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"ec2kit/internal/fleet"
	"ec2kit/internal/localcloud/sandbox"
)

// EC2 is the Cloud of an EC2 API endpoint (moto's, in the local cloud).
type EC2 struct {
	Client *ec2.Client
	Env    func(ip string) []string // the environment of the host's sessions and user data
	Hide   []string                 // directories hosts must not see
	AWSCLI string                   // a Python venv with the aws CLI, the hosts' `aws`

	mu    sync.Mutex
	users map[string]string // image id -> login user
}

// Instances lists every instance but the terminated ones, which Plan treats as gone anyway:
// moto keeps them for good and writes each one out in every answer, so after a fleet of a
// thousand a round listing them took 7 s of moto's CPU, round after round.
func (c *EC2) Instances(ctx context.Context) ([]Instance, error) {
	var out []Instance
	err := c.each(ctx, []types.Filter{{Name: aws.String("instance-state-name"), Values: fleet.LiveStates}}, func(i types.Instance) {
		in := Instance{ID: aws.ToString(i.InstanceId), IP: aws.ToString(i.PrivateIpAddress),
			KeyName: aws.ToString(i.KeyName), ImageID: aws.ToString(i.ImageId)}
		if i.State != nil {
			in.State = string(i.State.Name)
		}
		out = append(out, in)
	})
	return out, err
}

// Running asks EC2 which of ids are running.
func (c *EC2) Running(ctx context.Context, ids []string) (map[string]bool, error) {
	running := map[string]bool{}
	err := c.each(ctx, []types.Filter{{Name: aws.String("instance-id"), Values: ids},
		{Name: aws.String("instance-state-name"), Values: []string{"running"}}}, func(i types.Instance) {
		running[aws.ToString(i.InstanceId)] = true
	})
	return running, err
}

// each calls fn for every instance matching filters, page after page.
func (c *EC2) each(ctx context.Context, filters []types.Filter, fn func(types.Instance)) error {
	p := ec2.NewDescribeInstancesPaginator(c.Client, &ec2.DescribeInstancesInput{Filters: filters})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, r := range page.Reservations {
			for _, i := range r.Instances {
				fn(i)
			}
		}
	}
	return nil
}

// Spec reads the instance's key pair, AMI and user data.
func (c *EC2) Spec(ctx context.Context, in Instance) (sandbox.Spec, error) {
	s := sandbox.Spec{ID: in.ID, IP: in.IP, Env: c.Env(in.IP), Hide: c.Hide, AWSCLI: c.AWSCLI}
	var err error
	if s.User, err = c.loginUser(ctx, in.ImageID); err != nil {
		return s, err
	}
	if in.KeyName != "" {
		kp, err := c.Client.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{
			KeyNames: []string{in.KeyName}, IncludePublicKey: aws.Bool(true)})
		if err != nil {
			return s, fmt.Errorf("key pair %s: %w", in.KeyName, err)
		}
		if len(kp.KeyPairs) > 0 {
			s.AuthorizedKey = strings.TrimSpace(aws.ToString(kp.KeyPairs[0].PublicKey))
		}
	}
	ud, err := c.Client.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{
		InstanceId: aws.String(in.ID), Attribute: types.InstanceAttributeNameUserData})
	if err != nil {
		return s, fmt.Errorf("user data: %w", err)
	}
	if ud.UserData != nil && aws.ToString(ud.UserData.Value) != "" {
		if s.UserData, err = base64.StdEncoding.DecodeString(aws.ToString(ud.UserData.Value)); err != nil {
			return s, fmt.Errorf("user data is not base64: %w", err)
		}
	}
	return s, nil
}

func (c *EC2) loginUser(ctx context.Context, imageID string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if u, ok := c.users[imageID]; ok {
		return u, nil
	}
	out, err := c.Client.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{imageID}})
	if err != nil {
		return "", fmt.Errorf("image %s: %w", imageID, err)
	}
	name := ""
	if len(out.Images) > 0 {
		name = aws.ToString(out.Images[0].Name)
	}
	if c.users == nil {
		c.users = map[string]string{}
	}
	c.users[imageID] = fleet.LoginUser(name)
	return c.users[imageID], nil
}

// PowerOff stops or terminates the instance, as its shutdown behaviour says.
func (c *EC2) PowerOff(ctx context.Context, id string) error {
	attr, err := c.Client.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{
		InstanceId: aws.String(id), Attribute: types.InstanceAttributeNameInstanceInitiatedShutdownBehavior})
	if err != nil {
		return err
	}
	if attr.InstanceInitiatedShutdownBehavior != nil && aws.ToString(attr.InstanceInitiatedShutdownBehavior.Value) == "terminate" {
		_, err = c.Client.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
		return err
	}
	_, err = c.Client.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}})
	return err
}
