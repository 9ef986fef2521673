package sshx

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kevinburke/ssh_config"
	"golang.org/x/crypto/ssh"
)

// sshConfig applies the parts of ~/.ssh/config that matter here: User, Port, IdentityFile,
// ProxyJump (and HostName for bastions). The library only parses; applying is ours.
type sshConfig struct{ c *ssh_config.Config }

func loadSSHConfig(path string) (*sshConfig, error) {
	explicit := path != ""
	switch path {
	case "none":
		return &sshConfig{}, nil
	case "":
		home, err := os.UserHomeDir()
		if err != nil {
			return &sshConfig{}, nil
		}
		path = filepath.Join(home, ".ssh", "config")
	}
	f, err := os.Open(path)
	if err != nil {
		if !explicit && os.IsNotExist(err) {
			return &sshConfig{}, nil
		}
		return nil, fmt.Errorf("ssh config: %w", err)
	}
	defer f.Close()
	c, err := ssh_config.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("ssh config %s: %w", path, err)
	}
	return &sshConfig{c}, nil
}

// get returns key's value for the first alias that sets it.
func (s *sshConfig) get(aliases []string, key string) string {
	if s.c == nil {
		return ""
	}
	for _, a := range aliases {
		if v, _ := s.c.Get(a, key); v != "" {
			return v
		}
	}
	return ""
}

func (s *sshConfig) getAll(aliases []string, key string) []string {
	if s.c == nil {
		return nil
	}
	for _, a := range aliases {
		if v, _ := s.c.GetAll(a, key); len(v) > 0 {
			return v
		}
	}
	return nil
}

// resolve decides how to reach t. Precedence: --user, then ssh_config, then the target's
// own user; the target's explicit port, then ssh_config, then 22. The instance's own
// address is kept (HostName is for aliases, and instances have real addresses).
func (s *sshConfig) resolve(t Target, forcedUser string) hop {
	var aliases []string
	for _, a := range []string{t.ID, t.Name, t.Addr} {
		if a != "" {
			aliases = append(aliases, a)
		}
	}
	h := hop{addr: t.Addr, user: forcedUser, port: t.Port}
	if h.user == "" {
		h.user = firstNonEmpty(s.get(aliases, "User"), t.User, localUser())
	}
	if h.port == 0 {
		h.port = atoiOr(s.get(aliases, "Port"), 22)
	}
	h.keys = identityFiles(s.getAll(aliases, "IdentityFile"))
	if j := s.get(aliases, "ProxyJump"); j != "" && !strings.EqualFold(j, "none") {
		h.jump = j
	}
	return h
}

// jumpHop resolves one element of a ProxyJump list ("[user@]host[:port]") through
// ssh_config, as ssh does for bastion aliases.
func (s *sshConfig) jumpHop(spec, forcedUser string) hop {
	u, hostport, ok := strings.Cut(spec, "@")
	if !ok {
		u, hostport = "", spec
	}
	host, port := hostport, 0
	if hh, p, err := net.SplitHostPort(hostport); err == nil {
		host, port = hh, atoiOr(p, 0)
	}
	aliases := []string{host}
	h := hop{addr: firstNonEmpty(s.get(aliases, "HostName"), host), port: port}
	h.user = firstNonEmpty(u, s.get(aliases, "User"), forcedUser, localUser())
	if h.port == 0 {
		h.port = atoiOr(s.get(aliases, "Port"), 22)
	}
	h.keys = identityFiles(s.getAll(aliases, "IdentityFile"))
	return h
}

func identityFiles(v []string) []string {
	var out []string
	for _, f := range v {
		out = append(out, expandHome(f))
	}
	return out
}

// jumpHost is one bastion connection, shared by every target behind it: one handshake per
// run instead of one per host, which also keeps under the bastion's MaxStartups.
type jumpHost struct {
	ready  chan struct{}
	client *ssh.Client
	err    error
}

// jumpClient returns the (cached) connection to the last bastion of a ProxyJump chain.
func (cfg *Config) jumpClient(ctx context.Context, chain string) (*ssh.Client, error) {
	cfg.jumpMu.Lock()
	j, ok := cfg.jumps[chain]
	if !ok {
		j = &jumpHost{ready: make(chan struct{})}
		cfg.jumps[chain] = j
	}
	cfg.jumpMu.Unlock()
	if ok {
		select {
		case <-j.ready:
			return j.client, j.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	defer close(j.ready)
	var via *ssh.Client
	last := chain
	if i := strings.LastIndex(chain, ","); i >= 0 {
		if via, j.err = cfg.jumpClient(ctx, chain[:i]); j.err != nil {
			return nil, j.err
		}
		last = chain[i+1:]
	}
	h := cfg.conf.jumpHop(strings.TrimSpace(last), cfg.User)
	id := net.JoinHostPort(bastionName(strings.TrimSpace(last)), strconv.Itoa(h.port))
	client, err := cfg.handshake(context.WithoutCancel(ctx), via, id, h)
	if err != nil {
		j.err = fmt.Errorf("%s: %w", last, err)
		return nil, j.err
	}
	c := &Conn{Client: client, target: Target{ID: id}, done: make(chan struct{})}
	go c.keepalive(cfg)
	j.client = client
	return client, nil
}

// bastionName is how a bastion is known in known_hosts: its alias as written, as ssh does.
func bastionName(spec string) string {
	if _, h, ok := strings.Cut(spec, "@"); ok {
		spec = h
	}
	if h, _, err := net.SplitHostPort(spec); err == nil {
		spec = h
	}
	return spec
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

func atoiOr(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil && n > 0 {
		return n
	}
	return def
}

func localUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "root"
}
