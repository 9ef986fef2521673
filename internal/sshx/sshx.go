// Package sshx opens SSH connections to instances: bounded dial and handshake, key and agent
// auth, host keys checked against known_hosts keyed by instance id (trust on first use),
// ~/.ssh/config (User, Port, IdentityFile, ProxyJump) and keepalives that notice a dead link.
package sshx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"ec2kit/internal/cli"
)

// Target is one host to reach. ID keys known_hosts; Name and Addr are further aliases for
// ~/.ssh/config lookups.
type Target struct {
	ID   string // instance id: the known_hosts key
	Addr string // IP address or host name
	User string // login user unless --user or ~/.ssh/config says otherwise
	Port int    // 0 means 22 (or ~/.ssh/config's Port)
	Name string // optional Name tag, one more ~/.ssh/config alias
}

// Config says how to authenticate and how long to wait. One Config is shared by every dial
// of a run: parsed keys, the agent connection, known_hosts and bastion connections are
// cached in it.
type Config struct {
	KeyFiles       []string      // private keys to offer (unreadable ones fail LoadKeys)
	Agent          bool          // also offer ssh-agent's keys (SSH_AUTH_SOCK)
	User           string        // overrides every target's and ~/.ssh/config's user
	ConnectTimeout time.Duration // TCP connect + SSH handshake + auth, per hop (default 10s)
	Keepalive      time.Duration // keepalive interval (default 10s; <0 disables)
	KeepaliveMax   int           // missed keepalives before the link counts as dead (default 3)
	KnownHosts     string        // known_hosts file (default paths.KnownHosts())
	SSHConfig      string        // ssh_config file (default ~/.ssh/config; "none" ignores it)
	NoRecord       bool          // verify known hosts but do not record unknown ones
	Warnings       io.Writer     // where warnings go (default os.Stderr)

	once    sync.Once
	onceErr error
	auth    *keyring
	hosts   *hostKeys
	conf    *sshConfig
	jumpMu  sync.Mutex
	jumps   map[string]*jumpHost
}

func (c *Config) connectTimeout() time.Duration {
	if c.ConnectTimeout > 0 {
		return c.ConnectTimeout
	}
	return 10 * time.Second
}

// Ciphers and key exchanges in speed order: AES-GCM rides on AES-NI, and curve25519 is the
// cheapest key exchange both ends support.
var (
	ciphers = []string{"aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com", "aes128-ctr", "aes256-ctr"}
	kexes   = []string{"curve25519-sha256", "curve25519-sha256@libssh.org", "ecdh-sha2-nistp256", "diffie-hellman-group14-sha256"}
)

// LoadKeys parses the key files, opens the agent, reads known_hosts and ssh_config once.
// Dial calls it; commands call it first to report a bad --key before touching any host.
func (c *Config) LoadKeys() error {
	c.once.Do(func() {
		c.jumps = map[string]*jumpHost{}
		warn := c.Warnings
		if warn == nil {
			warn = os.Stderr
		}
		if c.conf, c.onceErr = loadSSHConfig(c.SSHConfig, warn); c.onceErr != nil {
			return
		}
		if c.auth, c.onceErr = newKeyring(c.KeyFiles, c.Agent, warn); c.onceErr != nil {
			return
		}
		c.hosts, c.onceErr = loadHostKeys(c.KnownHosts, !c.NoRecord)
	})
	return c.onceErr
}

// Kind classifies why a host could not be used.
type Kind int

const (
	Unreachable Kind = iota // refused, no route, DNS, reset during handshake
	Timeout                 // connect or handshake took too long
	Auth                    // no key was accepted
	HostKey                 // the host key differs from the recorded one
	Lost                    // an established connection died (keepalives unanswered)
)

func (k Kind) String() string {
	return [...]string{"unreachable", "timed out", "auth failed", "host key mismatch", "connection lost"}[k]
}

// Error is a transport failure: the remote command never ran or its fate is unknown. It
// maps to cli.ExitUnreachable, unlike a remote exit status (cli.ExitFailed).
type Error struct {
	Kind   Kind
	Target string
	Err    error
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s: %v", e.Target, e.Kind, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

func transportErr(kind Kind, t Target, err error) error {
	e := &cli.Error{Code: cli.ExitUnreachable, Err: &Error{Kind: kind, Target: t.ID, Err: err}}
	switch kind {
	case HostKey:
		var hk *hostKeyError
		errors.As(err, &hk)
		e.Hint = "the host key changed since it was recorded; if " + t.ID + " was really rebuilt, delete its line from " + hk.path
	case Auth:
		e.Hint = "pass --key FILE, load the key into ssh-agent, or check the login user (--user)"
	}
	return e
}

// KindOf returns the transport failure kind of err, and false when err is no transport
// failure (a remote exit status, for example).
func KindOf(err error) (Kind, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind, true
	}
	return 0, false
}

// Conn is an SSH client plus what its keepalive learned.
type Conn struct {
	*ssh.Client
	target Target
	lostMu sync.Mutex
	lost   error
	done   chan struct{}
	once   sync.Once
}

// Lost returns a transport error when keepalives declared the link dead, else nil.
func (c *Conn) Lost() error {
	c.lostMu.Lock()
	defer c.lostMu.Unlock()
	return c.lost
}

// Close stops the keepalive and closes the connection.
func (c *Conn) Close() error {
	c.once.Do(func() { close(c.done) })
	return c.Client.Close()
}

// Dial connects to t and authenticates. The returned client has a keepalive running; close
// it when done. Errors are *cli.Error with code ExitUnreachable wrapping an *Error.
func Dial(ctx context.Context, t Target, cfg *Config) (*ssh.Client, error) {
	c, err := DialConn(ctx, t, cfg)
	if err != nil {
		return nil, err
	}
	return c.Client, nil
}

