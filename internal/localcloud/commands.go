package localcloud

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"ec2kit/internal/cli"
	"ec2kit/internal/localcloud/netmodel"
	"ec2kit/internal/localcloud/sandbox"
)

// Command is one subcommand of localcloud.
type Command interface {
	run(ctx context.Context, c Cloud) error
}

// Dispatch runs the one subcommand go-arg filled in (the others are nil pointers).
func Dispatch(ctx context.Context, name string, cmds ...Command) error {
	c := Cloud{Name: name}
	if err := c.check(); err != nil {
		return err
	}
	for _, cmd := range cmds {
		if v := reflect.ValueOf(cmd); !v.IsNil() {
			return cmd.run(ctx, c)
		}
	}
	return cli.Errorf(cli.ExitUsage, "no command given: try up, status, env, run, fault or down (see --help)")
}

// Up starts the cloud.
type Up struct {
	Net    string         `arg:"--net" placeholder:"MODEL" help:"shape the network between S3 and the instances like EC2's, scaled down (ec2: an i3en.2xlarge's NIC and S3's per-connection rate, 1/32, and an operator in the region; see localcloud status) [default: unshaped loopback]"`
	SSHRTT *time.Duration `arg:"--ssh-rtt" placeholder:"DUR" help:"with --net: the round trip between this machine and the instances' sshd, at the model's scale (ec2: 32ms, 1 ms on EC2; a laptop 60 ms away: 1.92s; 0: loopback's)"`
	Scale  int            `arg:"--scale" placeholder:"N" help:"with --net: the model N times slower than EC2 (rates divided, latencies multiplied), so that more instances fit under what this machine can move [default: 32]"`
}

// Down stops it.
type Down struct{}

// Status says what runs.
type Status struct{}

// Env prints the environment for eval.
type Env struct{}

// Run runs a command inside the cloud.
type Run struct {
	Command []string `arg:"positional,required" placeholder:"CMD" help:"command and arguments (put -- before them)"`
}

// Fault injects a failure into one instance's host, or (capacity) into RunInstances.
type Fault struct {
	ID     string        `arg:"positional,required" placeholder:"INSTANCE-ID|capacity"`
	Mode   string        `arg:"positional,required" placeholder:"down|hang|slow|up|interrupt|TYPE" help:"down: kill the host, EC2 still says running; hang: freeze its processes; slow: (with --net) its NIC at --nic of the model's rate; up: back to normal; interrupt: a spot interruption notice in the instance's metadata, then termination; after capacity: the instance type"`
	Rest   []string      `arg:"positional" placeholder:"[ZONE] on|off|N" help:"capacity TYPE [ZONE] on: RunInstances of TYPE (in ZONE) answers InsufficientInstanceCapacity; N: at most N instances per request; off: served again"`
	Notice time.Duration `arg:"--notice" default:"2m" help:"with interrupt: time from the notice to the termination (EC2 gives two minutes)"`
	NIC    float64       `arg:"--nic" default:"0.5" placeholder:"FRACTION" help:"with slow: the instance's NIC rate as a fraction of the model's (a noisy neighbour, a degraded host)"`
}

// Serve is the supervisor (started by up inside the namespace).
type Serve struct {
	Net    string         `arg:"--net"`
	SSHRTT *time.Duration `arg:"--ssh-rtt"`
	Scale  int            `arg:"--scale"`
}

// Boot is an instance sandbox's init (started by the supervisor).
type Boot struct {
	Dir string `arg:"positional,required"`
}

