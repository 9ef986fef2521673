package localcloud

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/pricing"
	ptypes "github.com/aws/aws-sdk-go-v2/service/pricing/types"
	"golang.org/x/crypto/ssh"

	"ec2kit/internal/cloudtest"
)

func sdk(t *testing.T) aws.Config {
	cloudtest.Require(t)
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// The SDK, configured only by the standard environment, sees per-zone spot prices, the
// instance-lifecycle filter and the pricing API.
func TestSDKSeesTheCloud(t *testing.T) {
	cfg := sdk(t)
	ctx := context.Background()
	c := ec2.NewFromConfig(cfg)
	sp, err := c.DescribeSpotPriceHistory(ctx, &ec2.DescribeSpotPriceHistoryInput{InstanceTypes: []types.InstanceType{"i3en.2xlarge"}})
	if err != nil {
		t.Fatal(err)
	}
	prices := map[string]bool{}
	for _, p := range sp.SpotPriceHistory {
		prices[aws.ToString(p.SpotPrice)] = true
	}
	if len(prices) < 2 {
		t.Fatalf("spot prices do not differ per zone: %v", prices)
	}
	if _, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []types.Filter{
		{Name: aws.String("instance-lifecycle"), Values: []string{"spot"}}}}); err != nil {
		t.Fatalf("instance-lifecycle filter: %v", err)
	}
	out, err := pricing.NewFromConfig(cfg).GetProducts(ctx, &pricing.GetProductsInput{
		ServiceCode: aws.String("AmazonEC2"),
		Filters:     []ptypes.Filter{{Type: ptypes.FilterTypeTermMatch, Field: aws.String("instanceType"), Value: aws.String("i3en.24xlarge")}},
	})
	if err != nil || len(out.PriceList) != 1 || !strings.Contains(out.PriceList[0], `"USD":"10.8480000000"`) {
		t.Fatalf("pricing: %v %v", err, out)
	}
}

// dialHost connects to instance id at ip as user, pinning the host key the cloud published,
// trying until deadline.
func dialHost(t *testing.T, signer ssh.Signer, user, id, ip string, deadline time.Time) *ssh.Client {
	t.Helper()
	hostKeyFile := filepath.Join(os.Getenv(cloudtest.EnvVar), "hostkeys", id+".pub")
	var err error
	for time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		var pin []byte
		if pin, err = os.ReadFile(hostKeyFile); err != nil {
			continue
		}
		want, _, _, _, _ := ssh.ParseAuthorizedKey(pin)
		var client *ssh.Client
		client, err = ssh.Dial("tcp", ip+":22", &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
			HostKeyCallback: ssh.FixedHostKey(want), Timeout: 2 * time.Second})
		if err == nil {
			return client
		}
	}
	t.Fatalf("no SSH on %s (%s) in time: %v", ip, id, err)
	return nil
}

// keyPair makes a key pair named after prefix and the time, and returns its name and key.
func keyPair(t *testing.T, c *ec2.Client, prefix string) (string, ssh.Signer) {
	t.Helper()
	name := prefix + "-" + time.Now().Format("150405.000")
	kp, err := c.CreateKeyPair(context.Background(), &ec2.CreateKeyPairInput{KeyName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey([]byte(aws.ToString(kp.KeyMaterial)))
	if err != nil {
		t.Fatal(err)
	}
	return name, signer
}

// A launched instance becomes an SSH host within ~2 s, in its own PID and UTS namespaces
// with the key pair's key, and refuses connections within ~2 s of its termination.
func TestHostLifecycle(t *testing.T) {
	cfg := sdk(t)
	ctx := context.Background()
	c := ec2.NewFromConfig(cfg)
	name, signer := keyPair(t, c, "lifecycle")
	img, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"099720109477"}})
	if err != nil || len(img.Images) == 0 {
		t.Fatalf("ubuntu AMI: %v", err)
	}
	start := time.Now()
	run, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: img.Images[0].ImageId, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		InstanceType: "t3.micro", KeyName: aws.String(name), SubnetId: aws.String(os.Getenv("EC2KIT_SUBNET"))})
	if err != nil {
		t.Fatal(err)
	}
	id, ip := aws.ToString(run.Instances[0].InstanceId), aws.ToString(run.Instances[0].PrivateIpAddress)
	defer c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}})

	client := dialHost(t, signer, "ubuntu", id, ip, start.Add(5*time.Second))
	t.Logf("launch to SSH session: %v", time.Since(start).Round(time.Millisecond))
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, err := sess.Output("hostname; tr '\\0' ' ' < /proc/1/cmdline; echo; sudo -n id -un; " +
		"echo \"region=$AWS_REGION$AWS_DEFAULT_REGION keys=$AWS_ACCESS_KEY_ID$AWS_SECRET_ACCESS_KEY imds=$AWS_EC2_METADATA_SERVICE_ENDPOINT\"")
	client.Close()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	// As on EC2: no region and no credentials in the environment, only the metadata service.
	want := []string{"ip-" + strings.ReplaceAll(ip, ".", "-"), "localcloud boot", "root",
		"region= keys= imds=http://" + ip + ":" + imdsPort + "/"}
	for i, w := range want {
		if i >= len(lines) || !strings.HasPrefix(lines[i], w) {
			t.Fatalf("line %d: want %q, got %q", i, w, out)
		}
	}

	if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	stop := time.Now()
	for {
		conn, err := net.DialTimeout("tcp", ip+":22", time.Second)
		if errors.Is(err, syscall.ECONNREFUSED) {
			break
		}
		if conn != nil {
			conn.Close()
		}
		if time.Since(stop) > 3*time.Second {
			t.Fatalf("%s still accepts 3s after termination (%v)", ip, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("terminate to connection refused: %v", time.Since(stop).Round(time.Millisecond))
}
