package localcloud

import (
	"bufio"
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// Under a network model, SSH to an instance has the model's round trip: over one connection,
// a line sent to cat comes back after about one, and a command (a session opened, the
// command started, its status back) takes at least two.
func TestSSHRoundTrip(t *testing.T) {
	cfg := sdk(t)
	ctx := context.Background()
	var st status
	if err := (Cloud{Name: os.Getenv("EC2KIT_LOCALCLOUD_NAME")}).control(ctx, "GET", "/status", &st); err != nil {
		t.Fatal(err)
	}
	if st.Net == nil || st.Net.SSHRTT == 0 {
		t.Skip("SSH is loopback's: needs a cloud up with a network model (localcloud up --net ec2)")
	}
	rtt := st.Net.SSHRTT
	c := ec2.NewFromConfig(cfg)
	name, signer := keyPair(t, c, "sshrtt")
	in := runInstances(t, c, &ec2.RunInstancesInput{MinCount: aws.Int32(1), MaxCount: aws.Int32(1), KeyName: aws.String(name)})[0]
	client := dialHost(t, signer, "ec2-user", aws.ToString(in.InstanceId), aws.ToString(in.PrivateIpAddress), time.Now().Add(30*time.Second))
	defer client.Close()

	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	stdin, _ := sess.StdinPipe()
	stdout, _ := sess.StdoutPipe()
	if err := sess.Start("cat"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stdout)
	ping := func() time.Duration {
		start := time.Now()
		if _, err := stdin.Write([]byte("ping\n")); err != nil {
			t.Fatal(err)
		}
		if line, err := r.ReadString('\n'); err != nil || line != "ping\n" {
			t.Fatalf("cat answered %q, %v", line, err)
		}
		return time.Since(start)
	}
	ping() // cat may still be starting
	var pings []time.Duration
	for range 20 {
		pings = append(pings, ping())
	}
	var cmds []time.Duration
	for range 10 {
		start := time.Now()
		s, err := client.NewSession()
		if err == nil {
			err = s.Run("true")
		}
		if err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, time.Since(start))
	}
	slices.Sort(pings)
	slices.Sort(cmds)
	t.Logf("model's round trip %v; a line through cat: fastest %v, median %v, slowest %v; a command: fastest %v, median %v",
		rtt, pings[0], pings[len(pings)/2], pings[len(pings)-1], cmds[0], cmds[len(cmds)/2])
	// Nothing comes back sooner than the round trip; a busy machine makes some later.
	if pings[0] < rtt*8/10 || pings[len(pings)/2] > 3*rtt {
		t.Errorf("a line through cat took %v to %v (median %v): want about %v", pings[0], pings[len(pings)-1], pings[len(pings)/2], rtt)
	}
	if cmds[0] < 2*rtt*8/10 {
		t.Errorf("a command took %v: want at least two round trips (%v)", cmds[0], 2*rtt)
	}
}
