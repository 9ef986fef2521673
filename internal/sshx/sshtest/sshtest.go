// Package sshtest runs real OpenSSH sshd hosts for tests: one `sshd -D` per host, each on
// port 22 of its own loopback address, inside a private network namespace so that no test
// traffic can leave the machine.
package sshtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"ec2kit/internal/sshkey"
	"ec2kit/internal/sshx"
)

const netnsEnv = "EC2KIT_SSHTEST_NETNS"

// Main runs a package's tests inside a fresh network namespace with only loopback up: the
// test binary re-executes itself there (root only). Use from TestMain.
func Main(m *testing.M) {
	if os.Getenv(netnsEnv) == "" && os.Getuid() == 0 {
		cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		cmd.Env = append(os.Environ(), netnsEnv+"=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Run(); err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				os.Exit(ee.ExitCode())
			}
			fmt.Fprintln(os.Stderr, "sshtest: starting tests in a network namespace:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv(netnsEnv) != "" {
		if err := loopbackUp(); err != nil {
			fmt.Fprintln(os.Stderr, "sshtest: loopback up:", err)
			os.Exit(1)
		}
		quietLogins()
	}
	os.Exit(m.Run())
}

func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// Require skips t unless sshd hosts can run here (root, inside the private namespace).
func Require(t testing.TB) {
	t.Helper()
	if os.Getenv(netnsEnv) == "" {
		t.Skip("sshd hosts need root and a private network namespace (sshtest.Main)")
	}
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		t.Skip("no /usr/sbin/sshd")
	}
}

// Host is one running sshd.
type Host struct {
	Target  sshx.Target
	HostKey ssh.PublicKey
	dir     string
	cmd     *exec.Cmd
	exited  chan struct{}
}

// Fleet is a set of hosts sharing one client key.
type Fleet struct {
	Hosts      []*Host
	KeyFile    string // client private key, accepted by every host
	KnownHosts string // an empty known_hosts file for the client side
	Dir        string
}

// Targets returns the hosts' targets.
func (f *Fleet) Targets() []sshx.Target {
	var out []sshx.Target
	for _, h := range f.Hosts {
		out = append(out, h.Target)
	}
	return out
}

// Config returns a client config for the fleet: its key, its known_hosts, no agent, no
// ~/.ssh/config, short timeouts.
func (f *Fleet) Config() *sshx.Config {
	return &sshx.Config{KeyFiles: []string{f.KeyFile}, KnownHosts: f.KnownHosts, SSHConfig: "none",
		ConnectTimeout: 5 * time.Second, Keepalive: time.Second, KeepaliveMax: 3}
}

// Addr is the loopback address of host i; base distinguishes fleets started by one test.
func Addr(base, i int) string { return fmt.Sprintf("127.%d.%d.%d", 100+base, i/250, i%250+1) }

var fleets int

