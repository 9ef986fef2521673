package hosts

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"ec2kit/internal/cli"
	"ec2kit/internal/fleet"
	"ec2kit/internal/paths"
	"ec2kit/internal/sshkey"
)

// isolate points EC2KIT_HOME and HOME at a fresh directory, so neither the user's keys nor
// their ~/.ssh/config take part.
func isolate(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("EC2KIT_HOME", filepath.Join(dir, "ec2kit"))
	t.Setenv("HOME", dir)
}

func writeKey(t *testing.T, path string) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := sshkey.Write(path, ""); err != nil {
		t.Fatal(err)
	}
}

func TestConfigOffersKeptKeysOncePerKeyPair(t *testing.T) {
	isolate(t)
	t.Setenv("SSH_AUTH_SOCK", "")
	writeKey(t, paths.KeyFile("kept"))
	own := filepath.Join(t.TempDir(), "own")
	writeKey(t, own)
	insts := []fleet.Instance{{ID: "i-1", KeyName: "kept"}, {ID: "i-2", KeyName: "kept"}, {ID: "i-3", KeyName: "gone"}, {ID: "i-4"}}
	c := Conn{Key: []string{own}, User: "admin"}
	cfg, err := c.Config(insts)
	if err != nil {
		t.Fatal(err)
	}
	defer cfg.Close()
	if want := []string{own, paths.KeyFile("kept")}; !slices.Equal(cfg.KeyFiles, want) {
		t.Errorf("key files %q, want %q", cfg.KeyFiles, want)
	}
	if cfg.Agent || cfg.User != "admin" {
		t.Errorf("agent %v user %q: want no agent without SSH_AUTH_SOCK, user admin", cfg.Agent, cfg.User)
	}
	if len(c.Key) != 1 {
		t.Errorf("Config changed the flag's slice: %q", c.Key)
	}
}

func TestConfigUsesAgentWhenThereIsOne(t *testing.T) {
	isolate(t)
	t.Setenv("SSH_AUTH_SOCK", filepath.Join(t.TempDir(), "no-agent-here"))
	cfg, err := Conn{}.Config(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cfg.Close()
	if !cfg.Agent {
		t.Error("SSH_AUTH_SOCK is set but the agent is not offered")
	}
}

func TestConfigRejectsAnUnreadableKey(t *testing.T) {
	isolate(t)
	_, err := Conn{Key: []string{"/nonexistent/key"}}.Config(nil)
	if got := cli.CodeOf(err); got != cli.ExitLocal {
		t.Fatalf("exit %d (%v), want %d", got, err, cli.ExitLocal)
	}
}

// A key others can read is refused as OpenSSH refuses it, whether given with --key or kept
// by ec2-new, before any host is touched.
func TestConfigRefusesAnUnprotectedKey(t *testing.T) {
	isolate(t)
	t.Setenv("SSH_AUTH_SOCK", "")
	own := filepath.Join(t.TempDir(), "own")
	writeKey(t, own)
	writeKey(t, paths.KeyFile("kept"))
	for _, c := range []struct {
		file string
		conn Conn
	}{{own, Conn{Key: []string{own}}}, {paths.KeyFile("kept"), Conn{}}} {
		if err := os.Chmod(c.file, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := c.conn.Config([]fleet.Instance{{ID: "i-1", KeyName: "kept"}})
		if cli.CodeOf(err) != cli.ExitLocal || !strings.Contains(err.Error(), "UNPROTECTED PRIVATE KEY FILE") || !strings.Contains(err.Error(), c.file) {
			t.Errorf("%s with mode 0644: exit %d, %v; want exit %d naming the file", c.file, cli.CodeOf(err), err, cli.ExitLocal)
		}
		if err := os.Chmod(c.file, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTargetFollowsPrivate(t *testing.T) {
	in := fleet.Instance{ID: "i-1", Name: "web", User: "ubuntu", PublicIP: "203.0.113.1", PrivateIP: "127.1.0.4"}
	if got := (Conn{}).Target(in); got.Addr != "203.0.113.1" || got.User != "ubuntu" || got.Name != "web" || got.ID != "i-1" {
		t.Errorf("public target %+v", got)
	}
	if got := (Conn{Private: true}).Target(in); got.Addr != "127.1.0.4" {
		t.Errorf("private target %+v", got)
	}
}
