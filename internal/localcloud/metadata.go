package localcloud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
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

// metadata serves instance metadata from EC2's and IAM's current state. It answers from a
// copy refreshed every second, since clients give IMDS half a second (the SDK's timeout) and
// moto under load can take longer; an address not in the copy is looked up at once.
type metadata struct {
	ec2 *ec2.Client
	iam *iam.Client
	srv *imds.Server
	// notices is the file the moto launcher reads the posted interruption notices from
	// ({instance id: time of the action}), for the spot requests' status.
	notices  string
	noticeMu sync.Mutex

	mu   sync.Mutex
	byIP map[string]imds.Instance
}

func newMetadata(ec2c *ec2.Client, iamc *iam.Client, notices string) *metadata {
	m := &metadata{ec2: ec2c, iam: iamc, notices: notices}
	// versitygw refuses any session token (InvalidToken), so role credentials come without
	// one; they are the keys the local S3 and moto accept.
	m.srv = &imds.Server{Lookup: m.lookup, Credentials: imds.Credentials{AccessKeyID: accessKey, SecretAccessKey: secretKey}}
	return m
}

// serve answers on every address of the namespace (each instance's address is one; the
// namespace has only loopback, so nothing outside the machine can reach it) and keeps the
// copy fresh until ctx ends.
func (m *metadata) serve(ctx context.Context) error {
	l, err := net.Listen("tcp", "0.0.0.0:"+imdsPort)
	if err != nil {
		return fmt.Errorf("metadata service: %w", err)
	}
	go http.Serve(l, m.srv)
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			if byIP, err := m.running(ctx, nil); err == nil {
				m.mu.Lock()
				m.byIP = byIP
				m.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

func (m *metadata) lookup(ctx context.Context, ip string) (imds.Instance, bool, error) {
	m.mu.Lock()
	in, ok := m.byIP[ip]
	m.mu.Unlock()
	if ok {
		return in, true, nil
	}
	byIP, err := m.running(ctx, []types.Filter{{Name: aws.String("private-ip-address"), Values: []string{ip}}})
	in, ok = byIP[ip]
	return in, ok, err
}

// running describes the running instances (those matching filters) by private address.
func (m *metadata) running(ctx context.Context, filters []types.Filter) (map[string]imds.Instance, error) {
	filters = append(filters, types.Filter{Name: aws.String("instance-state-name"), Values: []string{"running"}})
	byIP := map[string]imds.Instance{}
	roles := map[string]string{} // profile ARN -> role
	p := ec2.NewDescribeInstancesPaginator(m.ec2, &ec2.DescribeInstancesInput{Filters: filters})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, r := range page.Reservations {
			for _, i := range r.Instances {
				in := imds.Instance{ID: aws.ToString(i.InstanceId), Type: string(i.InstanceType), ImageID: aws.ToString(i.ImageId),
					IP: aws.ToString(i.PrivateIpAddress), Account: aws.ToString(r.OwnerId), Spot: i.InstanceLifecycle == types.InstanceLifecycleTypeSpot,
					LaunchTime: aws.ToTime(i.LaunchTime)}
				if i.Placement != nil {
					in.Zone = aws.ToString(i.Placement.AvailabilityZone)
				}
				if p := i.IamInstanceProfile; p != nil {
					in.ProfileARN, in.ProfileID = aws.ToString(p.Arn), aws.ToString(p.Id)
					role, ok := roles[in.ProfileARN]
					if !ok {
						if role, err = m.role(ctx, in.ProfileARN); err != nil {
							return nil, err
						}
						roles[in.ProfileARN] = role
					}
					in.Role = role
				}
				byIP[in.IP] = in
			}
		}
	}
	return byIP, nil
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
	inst, err := m.runningInstance(ctx, id)
	if err != nil {
		return err
	}
	if inst.InstanceLifecycle != types.InstanceLifecycleTypeSpot {
		return errNotSpot
	}
	at := time.Now().Add(notice)
	m.srv.Notice(id, at)
	if err := m.recordNotice(id, at); err != nil {
		return err
	}
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

// recordNotice adds a notice to the file the moto launcher reads, so that the instance's spot
// request says it is marked for termination, as EC2's does.
func (m *metadata) recordNotice(id string, at time.Time) error {
	if m.notices == "" {
		return nil
	}
	m.noticeMu.Lock()
	defer m.noticeMu.Unlock()
	all := map[string]string{}
	if b, err := os.ReadFile(m.notices); err == nil {
		if err := json.Unmarshal(b, &all); err != nil {
			return fmt.Errorf("%s: %w", m.notices, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	all[id] = at.UTC().Format(time.RFC3339)
	b, _ := json.Marshal(all)
	tmp := m.notices + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, m.notices)
}

// runningInstance describes instance id, or fails with errNoInstance when it is not running.
func (m *metadata) runningInstance(ctx context.Context, id string) (*types.Instance, error) {
	out, err := m.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	var ae smithy.APIError
	if errors.As(err, &ae) && strings.HasPrefix(ae.ErrorCode(), "InvalidInstanceID") {
		return nil, errNoInstance
	} else if err != nil {
		return nil, err
	}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			if in.State != nil && in.State.Name == types.InstanceStateNameRunning {
				return &in, nil
			}
		}
	}
	return nil, errNoInstance
}

// errNoInstance: the instance is not running.
var errNoInstance = errors.New("no such running instance")