// Start runs n sshd hosts (ids "i-test<k>") and stops them when the test ends.
func Start(t testing.TB, n int) *Fleet {
	t.Helper()
	Require(t)
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	base := fleets
	fleets++
	f := &Fleet{Dir: t.TempDir()}
	f.KeyFile = filepath.Join(f.Dir, "id_ed25519")
	pub := writeKey(t, f.KeyFile)
	auth := filepath.Join(f.Dir, "authorized_keys")
	if err := os.WriteFile(auth, ssh.MarshalAuthorizedKey(pub), 0o600); err != nil {
		t.Fatal(err)
	}
	f.KnownHosts = filepath.Join(f.Dir, "known_hosts")
	for i := range n {
		h := &Host{dir: filepath.Join(f.Dir, fmt.Sprintf("h%d", i))}
		h.Target = sshx.Target{ID: fmt.Sprintf("i-test%d-%03d", base, i), Addr: Addr(base, i), User: currentUser(), Port: 22}
		if err := os.Mkdir(h.dir, 0o700); err != nil {
			t.Fatal(err)
		}
		h.HostKey = writeKey(t, filepath.Join(h.dir, "host_key"))
		conf := fmt.Sprintf(`ListenAddress %s:22
HostKey %s/host_key
AuthorizedKeysFile %s
StrictModes no
UsePAM no
PidFile none
PermitRootLogin yes
PasswordAuthentication no
KbdInteractiveAuthentication no
MaxStartups 2000
MaxSessions 100
LogLevel ERROR
Subsystem sftp internal-sftp
`, h.Target.Addr, h.dir, auth)
		if err := os.WriteFile(filepath.Join(h.dir, "sshd_config"), []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		f.Hosts = append(f.Hosts, h)
		h.Start(t)
	}
	t.Cleanup(func() {
		for _, h := range f.Hosts {
			h.Stop()
		}
	})
	return f
}

// Start (re)starts the host's sshd and waits until it listens.
func (h *Host) Start(t testing.TB) {
	t.Helper()
	log, err := os.OpenFile(filepath.Join(h.dir, "sshd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	h.cmd = exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", filepath.Join(h.dir, "sshd_config"))
	h.cmd.Stdout, h.cmd.Stderr = log, log
	// Its own process group, so Hang and Stop reach the per-connection processes too.
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { cmd.Wait(); close(exited) }(h.cmd, h.exited)
	addr := net.JoinHostPort(h.Target.Addr, "22")
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(h.dir, "sshd.log"))
			t.Fatalf("sshd on %s did not start: %v\n%s", addr, err, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop kills the host's sshd and every process it started (the host goes down), and waits
// until its address is free again.
func (h *Host) Stop() {
	h.signal(syscall.SIGKILL)
	if h.exited != nil {
		<-h.exited
	}
}

// Hang freezes the host's sshd and its connections (a host that stops answering).
func (h *Host) Hang() { h.signal(syscall.SIGSTOP) }

// Resume undoes Hang.
func (h *Host) Resume() { h.signal(syscall.SIGCONT) }

// signal reaches sshd and all its descendants: each connection's sshd calls setsid, so a
// process group would miss them.
func (h *Host) signal(sig syscall.Signal) {
	if h.cmd == nil || h.cmd.Process == nil {
		return
	}
	for _, pid := range Descendants(h.cmd.Process.Pid) {
		_ = syscall.Kill(pid, sig)
	}
	_ = syscall.Kill(h.cmd.Process.Pid, sig)
}

// Descendants lists the live descendants of pid, from /proc.
func Descendants(pid int) []int {
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// The command name may hold spaces and parentheses: fields follow the last ')'.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 1 {
			parent[p], _ = strconv.Atoi(f[1])
		}
	}
	var out []int
	for p := range parent {
		for a := parent[p]; a > 1; a = parent[a] {
			if a == pid {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// NewHostKey replaces the host's key (as if the instance were rebuilt); restart to apply.
func (h *Host) NewHostKey(t testing.TB) {
	t.Helper()
	os.Remove(filepath.Join(h.dir, "host_key"))
	h.HostKey = writeKey(t, filepath.Join(h.dir, "host_key"))
}

func writeKey(t testing.TB, path string) ssh.PublicKey {
	t.Helper()
	s, err := sshkey.Write(path, "")
	if err != nil {
		t.Fatal(err)
	}
	return s.PublicKey()
}

func currentUser() string {
	if u := os.Getenv("USER"); u != "" && !strings.ContainsAny(u, " /") {
		return u
	}
	return "root"
}

// quietLogins hides root's shell startup files inside the tests' own mount namespace: bash
// reads ~/.bashrc on every SSH command, and a developer machine's (pyenv, conda, ...) can
// cost a third of a second of CPU per login, which is not what these tests measure. Real
// hosts and the machine itself are untouched.
func quietLogins() {
	if unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "") != nil {
		return
	}
	for _, f := range []string{".bashrc", ".profile", ".bash_profile", ".bash_login"} {
		p := filepath.Join("/root", f)
		if _, err := os.Stat(p); err == nil {
			unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
		}
	}
}
