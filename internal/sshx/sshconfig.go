package sshx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/kevinburke/ssh_config"
	"golang.org/x/crypto/ssh"
)

// sshConfig applies the parts of ~/.ssh/config that matter here: User, Port, IdentityFile,
// ProxyJump (and HostName for bastions). The library only parses; applying is ours.
type sshConfig struct{ c *ssh_config.Config }

func loadSSHConfig(path string, warn io.Writer) (*sshConfig, error) {
	explicit := path != ""
	home, _ := os.UserHomeDir()
	switch path {
	case "none":
		return &sshConfig{}, nil
	case "":
		if home == "" {
			return &sshConfig{}, nil
		}
		path = filepath.Join(home, ".ssh", "config")
	}
	r := configReader{home: home}
	var text strings.Builder
	if err := r.read(path, 0, false, &text); err != nil {
		if !explicit && errors.Is(err, fs.ErrNotExist) {
			return &sshConfig{}, nil
		}
		return nil, fmt.Errorf("ssh config: %w", err)
	}
	if len(r.ignored) > 0 {
		warnOnce(warn, path, fmt.Sprintf("%s: warning: ssh config: ignoring what ec2kit cannot evaluate (each such block applies to no host):\n  %s\n",
			filepath.Base(os.Args[0]), strings.Join(r.ignored, "\n  ")))
	}
	c, err := ssh_config.Decode(strings.NewReader(text.String()))
	if err != nil {
		return nil, fmt.Errorf("ssh config %s: %w", path, err)
	}
	return &sshConfig{c}, nil
}

// warned keeps a run from repeating a config file's warning for every Config it builds.
var warned sync.Map

func warnOnce(w io.Writer, path, msg string) {
	if _, dup := warned.LoadOrStore(path, true); !dup {
		io.WriteString(w, msg)
	}
}

// configReader turns an ssh_config file into one the library can evaluate. The library
// fails a whole file, Included ones too, on any Match line but "Match host" and "Match all",
// which OpenSSH accepts: so Includes are inlined here, Match lines we can evaluate are
// rewritten as Host lines, and the rest become blocks that match nothing, listed in ignored.
type configReader struct {
	home    string
	ignored []string // "file:line: text"
}

// maxIncludeDepth is OpenSSH's limit on nested Includes.
const maxIncludeDepth = 16

// never is a Host line that matches no host.
const never = "Host !*"

// read appends path's lines to out. Inside a conditional block (nested), an Included file's
// own Host and Match blocks would have to match together with the enclosing one, which Host
// lines cannot say: they are ignored.
func (r *configReader) read(path string, depth int, nested bool, out *strings.Builder) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	header := "Host *" // the block in effect, reopened after an Include
	for n, line := range strings.Split(string(b), "\n") {
		where := fmt.Sprintf("%s:%d: %s", path, n+1, strings.TrimSpace(line))
		key, args := splitConfigLine(line)
		switch strings.ToLower(key) {
		case "host", "match":
			if nested {
				r.ignored = append(r.ignored, where+" (in a file Included from a conditional block)")
				line = never
			} else if strings.EqualFold(key, "match") {
				line = r.match(args, where)
			}
			header = line
		case "include":
			if depth >= maxIncludeDepth {
				return fmt.Errorf("%s:%d: Include nested more than %d deep", path, n+1, maxIncludeDepth)
			}
			for _, pat := range args {
				files, _ := filepath.Glob(r.includePath(pat))
				for _, f := range files {
					if err := r.read(f, depth+1, nested || header != "Host *", out); err != nil {
						r.ignored = append(r.ignored, fmt.Sprintf("%s (%v)", where, err))
					}
				}
			}
			line = header
		}
		out.WriteString(line)
		out.WriteByte('\n')
	}
	return nil
}

// includePath resolves an Include argument as OpenSSH does for a user's config: ~ is the
// home directory, and relative paths are relative to ~/.ssh.
func (r *configReader) includePath(p string) string {
	p = expandHome(p)
	if !filepath.IsAbs(p) {
		p = filepath.Join(r.home, ".ssh", p)
	}
	return p
}

// match rewrites a Match line as a Host line. Evaluated: all, host and originalhost (one of
// them, as the library matches Host patterns against our aliases), localuser; negations of
// them. Anything else (exec, user, canonical, final, localnetwork, tagged, address...) makes
// the block match nothing, with a warning, rather than guessing.
func (r *configReader) match(args []string, where string) string {
	var hosts []string
	matches := true
	for i := 0; i < len(args); i++ {
		crit, neg := strings.CutPrefix(strings.ToLower(args[i]), "!")
		if crit == "all" {
			matches = matches && !neg
			continue
		}
		if (crit != "host" && crit != "originalhost" && crit != "localuser") || i+1 == len(args) {
			r.ignored = append(r.ignored, where)
			return never
		}
		i++
		pats := strings.Split(strings.Trim(args[i], `"`), ",")
		switch {
		case crit == "localuser":
			matches = matches && patternsMatch(pats, localUser()) != neg
		case hosts != nil || neg && strings.Contains(args[i], "!"):
			r.ignored = append(r.ignored, where) // an AND of host tests, or a negated negation
			return never
		case neg:
			hosts = []string{"*"}
			for _, p := range pats {
				hosts = append(hosts, "!"+p)
			}
		default:
			hosts = pats
		}
	}
	switch {
	case !matches:
		return never
	case hosts == nil:
		return "Host *"
	}
	return "Host " + strings.Join(hosts, " ")
}

// patternsMatch evaluates an ssh_config pattern list (with ! exceptions) against s.
func patternsMatch(list []string, s string) bool {
	h := &ssh_config.Host{}
	for _, p := range list {
		pat, err := ssh_config.NewPattern(p)
		if err != nil {
			return false
		}
		h.Patterns = append(h.Patterns, pat)
	}
	return h.Matches(s)
}

// splitConfigLine splits an ssh_config line into its keyword and arguments ("Key value",
// "Key=value", "Key = value"); comments and blank lines have no keyword.
func splitConfigLine(line string) (string, []string) {
	line = strings.TrimSpace(line)
	if line == "" || line[0] == '#' {
		return "", nil
	}
	i := strings.IndexAny(line, " \t=")
	if i < 0 {
		return line, nil
	}
	rest := strings.TrimLeft(line[i:], " \t")
	rest = strings.TrimPrefix(rest, "=")
	return line[:i], strings.Fields(rest)
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
	ready  chan struct{} // closed once client or err is set
	client *ssh.Client
	err    error
	gone   chan struct{} // closed when client's connection ends
}

// failed reports whether the connection attempt is over and left no live connection: a
// bastion that is still booting, or went away, is tried again by the next dial, just as the
// targets behind it are retried.
func (j *jumpHost) failed() bool {
	select {
	case <-j.ready:
	default:
		return false
	}
	if j.err != nil {
		return true
	}
	select {
	case <-j.gone:
		return true
	default:
		return false
	}
}

// jumpClient returns the (cached) connection to the last bastion of a ProxyJump chain.
func (cfg *Config) jumpClient(ctx context.Context, chain string) (*ssh.Client, error) {
	cfg.jumpMu.Lock()
	j, ok := cfg.jumps[chain]
	if ok && j.failed() {
		ok = false
	}
	if !ok {
		j = &jumpHost{ready: make(chan struct{}), gone: make(chan struct{})}
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
	go func() { client.Wait(); close(j.gone) }()
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
