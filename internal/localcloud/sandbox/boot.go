package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Inside the instance: where cloud-init would keep its state, so scripts that wait for boot
// (`cloud-init status --wait`) and the run-once rule of user data work as on EC2.
const (
	cloudDir     = "/var/lib/cloud/instance"
	bootFinished = cloudDir + "/boot-finished"
	userDataSem  = cloudDir + "/sem/user-data"
	userDataLog  = "/var/log/cloud-init-output.log"
	sshdConfig   = "/etc/ssh/ec2kit_sshd_config"
	hostKeyPath  = "/etc/ssh/ec2kit/ssh_host_ed25519_key"
	// The aws CLI's venv, mounted read-only where every user can reach it (the machine's
	// copy may sit in root's home), run by /usr/local/bin/aws, first on PATH.
	awscliDir = "/opt/ec2kit/awscli"
	awsPath   = "/usr/local/bin/aws"
)

// Boot is the sandbox's init: PID 1 of fresh mount, PID and UTS namespaces (see Start). It
// builds the instance's root, starts sshd and the user data, reaps orphans, and exits with
// ExitPoweroff/ExitReboot when the instance asks for it. Its exit takes every process of
// the instance with it.
func Boot(dir string) int {
	log.SetFlags(log.LstdFlags)
	log.SetPrefix("init: ")
	// Signals first, so a poweroff during boot is not lost.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTERM, syscall.SIGCHLD, syscall.SIGHUP)
	var spec Spec
	b, err := os.ReadFile(filepath.Join(dir, "spec.json"))
	if err == nil {
		err = json.Unmarshal(b, &spec)
	}
	if err == nil {
		err = buildRoot(dir, spec)
	}
	if err == nil {
		err = configure(spec)
	}
	var sshd, userData int
	if err == nil {
		sshd, err = startSSHD(spec)
	}
	if err != nil {
		log.Printf("boot failed: %v", err)
		return ExitCrashed
	}
	log.Printf("%s up: sshd on %s:22 for %s", spec.ID, spec.sshd(), spec.User)
	startPerBoot(spec)
	userData = startUserData(spec)
	var shutdown shutdownTimer
	for sig := range sigs {
		switch sig {
		case syscall.SIGUSR1:
			log.Print("poweroff requested")
			return ExitPoweroff
		case syscall.SIGUSR2:
			log.Print("reboot requested")
			return ExitReboot
		case syscall.SIGTERM:
			return ExitKilled
		case syscall.SIGHUP: // the shutdown command changed the schedule
			shutdown.rearm()
		}
		for { // SIGCHLD: reap every orphan, as an init must
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
			switch pid {
			case sshd:
				log.Printf("sshd ended (%v)", describe(ws))
				return ExitCrashed
			case userData:
				log.Printf("user data ended (%v); its output is in %s", describe(ws), userDataLog)
				os.WriteFile(bootFinished, nil, 0o644)
			}
		}
	}
	return ExitCrashed
}

func describe(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "signal " + ws.Signal().String()
	}
	return fmt.Sprintf("exit %d", ws.ExitStatus())
}

