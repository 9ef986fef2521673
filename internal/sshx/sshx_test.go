package sshx_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"ec2kit/internal/cli"
	"ec2kit/internal/sshkey"
	"ec2kit/internal/sshx"
	"ec2kit/internal/sshx/sshtest"
)

func TestMain(m *testing.M) { sshtest.Main(m) }

func run(t *testing.T, c *sshx.Conn, cmd string) string {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Output(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestDialRecordsAndChecksHostKeys(t *testing.T) {
	f := sshtest.Start(t, 2)
	cfg := f.Config()
	ctx := context.Background()
	c, err := sshx.DialConn(ctx, f.Hosts[0].Target, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := run(t, c, "echo hi"); got != "hi\n" {
		t.Fatalf("got %q", got)
	}
	c.Close()
	b, _ := os.ReadFile(f.KnownHosts)
	if !strings.HasPrefix(string(b), f.Hosts[0].Target.ID+" ssh-ed25519 ") {
		t.Fatalf("known_hosts: %q", b)
	}

	// A fresh run reads the recorded key; a rebuilt host with a new key is refused.
	h := f.Hosts[0]
	h.Stop()
	h.NewHostKey(t)
	h.Start(t)
	_, err = sshx.Dial(ctx, h.Target, f.Config())
	if k, ok := sshx.KindOf(err); !ok || k != sshx.HostKey || cli.CodeOf(err) != cli.ExitUnreachable {
		t.Fatalf("want host key error, got %v", err)
	}
	// The other host is still fine.
	if _, err := sshx.Dial(ctx, f.Hosts[1].Target, f.Config()); err != nil {
		t.Fatal(err)
	}
}

func TestDialFailuresAreClassified(t *testing.T) {
	f := sshtest.Start(t, 3)
	ctx := context.Background()
	cfg := f.Config()
	cfg.ConnectTimeout = 500 * time.Millisecond

	f.Hosts[0].Stop()
	_, err := sshx.Dial(ctx, f.Hosts[0].Target, cfg)
	if k, _ := sshx.KindOf(err); k != sshx.Unreachable {
		t.Fatalf("down host: %v", err)
	}

	f.Hosts[1].Hang()
	defer f.Hosts[1].Resume()
	start := time.Now()
	_, err = sshx.Dial(ctx, f.Hosts[1].Target, cfg)
	if k, _ := sshx.KindOf(err); k != sshx.Timeout || time.Since(start) > 2*time.Second {
		t.Fatalf("hung host: %v after %v", err, time.Since(start))
	}

	other := sshtest.Start(t, 1)
	cfg2 := other.Config() // a key host 2 does not accept
	cfg2.KnownHosts = f.KnownHosts
	_, err = sshx.Dial(ctx, f.Hosts[2].Target, cfg2)
	if k, _ := sshx.KindOf(err); k != sshx.Auth {
		t.Fatalf("wrong key: %v", err)
	}
}

func TestKeepaliveNoticesAHungHost(t *testing.T) {
	f := sshtest.Start(t, 1)
	cfg := f.Config()
	cfg.Keepalive = 200 * time.Millisecond
	c, err := sshx.DialConn(context.Background(), f.Hosts[0].Target, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("sleep 30"); err != nil {
		t.Fatal(err)
	}
	f.Hosts[0].Hang()
	defer f.Hosts[0].Resume()
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("keepalive did not notice the hung host")
	}
	if k, _ := sshx.KindOf(c.Lost()); k != sshx.Lost {
		t.Fatalf("Lost() = %v", c.Lost())
	}
}

func TestWaitReady(t *testing.T) {
	f := sshtest.Start(t, 3)
	f.Hosts[2].Stop()
	ready, err := sshx.WaitReady(context.Background(), f.Targets(), f.Config(), 2*time.Second)
	if len(ready) != 2 || cli.CodeOf(err) != cli.ExitUnreachable || !strings.Contains(err.Error(), f.Hosts[2].Target.ID) {
		t.Fatalf("ready %v err %v", ready, err)
	}
	started := make(chan struct{}) // the host's cleanup must see what Start wrote
	go func() { time.Sleep(time.Second); f.Hosts[2].Start(t); close(started) }()
	ready, err = sshx.WaitReady(context.Background(), f.Targets(), f.Config(), 10*time.Second)
	<-started
	if len(ready) != 3 || err != nil {
		t.Fatalf("ready %v err %v", ready, err)
	}
}

func TestProxyJump(t *testing.T) {
	f := sshtest.Start(t, 2)
	conf := f.Dir + "/ssh_config"
	bastion := f.Hosts[0].Target
	target := f.Hosts[1].Target
	os.WriteFile(conf, []byte("Host bastion\n  HostName "+bastion.Addr+"\n  User "+bastion.User+
		"\nHost "+target.ID+"\n  ProxyJump bastion\nHost nowhere\n  ProxyJump 127.0.0.1:1\n"), 0o600)
	cfg := f.Config()
	cfg.SSHConfig = conf
	defer cfg.Close()
	c, err := sshx.DialConn(context.Background(), target, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := run(t, c, "echo ok"); got != "ok\n" {
		t.Fatalf("got %q", got)
	}
	b, _ := os.ReadFile(f.KnownHosts)
	if !strings.Contains(string(b), "bastion ssh-ed25519") || !strings.Contains(string(b), target.ID+" ssh-ed25519") {
		t.Fatalf("host keys not recorded: %s", b)
	}
	// A broken bastion fails the target even though the target itself is up.
	other := f.Hosts[0].Target
	other.Name = "nowhere"
	if _, err := sshx.Dial(context.Background(), other, cfg); err == nil || !strings.Contains(err.Error(), "ProxyJump") {
		t.Fatalf("got %v", err)
	}
}

func TestUnreadableKey(t *testing.T) {
	cfg := &sshx.Config{KeyFiles: []string{"/nonexistent/key"}, SSHConfig: "none", KnownHosts: t.TempDir() + "/kh"}
	if err := cfg.LoadKeys(); cli.CodeOf(err) != cli.ExitLocal {
		t.Fatalf("got %v", err)
	}
}

// A bastion that is still booting when the wait begins is retried like the target behind
// it, and one that went away is dialled again, instead of its first failure being kept.
func TestWaitReadyRetriesALateJumpHost(t *testing.T) {
	f := sshtest.Start(t, 2)
	bastion, target := f.Hosts[0], f.Hosts[1].Target
	conf := f.Dir + "/ssh_config"
	os.WriteFile(conf, []byte("Host bastion\n  HostName "+bastion.Target.Addr+"\n  User "+bastion.Target.User+
		"\nHost "+target.ID+"\n  ProxyJump bastion\n"), 0o600)
	cfg := f.Config()
	cfg.SSHConfig = conf
	defer cfg.Close()
	bastion.Stop()
	started := make(chan struct{})
	go func() { time.Sleep(time.Second); bastion.Start(t); close(started) }()
	ready, err := sshx.WaitReady(context.Background(), []sshx.Target{target}, cfg, 10*time.Second)
	<-started
	if len(ready) != 1 || err != nil {
		t.Fatalf("behind a late bastion: ready %v err %v", ready, err)
	}

	bastion.Stop()
	bastion.Start(t)
	if _, err := sshx.WaitReady(context.Background(), []sshx.Target{target}, cfg, 10*time.Second); err != nil {
		t.Fatalf("after the bastion restarted: %v", err)
	}
}

// A host key that differs from the recorded one will not change by waiting: WaitReady
// reports it at once, naming the instance and the known_hosts file.
func TestWaitReadyStopsAtAHostKeyMismatch(t *testing.T) {
	f := sshtest.Start(t, 1)
	h := f.Hosts[0]
	if _, err := sshx.WaitReady(context.Background(), f.Targets(), f.Config(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	h.Stop()
	h.NewHostKey(t)
	h.Start(t)
	start := time.Now()
	_, err := sshx.WaitReady(context.Background(), f.Targets(), f.Config(), 20*time.Second)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("a host key mismatch was retried for %v: %v", took, err)
	}
	if k, _ := sshx.KindOf(err); k != sshx.HostKey || cli.CodeOf(err) != cli.ExitUnreachable {
		t.Fatalf("want a host key error with exit 3, got %v (exit %d)", err, cli.CodeOf(err))
	}
	if msg := err.Error(); !strings.Contains(msg, h.Target.ID) || !strings.Contains(msg, f.KnownHosts) || strings.Contains(msg, "within") {
		t.Errorf("the message must name the instance and %s, and not say it waited: %s", f.KnownHosts, msg)
	}
	var ce *cli.Error
	if !errors.As(err, &ce) || !strings.Contains(ce.Hint, "delete its line from "+f.KnownHosts) {
		t.Errorf("hint %q does not say which file to edit", ce.Hint)
	}
}

// A private key others can read is refused as OpenSSH refuses it (exit 7), not offered.
func TestUnprotectedKey(t *testing.T) {
	key := t.TempDir() + "/key"
	if _, err := sshkey.Write(key, ""); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := &sshx.Config{KeyFiles: []string{key}, SSHConfig: "none", KnownHosts: t.TempDir() + "/kh"}
	err := cfg.LoadKeys()
	if cli.CodeOf(err) != cli.ExitLocal || !errors.Is(err, sshkey.ErrUnprotected) || !strings.Contains(err.Error(), "0644 for "+key) {
		t.Fatalf("exit %d: %v", cli.CodeOf(err), err)
	}
}

// An ssh_config IdentityFile that others can read is skipped with a warning, as ssh skips
// it, and the other keys still get in.
func TestUnprotectedIdentityFileIsSkipped(t *testing.T) {
	f := sshtest.Start(t, 1)
	key := f.Dir + "/loose_key"
	if _, err := sshkey.Write(key, ""); err != nil {
		t.Fatal(err)
	}
	os.Chmod(key, 0o644)
	conf := f.Dir + "/ssh_config"
	os.WriteFile(conf, []byte("Host *\n  IdentityFile "+key+"\n"), 0o600)
	cfg := f.Config()
	cfg.SSHConfig = conf
	var warn strings.Builder
	cfg.Warnings = &warn
	c, err := sshx.Dial(context.Background(), f.Hosts[0].Target, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if !strings.Contains(warn.String(), "IdentityFile skipped") || !strings.Contains(warn.String(), "UNPROTECTED PRIVATE KEY FILE") {
		t.Fatalf("warning %q", warn.String())
	}
}
