package awsconf_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"ec2kit/internal/awsconf"
)

// A spot notice posted while the watch runs arrives once, with EC2's action and time.
func TestWatchInterruption(t *testing.T) {
	md := onNode(t, "us-east-1a", "")
	cfg, err := awsconf.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	notices := awsconf.WatchInterruption(ctx, cfg, 20*time.Millisecond)
	select {
	case n := <-notices:
		t.Fatalf("a notice before any was posted: %q", n)
	case <-time.After(200 * time.Millisecond):
	}
	md.Notice("i-1", time.Now().Add(2*time.Minute))
	select {
	case n := <-notices:
		if !strings.HasPrefix(n, "terminate at 20") {
			t.Fatalf("notice %q", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no notice within 5s of posting it")
	}
}

// Off EC2 the watch gives up at once and never sends.
func TestWatchInterruptionOffEC2(t *testing.T) {
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	cfg, err := awsconf.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	notices := awsconf.WatchInterruption(context.Background(), cfg, time.Millisecond)
	select {
	case n, ok := <-notices:
		t.Fatalf("got %q, %v", n, ok)
	case <-time.After(300 * time.Millisecond):
	}
}
