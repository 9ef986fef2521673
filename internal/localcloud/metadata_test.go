package localcloud

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
)

// nodeProfile creates an instance profile with a role that may read S3, as a node's.
func nodeProfile(t *testing.T, cfg aws.Config) string {
	t.Helper()
	ctx := context.Background()
	c := iam.NewFromConfig(cfg)
	name := "md-" + time.Now().Format("150405.000000")
	name = strings.ReplaceAll(name, ".", "-")
	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`
	steps := []func() error{
		func() error {
			_, err := c.CreateRole(ctx, &iam.CreateRoleInput{RoleName: &name, AssumeRolePolicyDocument: &trust})
			return err
		},
		func() error {
			_, err := c.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: &name,
				PolicyArn: aws.String("arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")})
			return err
		},
		func() error {
			_, err := c.CreateInstanceProfile(ctx, &iam.CreateInstanceProfileInput{InstanceProfileName: &name})
			return err
		},
		func() error {
			_, err := c.AddRoleToInstanceProfile(ctx, &iam.AddRoleToInstanceProfileInput{InstanceProfileName: &name, RoleName: &name})
			return err
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	return name
}

func runInstances(t *testing.T, c *ec2.Client, in *ec2.RunInstancesInput) []types.Instance {
	t.Helper()
	ctx := context.Background()
	img, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"137112412989"}})
	if err != nil || len(img.Images) == 0 {
		t.Fatalf("AMI: %v", err)
	}
	in.ImageId, in.InstanceType, in.SubnetId = img.Images[0].ImageId, "t3.micro", aws.String(os.Getenv("EC2KIT_SUBNET"))
	out, err := c.RunInstances(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, i := range out.Instances {
			c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{aws.ToString(i.InstanceId)}})
		}
	})
	return out.Instances
}

// metadataClient is the SDK's own IMDS client, pointed at the instance's address (and on,
// although the operator's environment turns it off).
func metadataClient(ip string) *imds.Client {
	return imds.New(imds.Options{Endpoint: imdsEndpoint(ip), ClientEnableState: imds.ClientEnabled})
}

func metadataGet(t *testing.T, ip, path string) (string, error) {
	t.Helper()
	out, err := metadataClient(ip).GetMetadata(context.Background(), &imds.GetMetadataInput{Path: path})
	if err != nil {
		return "", err
	}
	defer out.Content.Close()
	b, err := io.ReadAll(out.Content)
	return string(b), err
}

func notFound(err error) bool {
	var re interface{ HTTPStatusCode() int }
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}

// Every instance's metadata service, read by the SDK's IMDS client: its own identity, the
// region, role credentials for every instance launched with a profile (moto attaches it to
// the first only) and none without; a GET without a token is refused.
func TestInstanceMetadata(t *testing.T) {
	cfg := sdk(t)
	ctx := context.Background()
	c := ec2.NewFromConfig(cfg)
	profile := nodeProfile(t, cfg)
	withRole := runInstances(t, c, &ec2.RunInstancesInput{MinCount: aws.Int32(2), MaxCount: aws.Int32(2),
		IamInstanceProfile: &types.IamInstanceProfileSpecification{Name: &profile}})
	without := runInstances(t, c, &ec2.RunInstancesInput{MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})

	for _, i := range append(withRole, without...) {
		id, ip := aws.ToString(i.InstanceId), aws.ToString(i.PrivateIpAddress)
		if got, err := metadataGet(t, ip, "instance-id"); err != nil || got != id {
			t.Errorf("%s at %s: instance-id %q, %v", id, ip, got, err)
		}
		if r, err := metadataClient(ip).GetRegion(ctx, nil); err != nil || r.Region != region {
			t.Errorf("%s: region %v, %v", id, r, err)
		}
		resp, err := http.Get(imdsEndpoint(ip) + "latest/meta-data/instance-id")
		if err != nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: tokenless GET: %v %v, want 401", id, resp.Status, err)
		}
		resp.Body.Close()
	}
	for _, i := range withRole {
		if got, err := metadataGet(t, aws.ToString(i.PrivateIpAddress), "iam/security-credentials/"); err != nil || got != profile {
			t.Errorf("%s: role %q, %v", aws.ToString(i.InstanceId), got, err)
		}
		p := ec2rolecreds.New(func(o *ec2rolecreds.Options) { o.Client = metadataClient(aws.ToString(i.PrivateIpAddress)) })
		if creds, err := p.Retrieve(ctx); err != nil || creds.AccessKeyID != accessKey {
			t.Errorf("%s: credentials %v, %v", aws.ToString(i.InstanceId), creds.AccessKeyID, err)
		}
	}
	if _, err := metadataGet(t, aws.ToString(without[0].PrivateIpAddress), "iam/security-credentials/"); !notFound(err) {
		t.Errorf("without a profile: %v, want 404", err)
	}
}

// `localcloud fault ID interrupt`: the notice appears at spot/instance-action, and the
// instance is terminated when it runs out; an on-demand instance is never interrupted.
func TestSpotInterruption(t *testing.T) {
	cfg := sdk(t)
	c := ec2.NewFromConfig(cfg)
	spot := runInstances(t, c, &ec2.RunInstancesInput{MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		InstanceMarketOptions: &types.InstanceMarketOptionsRequest{MarketType: types.MarketTypeSpot}})[0]
	onDemand := runInstances(t, c, &ec2.RunInstancesInput{MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})[0]
	id, ip := aws.ToString(spot.InstanceId), aws.ToString(spot.PrivateIpAddress)
	ctx := context.Background()
	cloud := Cloud{Name: os.Getenv("EC2KIT_LOCALCLOUD_NAME")}

	if _, err := metadataGet(t, ip, "spot/instance-action"); !notFound(err) {
		t.Fatalf("instance-action before a notice: %v, want 404", err)
	}
	if err := (Fault{ID: aws.ToString(onDemand.InstanceId), Mode: "interrupt", Notice: time.Second}).run(ctx, cloud); err == nil ||
		!strings.Contains(err.Error(), "not a spot instance") {
		t.Errorf("interrupting an on-demand instance: %v", err)
	}
	start := time.Now()
	if err := (Fault{ID: id, Mode: "interrupt", Notice: 2 * time.Second}).run(ctx, cloud); err != nil {
		t.Fatal(err)
	}
	got, err := metadataGet(t, ip, "spot/instance-action")
	if err != nil || !strings.Contains(got, `"action": "terminate"`) {
		t.Fatalf("instance-action: %q, %v", got, err)
	}
	for {
		out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		if err != nil {
			t.Fatal(err)
		}
		if s := out.Reservations[0].Instances[0].State.Name; s == types.InstanceStateNameTerminated {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("not terminated 5s after a 2s notice")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("terminated after %v, before the notice ran out", d)
	}
}
