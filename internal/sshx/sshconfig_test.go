package sshx

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// OpenSSH accepts every Match criterion; the ssh_config library rejects most of them (and
// any Match in an Included file), which used to fail every command. What cannot be
// evaluated is now skipped with one warning, and the rest of the file still applies.
func TestSSHConfigMatchLines(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	if err := os.MkdirAll(filepath.Join(dir, ".ssh", "conf.d"), 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) string {
		p := filepath.Join(dir, ".ssh", name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("conf.d/a.conf", "Match exec \"test -e /nonexistent\"\n  User fromexec\nHost i-inc\n  Port 2200\n")
	write("conf.d/nested.conf", "User nesteduser\nHost i-web\n  Port 2300\n")
	conf := write("config", `Include conf.d/a.conf
Match exec "true"
  User exec-user
Match user ubuntu
  Port 2022
Match host i-one,i-two
  User hostuser
Match !host i-one,i-two localuser `+localUser()+`
  IdentityFile ~/k-other
Match localuser nobody-at-all
  User notme
Match originalhost i-one canonical
  Port 9
Host i-cond
  Include conf.d/nested.conf
  ProxyJump bastion
Match all
  Port 2222
`)
	var warn strings.Builder
	c, err := loadSSHConfig(conf, &warn)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id, user string
		port     int
		key      string
		jump     string
	}{
		{"i-one", "hostuser", 2222, "", ""},
		{"i-two", "hostuser", 2222, "", ""},
		{"i-inc", "default", 2200, filepath.Join(dir, "k-other"), ""},
		{"i-cond", "nesteduser", 2222, filepath.Join(dir, "k-other"), "bastion"},
		{"i-web", "default", 2222, filepath.Join(dir, "k-other"), ""},
	} {
		h := c.resolve(Target{ID: tc.id, User: "default"}, "")
		var key string
		if len(h.keys) > 0 {
			key = h.keys[0]
		}
		if h.user != tc.user || h.port != tc.port || key != tc.key || h.jump != tc.jump {
			t.Errorf("%s: user %q port %d key %q jump %q; want %q %d %q %q", tc.id, h.user, h.port, key, h.jump, tc.user, tc.port, tc.key, tc.jump)
		}
	}
	w := warn.String()
	for _, s := range []string{"a.conf:1: Match exec", "config:2: Match exec", "config:4: Match user ubuntu", "config:12: Match originalhost i-one canonical", "nested.conf:2: Host i-web"} {
		if !strings.Contains(w, s) {
			t.Errorf("warning does not name %q:\n%s", s, w)
		}
	}
	if strings.Count(w, "warning") != 1 {
		t.Errorf("want one warning, got:\n%s", w)
	}
	// A second Config in the same run does not repeat it.
	warn.Reset()
	if _, err := loadSSHConfig(conf, &warn); err != nil || warn.Len() != 0 {
		t.Errorf("second load: %v, warned %q", err, warn.String())
	}
}