// DialConn is Dial returning a Conn, whose Lost tells a keepalive death from other errors.
func DialConn(ctx context.Context, t Target, cfg *Config) (*Conn, error) {
	if err := cfg.LoadKeys(); err != nil {
		return nil, err
	}
	h := cfg.conf.resolve(t, cfg.User)
	var via *ssh.Client
	if h.jump != "" {
		j, err := cfg.jumpClient(ctx, h.jump)
		if err != nil {
			return nil, transportErrFrom(t, fmt.Errorf("via ProxyJump %s: %w", h.jump, err))
		}
		via = j
	}
	client, err := cfg.handshake(ctx, via, instanceKey(t.ID), h)
	if err != nil {
		return nil, transportErrFrom(t, err)
	}
	c := &Conn{Client: client, target: t, done: make(chan struct{})}
	go c.keepalive(cfg)
	return c, nil
}

// hop is a resolved destination: where to connect and as whom.
type hop struct {
	addr, user string
	port       int
	keys       []string // extra IdentityFile entries from ssh_config
	jump       string   // ProxyJump spec, "" for a direct connection
}

func (h hop) hostPort() string { return net.JoinHostPort(h.addr, strconv.Itoa(h.port)) }

// handshake connects to h (directly, or through via) and runs the SSH handshake under a
// deadline: ssh.ClientConfig.Timeout covers only the TCP connect.
func (cfg *Config) handshake(ctx context.Context, via *ssh.Client, hostKeyID string, h hop) (*ssh.Client, error) {
	timeout := cfg.connectTimeout()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var conn net.Conn
	var err error
	if via != nil {
		conn, err = dialVia(ctx, via, h.hostPort())
	} else {
		d := net.Dialer{KeepAlive: -1}
		conn, err = d.DialContext(ctx, "tcp", h.hostPort())
	}
	if err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	// A cancelled context (Ctrl-C) must interrupt a handshake that is blocked on reads.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	signers, err := cfg.auth.signers(h.keys)
	if err != nil {
		conn.Close()
		return nil, err
	}
	cc := &ssh.ClientConfig{
		User:              h.user,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signers...)},
		HostKeyCallback:   cfg.hosts.callback(hostKeyID),
		HostKeyAlgorithms: cfg.hosts.algorithms(hostKeyID),
		Config:            ssh.Config{Ciphers: ciphers, KeyExchanges: kexes},
		ClientVersion:     "SSH-2.0-ec2kit",
	}
	sc, chans, reqs, err := ssh.NewClientConn(conn, h.hostPort(), cc)
	if !stop() || err != nil {
		conn.Close()
		if err == nil || ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(sc, chans, reqs), nil
}

// dialVia opens a direct-tcpip channel through a bastion; the ssh package's Dial has no
// context, so a cancelled context abandons it.
func dialVia(ctx context.Context, via *ssh.Client, addr string) (net.Conn, error) {
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := via.Dial("tcp", addr)
		ch <- res{c, err}
	}()
	select {
	case r := <-ch:
		return r.c, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// transportErrFrom classifies a dial/handshake error.
func transportErrFrom(t Target, err error) error {
	var ce *cli.Error
	if errors.As(err, &ce) {
		return err
	}
	var hk *hostKeyError
	var ne net.Error
	switch {
	case errors.As(err, &hk):
		return transportErr(HostKey, t, err)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return transportErr(Timeout, t, err)
	case isAuthErr(err):
		return transportErr(Auth, t, err)
	}
	return transportErr(Unreachable, t, err)
}

func isAuthErr(err error) bool {
	var se *ssh.ServerAuthError
	if errors.As(err, &se) {
		return true
	}
	// x/crypto reports exhausted auth methods only as text.
	s := err.Error()
	return strings.Contains(s, "unable to authenticate") || strings.Contains(s, "no supported methods remain")
}

// keepalive sends keepalive@openssh.com every interval; after KeepaliveMax unanswered ones
// it closes the connection, which fails every blocked read with an error that Lost explains.
func (c *Conn) keepalive(cfg *Config) {
	interval := cfg.Keepalive
	if interval < 0 {
		return
	}
	if interval == 0 {
		// Generous: on a badly overloaded client, 5s x 3 declared live hosts dead.
		interval = 10 * time.Second
	}
	max := cfg.KeepaliveMax
	if max <= 0 {
		max = 3
	}
	closed := make(chan struct{})
	go func() { c.Client.Wait(); close(closed) }()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	replies := make(chan error, 1)
	pending, misses := false, 0
	for {
		select {
		case <-c.done:
			return
		case <-closed:
			return
		case err := <-replies:
			pending = false
			if err != nil {
				return // the connection is gone; Wait reports it
			}
			misses = 0
		case <-tick.C:
			if pending {
				misses++
				if misses >= max {
					c.lostMu.Lock()
					c.lost = transportErr(Lost, c.target, fmt.Errorf("no answer to %d keepalives in %v", misses, time.Duration(misses)*interval))
					c.lostMu.Unlock()
					c.Client.Close()
					return
				}
				continue
			}
			pending = true
			go func() {
				_, _, err := c.Client.SendRequest("keepalive@openssh.com", true, nil)
				replies <- err
			}()
		}
	}
}

// Close closes the shared bastion connections.
func (c *Config) Close() {
	c.jumpMu.Lock()
	defer c.jumpMu.Unlock()
	for _, j := range c.jumps {
		select {
		case <-j.ready:
			if j.client != nil {
				j.client.Close()
			}
		default:
		}
	}
}
