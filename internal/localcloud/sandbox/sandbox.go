// Package sandbox turns one EC2 instance of the local cloud into a host: an OpenSSH sshd on
// the instance's private (loopback) address, inside its own mount, PID and UTS namespaces,
// on a copy-on-write view of the machine's root filesystem. Start runs on the supervisor's
// side; Boot is the sandbox's init (PID 1), run by re-executing the localcloud binary.
package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/crypto/ssh"

	"ec2kit/internal/sshkey"
)

// Exit codes of the sandbox's init, telling the supervisor why the host ended.
const (
	ExitKilled   = 0  // asked to stop (SIGTERM)
	ExitPoweroff = 10 // poweroff, halt or shutdown ran inside
	ExitReboot   = 11 // reboot ran inside
	ExitCrashed  = 12 // sshd died, or the boot failed
)

// Spec is what a host is made from.
type Spec struct {
	ID            string
	IP            string
	User          string   // the AMI's login user (ec2-user, ubuntu, admin)
	AuthorizedKey string   // the key pair's public key, authorized_keys format
	UserData      []byte   // decoded user data, run once as root
	Env           []string // KEY=VALUE for every session and the user data
	Hide          []string // host directories the instance must not see (state of the cloud)
	AWSCLI        string   // host directory of a Python venv with the aws CLI (see awscliDir)
	SSHD          string   // where sshd listens (port 22) if not at IP (the network model's delay line is there)
}

// Hostname is the EC2-style host name of an address: ip-127-1-0-4.
func Hostname(ip string) string { return "ip-" + strings.ReplaceAll(ip, ".", "-") }

// Host is a running sandbox.
type Host struct {
	Dir  string
	cmd  *exec.Cmd
	done chan struct{}
	code int
}

// HostKeyFile is the public half of the host's SSH key, kept outside the sandbox so that
// clients can pin it (it persists across reboots and stop/start).
func HostKeyFile(dir string) string { return filepath.Join(dir, "hostkey.pub") }

// ConsoleLog is where the sandbox's init, sshd and user data write.
func ConsoleLog(dir string) string { return filepath.Join(dir, "console.log") }

// Start prepares dir (kept across reboots: the instance's upper layer, /mnt and host key)
// and starts the sandbox's init with `self boot dir` in new namespaces.
func Start(self, dir string, spec Spec) (*Host, error) {
	for _, d := range []string{"upper", "work", "root", "mnt"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := ensureHostKey(dir); err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	b, _ := json.Marshal(spec)
	if err := os.WriteFile(filepath.Join(dir, "spec.json"), b, 0o600); err != nil {
		return nil, err
	}
	console, err := os.OpenFile(ConsoleLog(dir), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer console.Close()
	cmd := exec.Command(self, "boot", dir)
	cmd.Args[0] = "localcloud"
	cmd.Stdout, cmd.Stderr = console, console
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS,
		Setsid:     true,
		Pdeathsig:  syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	h := &Host{Dir: dir, cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		h.code = cmd.ProcessState.ExitCode()
		if err != nil && h.code < 0 { // killed by a signal
			h.code = ExitKilled
		}
		close(h.done)
	}()
	return h, nil
}

// Done is closed when the sandbox has ended, with every process in it.
func (h *Host) Done() <-chan struct{} { return h.done }

// ExitCode says why it ended (valid after Done).
func (h *Host) ExitCode() int { return h.code }

// Pid is the init's process id on the machine.
func (h *Host) Pid() int { return h.cmd.Process.Pid }

// Kill ends the sandbox at once: when its init dies, the kernel kills every process of its
// PID namespace, so when Kill returns nothing of the host runs and its address refuses.
func (h *Host) Kill() {
	h.cmd.Process.Signal(syscall.SIGCONT) // a frozen init must run to die
	h.cmd.Process.Kill()
	<-h.done
}

// Freeze stops (or, with false, resumes) every process of the sandbox: connections stay
// open, nothing answers.
func (h *Host) Freeze(freeze bool) error {
	sig := syscall.SIGCONT
	if freeze {
		sig = syscall.SIGSTOP
	}
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", h.Pid()))
	if err != nil {
		return err
	}
	// Twice, to catch processes forked while the first pass ran.
	for range 2 {
		ents, err := os.ReadDir("/proc")
		if err != nil {
			return err
		}
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); err == nil && l == ns {
				syscall.Kill(pid, sig)
			}
		}
	}
	return nil
}

func ensureHostKey(dir string) error {
	s, err := sshkey.Read(filepath.Join(dir, "hostkey"))
	if errors.Is(err, fs.ErrNotExist) {
		s, err = sshkey.Write(filepath.Join(dir, "hostkey"), "")
	}
	if err != nil {
		return err
	}
	if _, err := os.Stat(HostKeyFile(dir)); err == nil {
		return nil
	}
	return os.WriteFile(HostKeyFile(dir), ssh.MarshalAuthorizedKey(s.PublicKey()), 0o644)
}