// buildRoot mounts the instance's root (overlayfs over /, its own upper layer), its /mnt on
// real disk, fresh /proc, /tmp, /run and /dev/shm, hides the cloud's own state, and pivots
// into it.
func buildRoot(dir string, spec Spec) error {
	root := filepath.Join(dir, "root")
	type m struct {
		src, target, fstype string
		flags               uintptr
		data                string
	}
	mounts := []m{
		{"", "/", "", unix.MS_REC | unix.MS_PRIVATE, ""},
		{"overlay", root, "overlay", 0, fmt.Sprintf("lowerdir=/,upperdir=%s/upper,workdir=%s/work", dir, dir)},
		{"/dev", root + "/dev", "", unix.MS_BIND | unix.MS_REC, ""},
		{"shm", root + "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
		{"proc", root + "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{root + "/proc/sys", root + "/proc/sys", "", unix.MS_BIND, ""},
		{"", root + "/proc/sys", "", unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY, ""},
		{"/sys", root + "/sys", "", unix.MS_BIND | unix.MS_REC, ""},
		{"", root + "/sys", "", unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY, ""},
		{"tmp", root + "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
		{"run", root + "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=755"},
		{filepath.Join(dir, "mnt"), root + "/mnt", "", unix.MS_BIND, ""},
	}
	for _, h := range spec.Hide {
		mounts = append(mounts, m{"hidden", root + h, "tmpfs", unix.MS_RDONLY, "mode=755,size=4k"})
	}
	for _, x := range mounts {
		if err := unix.Mount(x.src, x.target, x.fstype, x.flags, x.data); err != nil {
			return fmt.Errorf("mount %s on %s: %w", x.src, x.target, err)
		}
	}
	if spec.AWSCLI != "" {
		// Its mount point is made in the instance's own layer, now that it is mounted.
		if err := os.MkdirAll(root+awscliDir, 0o755); err != nil {
			return err
		}
		for _, flags := range []uintptr{unix.MS_BIND, unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY} {
			if err := unix.Mount(spec.AWSCLI, root+awscliDir, "", flags, ""); err != nil {
				return fmt.Errorf("mount %s on %s: %w", spec.AWSCLI, root+awscliDir, err)
			}
		}
	}
	if err := os.MkdirAll(root+filepath.Dir(hostKeyPath), 0o755); err != nil {
		return err
	}
	if err := copyFile(filepath.Join(dir, "hostkey"), root+hostKeyPath, 0o600); err != nil {
		return err
	}
	// pivot_root(".", ".") stacks the old root over the new one; detaching it leaves only
	// the instance's root reachable.
	if err := unix.Chdir(root); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	return unix.Sethostname([]byte(Hostname(spec.IP)))
}

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, mode)
}

// configure makes the instance what its AMI and launch said: login user with the key pair
// and passwordless sudo, sshd settings, AWS environment, and power commands that end only
// this instance. Idempotent: it runs on every boot.
func configure(spec Spec) error {
	u := spec.User
	if exec.Command("id", u).Run() != nil {
		if out, err := exec.Command("useradd", "-m", "-U", "-s", "/bin/bash", u).CombinedOutput(); err != nil {
			return fmt.Errorf("useradd %s: %v: %s", u, err, out)
		}
	}
	// "*" (not the "!" of a new account): no password, but not locked, so sshd accepts keys.
	if out, err := exec.Command("usermod", "-p", "*", u).CombinedOutput(); err != nil {
		return fmt.Errorf("usermod %s: %v: %s", u, err, out)
	}
	home := "/home/" + u
	if u == "root" {
		home = "/root"
	}
	host := Hostname(spec.IP)
	type file struct {
		path    string
		mode    os.FileMode
		content string
	}
	files := []file{
		{home + "/.ssh/authorized_keys", 0o600, spec.AuthorizedKey + "\n"},
		{"/etc/sudoers.d/90-cloud-init-users", 0o440, u + " ALL=(ALL) NOPASSWD:ALL\n"},
		{"/etc/hostname", 0o644, host + "\n"},
		{"/etc/hosts", 0o644, fmt.Sprintf("127.0.0.1 localhost\n::1 localhost\n%s %s.ec2.internal %s\n", spec.IP, host, host)},
		{"/etc/environment", 0o644, strings.Join(spec.Env, "\n") + "\n"},
		{sshdConfig, 0o644, sshdConf(spec)},
		{"/usr/sbin/poweroff", 0o755, powerScript("USR1")},
		{"/usr/sbin/halt", 0o755, powerScript("USR1")},
		{"/usr/sbin/reboot", 0o755, powerScript("USR2")},
		{"/usr/sbin/shutdown", 0o755, shutdownScript},
		{"/usr/bin/cloud-init", 0o755, cloudInitScript},
	}
	if spec.AWSCLI != "" {
		// The venv's own scripts name its machine path; the module runs from anywhere.
		files = append(files, file{awsPath, 0o755, "#!/bin/sh\nexec " + awscliDir + "/bin/python -m awscli \"$@\"\n"})
	}
	for _, f := range files {
		if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
			return err
		}
		os.Remove(f.path) // replaces symlinks (e.g. poweroff -> systemctl) instead of following them
		if err := os.WriteFile(f.path, []byte(f.content), f.mode); err != nil {
			return err
		}
	}
	for _, p := range []string{home, home + "/.ssh", "/mnt"} {
		if out, err := exec.Command("chown", "-R", u+":", p).CombinedOutput(); err != nil {
			return fmt.Errorf("chown %s: %v: %s", p, err, out)
		}
	}
	return os.MkdirAll("/run/sshd", 0o755)
}

