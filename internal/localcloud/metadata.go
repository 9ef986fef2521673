package localcloud

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/smithy-go"

	"ec2kit/internal/localcloud/imds"
)

// imdsPort is the metadata service's port on every instance's address (the port of AWS's
// own simulator): instances find it through AWS_EC2_METADATA_SERVICE_ENDPOINT.
const imdsPort = "1338"

// imdsEndpoint is the metadata service as the instance at ip reaches it.
func imdsEndpoint(ip string) string { return "http://" + ip + ":" + imdsPort + "/" }

// metadata serves instance metadata from EC2's and IAM's current state.
type metadata struct {
	ec2 *ec2.Client
	iam *iam.Client
	srv *imds.Server
}

func newMetadata(ec2c *ec2.Client, iamc *iam.Client) *metadata {
	m := &metadata{ec2: ec2c, iam: iamc}
	// versitygw refuses any session token (InvalidToken), so role credentials come without
	// one; they are the keys the local S3 and moto accept.
	m.srv = &imds.Server{Lookup: m.lookup, Credentials: imds.Credentials{AccessKeyID: accessKey, SecretAccessKey: secretKey}}
	return m
}

// listen serves on every address of the namespace (each instance's address is one); the
// namespace has only loopback, so nothing outside the machine can reach it.
func (m *metadata) listen() error {
	l, err := net.Listen("tcp", "0.0.0.0:"+imdsPort)
	if err != nil {
		return fmt.Errorf("metadata service: %w", err)
	}
	go http.Serve(l, m.srv)
	return nil
}

func (m *metadata) lookup(ctx context.Context, ip string) (imds.Instance, bool, error) {
	out, err := m.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []types.Filter{
		{Name: aws.String("private-ip-address"), Values: []string{ip}},
		{Name: aws.String("instance-state-name"), Values: []string{"running"}},
	}})
	if err != nil {
		return imds.Instance{}, false, err
	}
	for _, r := range out.Reservations {
		if len(r.Instances) == 0 {
			continue
		}
		i := r.Instances[0] // an address belongs to one running instance
		in := imds.Instance{ID: aws.ToString(i.InstanceId), Type: string(i.InstanceType), ImageID: aws.ToString(i.ImageId),
			IP: aws.ToString(i.PrivateIpAddress), Account: aws.ToString(r.OwnerId), Spot: i.InstanceLifecycle == types.InstanceLifecycleTypeSpot,
			LaunchTime: aws.ToTime(i.LaunchTime)}
		if i.Placement != nil {
			in.Zone = aws.ToString(i.Placement.AvailabilityZone)
		}
		if p := i.IamInstanceProfile; p != nil {
			in.ProfileARN, in.ProfileID = aws.ToString(p.Arn), aws.ToString(p.Id)
			if in.Role, err = m.role(ctx, in.ProfileARN); err != nil {
				return in, false, err
			}
		}
		return in, true, nil
	}
	return imds.Instance{}, false, nil
}

// role is the role of an instance profile ("" when it has none).
func (m *metadata) role(ctx context.Context, arn string) (string, error) {
	name := arn[strings.LastIndex(arn, "/")+1:]
	out, err := m.iam.GetInstanceProfile(ctx, &iam.GetInstanceProfileInput{InstanceProfileName: &name})
	if err != nil {
		return "", fmt.Errorf("instance profile %s: %w", arn, err)
	}
	if roles := out.InstanceProfile.Roles; len(roles) > 0 {
		return aws.ToString(roles[0].RoleName), nil
	}
	return "", nil
}

// errNotSpot: EC2 interrupts only spot instances.
var errNotSpot = errors.New("is not a spot instance: EC2 interrupts only spot instances (ec2-new --spot)")

// interrupt posts a spot interruption notice on a running spot instance and terminates it
// when the notice runs out, as EC2 does (with two minutes' notice).
func (m *metadata) interrupt(ctx context.Context, id string, notice time.Duration) error {
	out, err := m.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	var ae smithy.APIError
	if errors.As(err, &ae) && strings.HasPrefix(ae.ErrorCode(), "InvalidInstanceID") {
		return errNoInstance
	} else if err != nil {
		return err
	}
	var inst *types.Instance
	for _, r := range out.Reservations {
		for i := range r.Instances {
			inst = &r.Instances[i]
		}
	}
	switch {
	case inst == nil || inst.State == nil || inst.State.Name != types.InstanceStateNameRunning:
		return errNoInstance
	case inst.InstanceLifecycle != types.InstanceLifecycleTypeSpot:
		return errNotSpot
	}
	m.srv.Notice(id, time.Now().Add(notice))
	go func() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(notice):
		}
		if _, err := m.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
			log.Printf("%s: terminating after the interruption notice: %v", id, err)
			return
		}
		log.Printf("%s: interrupted: terminated", id)
	}()
	return nil
}

// errNoInstance: the instance is not running.
var errNoInstance = errors.New("no such running instance")