func (u Up) run(ctx context.Context, c Cloud) error {
	if _, ok := netmodel.Models[u.Net]; u.Net != "" && !ok {
		return cli.Errorf(cli.ExitUsage, "--net %q: the models are: %s", u.Net, strings.Join(slices.Sorted(maps.Keys(netmodel.Models)), ", "))
	}
	serveArgs := []string{"--net", u.Net}
	if u.SSHRTT != nil {
		if u.Net == "" {
			return cli.Errorf(cli.ExitUsage, "--ssh-rtt: only with --net (without a model, SSH is loopback's)")
		}
		if *u.SSHRTT < 0 {
			return cli.Errorf(cli.ExitUsage, "--ssh-rtt %v: must not be negative", *u.SSHRTT)
		}
		serveArgs = append(serveArgs, "--ssh-rtt", u.SSHRTT.String())
	}
	if u.Scale != 0 {
		if u.Net == "" || u.Scale < 1 || u.Scale > 1024 {
			return cli.Errorf(cli.ExitUsage, "--scale %d: with --net, from 1 to 1024", u.Scale)
		}
		serveArgs = append(serveArgs, "--scale", strconv.Itoa(u.Scale))
	}
	if err := needRoot("localcloud up"); err != nil {
		return err
	}
	unlock, err := c.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if c.serving() {
		fmt.Fprintf(os.Stderr, "localcloud: the local cloud %q is already up; `eval \"$(localcloud env)\"` or `localcloud run -- CMD`\n", c.Name)
		return nil
	}
	if err := c.start(ctx, serveArgs); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "localcloud: the local cloud %q is up (network namespace %s, state in %s)\n"+
		"localcloud: use it with `localcloud run -- CMD` (or eval \"$(localcloud env)\" inside `ip netns exec %s`)\n",
		c.Name, c.Name, c.RunDir(), c.Name)
	return nil
}

// lock serialises up and down: a second `up` racing the first waits for it, then finds the
// cloud up.
func (c Cloud) lock() (func(), error) {
	f, err := os.OpenFile(c.lockFile(), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, cli.Errorf(cli.ExitLocal, "lock: %v", err)
	}
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		fmt.Fprintf(os.Stderr, "localcloud: another `localcloud up` or `down` of %q is running; waiting for it\n", c.Name)
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			f.Close()
			return nil, cli.Errorf(cli.ExitLocal, "lock: %v", err)
		}
	}
	return func() { f.Close() }, nil
}