func sshdConf(spec Spec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# ec2kit local cloud: instance %s\n", spec.ID)
	fmt.Fprintf(&b, "ListenAddress %s:22\nHostKey %s\n", spec.sshd(), hostKeyPath)
	b.WriteString(`PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PermitRootLogin prohibit-password
UsePAM no
PidFile none
MaxSessions 64
MaxStartups 200
AcceptEnv LANG LC_*
Subsystem sftp internal-sftp
`)
	if len(spec.Env) > 0 {
		fmt.Fprintf(&b, "SetEnv %s\n", strings.Join(spec.Env, " "))
	}
	return b.String()
}

// sshd is the address sshd listens on.
func (s Spec) sshd() string {
	if s.SSHD != "" {
		return s.SSHD
	}
	return s.IP
}

func powerScript(sig string) string {
	return `#!/bin/sh
# ec2kit local cloud: ends this instance only (its init acts on the signal).
[ "$(id -u)" = 0 ] || { echo "$0: must be superuser" >&2; exit 1; }
kill -` + sig + ` 1
`
}

const cloudInitScript = `#!/bin/sh
# ec2kit local cloud: only "cloud-init status [--wait]" is provided.
[ "$1" = status ] || { echo "cloud-init: only 'status [--wait]' is available here" >&2; exit 1; }
case " $* " in *" --wait "*|*" -w "*)
  while [ ! -e ` + bootFinished + ` ]; do sleep 0.2; done ;;
esac
if [ -e ` + bootFinished + ` ]; then echo "status: done"; else echo "status: running"; fi
`

func startSSHD(spec Spec) (int, error) {
	cmd := exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", sshdConfig)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("sshd: %w", err)
	}
	return cmd.Process.Pid, nil
}

// startUserData runs the user data once per instance, as root, like cloud-init's
// scripts-user; 0 when there is nothing to run.
func startUserData(spec Spec) int {
	if _, err := os.Stat(userDataSem); err == nil || len(spec.UserData) == 0 {
		os.WriteFile(bootFinished, nil, 0o644)
		return 0
	}
	script := cloudDir + "/scripts/part-001"
	os.MkdirAll(filepath.Dir(script), 0o755)
	os.MkdirAll(filepath.Dir(userDataSem), 0o755)
	err := os.WriteFile(userDataSem, nil, 0o644) // before running: once, even if it crashes
	if err == nil {
		err = os.WriteFile(script, spec.UserData, 0o700)
	}
	out, err2 := os.OpenFile(userDataLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err = errors.Join(err, err2); err != nil {
		log.Printf("user data: %v", err)
		return 0
	}
	defer out.Close()
	cmd := exec.Command("/bin/sh", script)
	if strings.HasPrefix(string(spec.UserData), "#!") {
		cmd = exec.Command(script)
	}
	cmd.Dir = "/"
	cmd.Env = scriptEnv(spec)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		log.Printf("user data: %v", err)
		return 0
	}
	return cmd.Process.Pid
}
