package fleetcmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"ec2kit/internal/cli"
	"ec2kit/internal/fanout"
	"ec2kit/internal/sshx"
	"ec2kit/internal/transfer"
)

// RsyncArgs are ec2-rsync's flags; Extra holds the rsync flags given after "--".
type RsyncArgs struct {
	CopyArgs
	Extra []string `arg:"-"`
}

// transportEnv carries the connection settings from ec2-rsync to the copy of itself that
// rsync starts as its remote shell.
const transportEnv = "EC2KIT_RSYNC_TRANSPORT"

type transportConf struct {
	Target         sshx.Target
	KeyFiles       []string
	Agent          bool
	User           string
	ConnectTimeout time.Duration
	Status         string // file that receives a transport failure for the parent to classify
}

type transportStatus struct {
	Kind sshx.Kind
	Msg  string
}

// RsyncMain is ec2-rsync's main: the transport mode (`ec2-rsync --transport HOST CMD...`,
// invoked by rsync -e), else flag parsing, with everything after "--" passed to rsync.
func RsyncMain(a *RsyncArgs, description, examples string) {
	if len(os.Args) > 1 && os.Args[1] == "--transport" {
		os.Exit(transport(os.Args[2:]))
	}
	for i, arg := range os.Args {
		if arg == "--" {
			a.Extra = os.Args[i+1:]
			os.Args = os.Args[:i]
			break
		}
	}
	cli.Main(a, description, examples, func(ctx context.Context) error { return Rsync(ctx, a) })
}

// Rsync runs one real rsync per host, with this binary as its SSH transport.
func Rsync(ctx context.Context, a *RsyncArgs) error {
	if _, err := exec.LookPath("rsync"); err != nil {
		return cli.WithHint(cli.Errorf(cli.ExitLocal, "rsync not found"), "install rsync (it must also be on the instances)")
	}
	for _, x := range a.Extra {
		if strings.HasPrefix(x, "-e") || strings.HasPrefix(x, "--rsh") {
			return cli.Errorf(cli.ExitUsage, "%s: ec2-rsync provides the remote shell itself", x)
		}
	}
	spec, hs, cfg, err := a.prepare(ctx)
	if err != nil {
		return err
	}
	defer cfg.Close()
	self, err := os.Executable()
	if err != nil {
		return cli.Errorf(cli.ExitLocal, "finding ec2-rsync itself: %v", err)
	}
	out, _ := fanout.NewOutput(fanout.Prefixed, os.Stdout, os.Stderr, "")
	return Finish(ctx, a.Pool(cfg).Local(ctx, hs, func(ctx context.Context, h sshx.Host) error {
		return rsyncOne(ctx, self, a, spec, cfg, h, out)
	}, nil))
}

func rsyncOne(ctx context.Context, self string, a *RsyncArgs, spec transfer.Spec, cfg *sshx.Config, h sshx.Host, out fanout.Output) error {
	status, err := os.CreateTemp("", "ec2kit-rsync-")
	if err != nil {
		return err
	}
	status.Close()
	defer os.Remove(status.Name())
	conf, _ := json.Marshal(transportConf{Target: h.Target, KeyFiles: cfg.KeyFiles, Agent: cfg.Agent, User: cfg.User,
		ConnectTimeout: cfg.ConnectTimeout, Status: status.Name()})
	args := append([]string{"-a", "-e", sshx.Quote(self) + " --transport"}, a.Extra...)
	if spec.Push {
		args = append(args, spec.Local, h.Target.ID+":"+spec.Remote)
	} else {
		local := filepath.Join(spec.Local, h.Target.ID)
		if err := os.MkdirAll(local, 0o755); err != nil {
			return err
		}
		args = append(args, h.Target.ID+":"+spec.Remote, local+"/")
	}
	cmd := exec.CommandContext(ctx, "rsync", args...)
	cmd.Env = append(os.Environ(), transportEnv+"="+string(conf))
	stdout, stderr, err := out.Open(h)
	if err != nil {
		return err
	}
	last := &lastLine{}
	cmd.Stdout, cmd.Stderr = stdout, io.MultiWriter(stderr, last)
	// Ctrl-C and --timeout reach rsync and its transport as SIGTERM, so the transport can
	// drop its connection (and the remote watchdog can end rsync --server).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	stdout.Close()
	stderr.Close()
	if b, _ := os.ReadFile(status.Name()); len(b) > 0 {
		var st transportStatus
		if json.Unmarshal(b, &st) == nil {
			return &sshx.Error{Kind: st.Kind, Target: h.Target.ID, Err: errors.New(st.Msg)}
		}
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("rsync exit %d: %s", ee.ExitCode(), last.String())
	}
	return err
}

// lastLine keeps the last complete line written to it.
type lastLine struct{ cur, last []byte }

func (l *lastLine) Write(p []byte) (int, error) {
	for _, b := range p {
		if b == '\n' {
			if len(l.cur) > 0 {
				l.last, l.cur = append(l.last[:0], l.cur...), l.cur[:0]
			}
			continue
		}
		if len(l.cur) < 512 {
			l.cur = append(l.cur, b)
		}
	}
	return len(p), nil
}

func (l *lastLine) String() string { return string(l.last) }

// transport is rsync's remote shell: `HOST COMMAND...` with stdin and stdout piped to the
// remote command, over the same sshx connection ec2-ssh would make. It exits with the
// remote status, or 255 (as ssh does) after recording a transport failure.
func transport(args []string) int {
	var conf transportConf
	if err := json.Unmarshal([]byte(os.Getenv(transportEnv)), &conf); err != nil {
		fmt.Fprintln(os.Stderr, "ec2-rsync --transport: only rsync, started by ec2-rsync, calls this")
		return cli.ExitUsage
	}
	if len(args) > 1 && args[0] == "-l" { // rsync passes a user@ part as -l USER
		conf.User, args = args[1], args[2:]
	}
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "ec2-rsync --transport: want HOST COMMAND")
		return cli.ExitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "ec2-rsync:", err)
		st := transportStatus{Kind: sshx.Unreachable, Msg: err.Error()}
		var e *sshx.Error
		if errors.As(err, &e) {
			st = transportStatus{Kind: e.Kind, Msg: e.Err.Error()}
		}
		b, _ := json.Marshal(st)
		os.WriteFile(conf.Status, b, 0o600)
		return 255
	}
	cfg := &sshx.Config{KeyFiles: conf.KeyFiles, Agent: conf.Agent, User: conf.User, ConnectTimeout: conf.ConnectTimeout}
	defer cfg.Close()
	c, err := sshx.DialConn(ctx, conf.Target, cfg)
	if err != nil {
		return fail(err)
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		return fail(&sshx.Error{Kind: sshx.Unreachable, Target: conf.Target.ID, Err: err})
	}
	s.Stdin, s.Stdout, s.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := s.Start(sshx.Wrap(strings.Join(args[1:], " "))); err != nil {
		return fail(&sshx.Error{Kind: sshx.Unreachable, Target: conf.Target.ID, Err: err})
	}
	context.AfterFunc(ctx, func() { c.Close() })
	err = s.Wait()
	if lost := c.Lost(); lost != nil {
		return fail(lost)
	}
	var ee *ssh.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitStatus()
	case ctx.Err() != nil:
		return cli.ExitInterrupted
	}
	return fail(&sshx.Error{Kind: sshx.Lost, Target: conf.Target.ID, Err: err})
}