// start creates the namespace and the supervisor (serve with serveArgs), and waits until
// the supervisor says the cloud is ready; on failure it removes everything it made.
func (c Cloud) start(ctx context.Context, serveArgs []string) (err error) {
	for _, tool := range []string{"ip", "nsenter", "/usr/sbin/sshd", "useradd"} {
		if _, err := exec.LookPath(tool); err != nil {
			return cli.WithHint(cli.Errorf(cli.ExitLocal, "%s is missing", tool), "run scripts/setup")
		}
	}
	created := false
	defer func() {
		if err != nil {
			c.cleanup(created)
		}
	}()
	if err := os.MkdirAll(c.RunDir(), 0o755); err != nil {
		return cli.Errorf(cli.ExitLocal, "%v", err)
	}
	if _, err := os.Stat(c.NetNS()); err != nil {
		if out, err := exec.Command("ip", "netns", "add", c.Name).CombinedOutput(); err != nil {
			return cli.Errorf(cli.ExitLocal, "ip netns add %s: %v: %s", c.Name, err, out)
		}
		created = true
	}
	if out, err := exec.Command("ip", "-n", c.Name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return cli.Errorf(cli.ExitLocal, "bringing up lo in %s: %v: %s", c.Name, err, out)
	}
	self, err := os.Executable()
	if err != nil {
		return cli.Errorf(cli.ExitLocal, "%v", err)
	}
	logf, err := os.OpenFile(c.path("serve.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return cli.Errorf(cli.ExitLocal, "%v", err)
	}
	defer logf.Close()
	ready, readyW, err := os.Pipe()
	if err != nil {
		return cli.Errorf(cli.ExitLocal, "%v", err)
	}
	defer ready.Close()
	cmd := exec.Command("nsenter", append([]string{"--net=" + c.NetNS(), "--", self, "--name", c.Name, "serve"}, serveArgs...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{readyW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		readyW.Close()
		return cli.Errorf(cli.ExitLocal, "starting the supervisor: %v", err)
	}
	readyW.Close()
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	line, _ := bufio.NewReader(ready).ReadString('\n')
	if line == "ok\n" {
		return nil
	}
	cmd.Process.Kill()
	<-exited
	msg := strings.TrimSpace(strings.TrimPrefix(line, "error: "))
	if msg == "" {
		msg = "the supervisor ended before the cloud was ready"
	}
	return cli.WithHint(cli.Errorf(cli.ExitLocal, "localcloud up failed: %s", msg),
		"logs were in "+c.RunDir()+" (removed); nothing was left running")
}

func (Down) run(ctx context.Context, c Cloud) error {
	if err := needRoot("localcloud down"); err != nil {
		return err
	}
	unlock, err := c.lock()
	if err != nil {
		return err
	}
	defer unlock()
	_, nsErr := os.Stat(c.NetNS())
	if !c.serving() && nsErr != nil {
		if _, err := os.Stat(c.RunDir()); err != nil {
			fmt.Fprintf(os.Stderr, "localcloud: the local cloud %q is not up\n", c.Name)
			return nil
		}
	}
	if pid := readPid(c.path("serve.pid")); pid > 0 && c.serving() {
		syscall.Kill(pid, syscall.SIGTERM)
		for i := 0; i < 100 && c.serving(); i++ {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if err := c.cleanup(true); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "localcloud: the local cloud %q is down\n", c.Name)
	return nil
}

// cleanup removes the state directories and, when the namespace is ours, kills whatever
// still runs in it and deletes it. A namespace up did not create may hold someone else's
// processes: those are left alone.
func (c Cloud) cleanup(ownNS bool) error {
	for i := 0; ownNS && i < 50; i++ {
		out, err := exec.Command("ip", "netns", "pids", c.Name).Output()
		pids := strings.Fields(string(out))
		if err != nil || len(pids) == 0 {
			break
		}
		for _, p := range pids {
			if pid, err := strconv.Atoi(p); err == nil {
				syscall.Kill(pid, syscall.SIGCONT)
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ownNS {
		if _, err := os.Stat(c.NetNS()); err == nil {
			if out, err := exec.Command("ip", "netns", "delete", c.Name).CombinedOutput(); err != nil {
				return cli.Errorf(cli.ExitLocal, "ip netns delete %s: %v: %s", c.Name, err, out)
			}
		}
	}
	// Instances' mounts live in their own mount namespaces and vanish with them; one left
	// on the machine would make RemoveAll reach through an overlay into the real /.
	if m := mountsUnder(c.DiskDir()); len(m) > 0 {
		return cli.Errorf(cli.ExitLocal, "mounts remain under %s (%s); not deleting it", c.DiskDir(), strings.Join(m, ", "))
	}
	os.RemoveAll(c.DiskDir())
	return os.RemoveAll(c.RunDir())
}

func mountsUnder(dir string) []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	return out
}

func (Status) run(ctx context.Context, c Cloud) error {
	env, err := c.savedEnv()
	if err != nil {
		return err
	}
	var st status
	if err := c.control(ctx, "GET", "/status", &st); err != nil {
		return err
	}
	fmt.Printf("local cloud %q is up: network namespace %s (loopback only), supervisor pid %d\n", c.Name, c.Name, st.Pid)
	for _, s := range st.Services {
		fmt.Printf("  %-10s %s\n", s.Name, s.Where)
	}
	fmt.Printf("  %-10s %s\n", "state", c.RunDir())
	fmt.Printf("  %-10s %s\n", "disk", c.DiskDir())
	for _, kv := range env {
		if strings.HasPrefix(kv, "EC2KIT_SUBNET=") || strings.HasPrefix(kv, "EC2KIT_VPC=") {
			fmt.Printf("  %s\n", kv)
		}
	}
	fmt.Printf("hosts: %d\n", len(st.Hosts))
	if len(st.Hosts) > 0 {
		tw := tabwriter.NewWriter(os.Stdout, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "  INSTANCE\tADDRESS\tUSER\tSTATE\tINIT PID")
		for _, h := range st.Hosts {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\n", h.ID, h.IP, h.User, h.State, h.Pid)
		}
		tw.Flush()
	}
	return nil
}

func (Env) run(ctx context.Context, c Cloud) error {
	env, err := c.savedEnv()
	if err != nil {
		return err
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Printf("export %s='%s'\n", k, strings.ReplaceAll(v, "'", `'\''`))
	}
	return nil
}

func (r Run) run(ctx context.Context, c Cloud) error {
	env, err := c.savedEnv()
	if err != nil {
		return err
	}
	if err := needRoot("localcloud run"); err != nil {
		return err
	}
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		return cli.Errorf(cli.ExitLocal, "nsenter is missing: %v", err)
	}
	// exec, so the command's exit status and signals are the command's own.
	args := append([]string{"nsenter", "--net=" + c.NetNS(), "--"}, r.Command...)
	err = syscall.Exec(nsenter, args, append(os.Environ(), env...))
	return cli.Errorf(cli.ExitLocal, "exec nsenter: %v", err)
}

func (f Fault) run(ctx context.Context, c Cloud) error {
	if _, err := c.savedEnv(); err != nil {
		return err
	}
	if f.ID == "capacity" {
		return capacityFault(c, f.Mode, f.Rest)
	}
	switch f.Mode {
	case "down", "hang", "slow", "up", "interrupt":
	default:
		return cli.Errorf(cli.ExitUsage, "fault mode %q: use down, hang, slow, up or interrupt", f.Mode)
	}
	if f.Notice < 0 {
		return cli.Errorf(cli.ExitUsage, "--notice %v: must not be negative", f.Notice)
	}
	if f.Mode == "slow" && (f.NIC <= 0 || f.NIC > 1) {
		return cli.Errorf(cli.ExitUsage, "--nic %v: a fraction of the model's NIC rate, more than 0 and at most 1", f.NIC)
	}
	q := url.Values{"id": {f.ID}, "mode": {f.Mode}, "notice": {f.Notice.String()}, "nic": {strconv.FormatFloat(f.NIC, 'g', -1, 64)}}
	if err := c.control(ctx, "POST", "/fault?"+q.Encode(), nil); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "localcloud: %s: fault %s\n", f.ID, f.Mode)
	return nil
}

func (sv Serve) run(ctx context.Context, c Cloud) error {
	return serve(ctx, c, sv.Net, sv.Scale, sv.SSHRTT)
}

func (b Boot) run(ctx context.Context, c Cloud) error {
	if code := sandbox.Boot(b.Dir); code != sandbox.ExitKilled {
		return cli.Silent(code)
	}
	return nil
}

// control calls the supervisor over its unix socket.
func (c Cloud) control(ctx context.Context, method, path string, out any) error {
	client := http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", c.path("control.sock"))
		}}}
	req, _ := http.NewRequestWithContext(ctx, method, "http://localcloud"+path, nil)
	resp, err := client.Do(req)
	if err != nil {
		return cli.Errorf(cli.ExitLocal, "talking to the local cloud's supervisor: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	switch resp.StatusCode {
	case http.StatusOK:
		if out != nil {
			return json.Unmarshal(body, out)
		}
		return nil
	case http.StatusNotFound:
		return cli.Errorf(cli.ExitNoMatch, "%s", strings.TrimSpace(string(body)))
	}
	return cli.Errorf(cli.ExitLocal, "%s", strings.TrimSpace(string(body)))
}

func instanceDir(c Cloud, id string) string { return filepath.Join(c.instancesDir(), id) }
