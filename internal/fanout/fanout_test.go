package fanout_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"ec2kit/internal/cli"
	"ec2kit/internal/fanout"
	"ec2kit/internal/sshx"
	"ec2kit/internal/sshx/sshtest"
)

func TestMain(m *testing.M) { sshtest.Main(m) }

func hostsOf(f *sshtest.Fleet) []sshx.Host {
	var hs []sshx.Host
	for _, t := range f.Targets() {
		hs = append(hs, sshx.Host{Target: t, Label: t.ID})
	}
	return hs
}

// syncBuffer is a bytes.Buffer safe for the one writer goroutine at a time that
// lockedWriter guarantees, plus the test's reads after the run.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func TestLinesStayWholeUnderLoad(t *testing.T) {
	const hosts, lines = 20, 100000
	f := sshtest.Start(t, hosts)
	var stdout, stderr syncBuffer
	out, _ := fanout.NewOutput(fanout.Prefixed, &stdout, &stderr, "")
	p := &fanout.Pool{Config: f.Config()}
	// Every host prints long and short lines as fast as it can; the last has no newline.
	cmd := fmt.Sprintf(`seq 1 %d | sed 's/^/x-/' ; printf tail`, lines)
	res := fanout.RunCommand(context.Background(), p, hostsOf(f), fanout.Command{Cmd: cmd}, out)
	if c := fanout.ExitCode(res); c != 0 {
		fanout.Summary(os.Stderr, res)
		t.Fatalf("exit %d", c)
	}
	seen := map[string]int{}
	for _, l := range strings.Split(strings.TrimSuffix(stdout.b.String(), "\n"), "\n") {
		label, rest, ok := strings.Cut(l, ": ")
		if !ok || !(strings.HasPrefix(rest, "x-") || rest == "tail") {
			t.Fatalf("torn line %q", l)
		}
		if rest != "tail" && rest != fmt.Sprintf("x-%d", seen[label]+1) {
			t.Fatalf("%s: line %q after %d", label, rest, seen[label])
		}
		seen[label]++
	}
	for _, h := range f.Hosts {
		if seen[h.Target.ID] != lines+1 {
			t.Fatalf("%s: %d lines", h.Target.ID, seen[h.Target.ID])
		}
	}
}

func TestStdinReachesEveryHostIntact(t *testing.T) {
	hosts, size := 20, 50<<20
	if testing.Short() {
		hosts = 4
	}
	f := sshtest.Start(t, hosts)
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*7 + i>>13)
	}
	want := fmt.Sprintf("%x", sha256.Sum256(data))
	pr, pw := io.Pipe()
	go func() { // streamed in pieces, like a pipe into ec2-ssh
		for off := 0; off < len(data); off += 1 << 20 {
			pw.Write(data[off : off+1<<20])
		}
		pw.Close()
	}()
	spool, err := fanout.NewSpool(pr)
	if err != nil {
		t.Fatal(err)
	}
	defer spool.Close()
	var stdout, stderr syncBuffer
	out, _ := fanout.NewOutput(fanout.Prefixed, &stdout, &stderr, "")
	p := &fanout.Pool{Config: f.Config(), Parallel: hosts / 2} // late starters must get it all too
	res := fanout.RunCommand(context.Background(), p, hostsOf(f), fanout.Command{Cmd: "sha256sum", Stdin: spool}, out)
	if c := fanout.ExitCode(res); c != 0 {
		t.Fatalf("exit %d: %s", c, stderr.b.String())
	}
	for _, h := range f.Hosts {
		if !strings.Contains(stdout.b.String(), h.Target.ID+": "+want+"  -\n") {
			t.Fatalf("%s: checksum missing or wrong:\n%s", h.Target.ID, stdout.b.String())
		}
	}
}

func TestExitCodeTable(t *testing.T) {
	f := sshtest.Start(t, 5)
	cfg := f.Config()
	cfg.ConnectTimeout = time.Second
	cfg.Keepalive = 250 * time.Millisecond
	// Record every host key first, then rebuild host 4 with a new one.
	if _, err := sshx.WaitReady(context.Background(), f.Targets(), cfg, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	f.Hosts[4].Stop()
	f.Hosts[4].NewHostKey(t)
	f.Hosts[4].Start(t)
	f.Hosts[2].Stop()
	cfg = f.Config()
	cfg.ConnectTimeout = time.Second
	cfg.Keepalive = 250 * time.Millisecond
	p := &fanout.Pool{Config: cfg}
	run := func(cmd string) []fanout.Result {
		out, _ := fanout.NewOutput(fanout.Prefixed, io.Discard, io.Discard, "")
		return fanout.RunCommand(context.Background(), p, hostsOf(f), fanout.Command{Cmd: cmd}, out)
	}
	// Host 1 exits 3; host 3 hangs mid-command.
	h1, h3 := f.Hosts[1].Target.Addr, f.Hosts[3].Target.Addr
	go func() {
		time.Sleep(500 * time.Millisecond)
		f.Hosts[3].Hang()
	}()
	defer f.Hosts[3].Resume()
	start := time.Now()
	res := run(fmt.Sprintf(`case $SSH_CONNECTION in *" %s 22") exit 3;; *" %s 22") sleep 30;; esac`, h1, h3))
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("hung host held the run for %v", took)
	}
	want := []fanout.Status{fanout.OK, fanout.Failed, fanout.Unreachable, fanout.Unreachable, fanout.Unreachable}
	for i, r := range res {
		if r.Status != want[i] {
			t.Errorf("host %d: %v (%v), want %v", i, r.Status, r.Err, want[i])
		}
	}
	if res[1].ExitCode != 3 {
		t.Errorf("exit code %d", res[1].ExitCode)
	}
	if k, _ := sshx.KindOf(res[3].Err); k != sshx.Lost {
		t.Errorf("hung host: %v", res[3].Err)
	}
	if k, _ := sshx.KindOf(res[4].Err); k != sshx.HostKey {
		t.Errorf("rebuilt host: %v", res[4].Err)
	}
	if fanout.ExitCode(res) != cli.ExitUnreachable || fanout.ExitCode(res[:2]) != cli.ExitFailed || fanout.ExitCode(res[:1]) != 0 {
		t.Errorf("exit codes %d %d %d", fanout.ExitCode(res), fanout.ExitCode(res[:2]), fanout.ExitCode(res[:1]))
	}
	var sum bytes.Buffer
	fanout.Summary(&sum, res)
	for _, s := range []string{"5 host(s): 1 ok, 1 failed, 3 unreachable", "exit 3", "host key", "connection lost"} {
		if !strings.Contains(sum.String(), s) {
			t.Errorf("summary lacks %q:\n%s", s, sum.String())
		}
	}
}

func waitGone(t *testing.T, marker string, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); len(sshtest.Running(marker)) > 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d remote process(es) %q still running", len(sshtest.Running(marker)), marker)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestInterruptKillsRemoteCommands(t *testing.T) {
	f := sshtest.Start(t, 3)
	p := &fanout.Pool{Config: f.Config()}
	out, _ := fanout.NewOutput(fanout.Prefixed, io.Discard, io.Discard, "")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(time.Second, cancel)
	// A pipeline and a background job: the signal alone would reach only the first shell.
	res := fanout.RunCommand(ctx, p, hostsOf(f), fanout.Command{Cmd: "sleep 987651 & sleep 987651 | cat; wait"}, out)
	if fanout.ExitCode(res) != cli.ExitInterrupted {
		t.Fatalf("exit %d", fanout.ExitCode(res))
	}
	waitGone(t, "987651", 3*time.Second)
}

func TestDroppedConnectionKillsRemoteCommand(t *testing.T) {
	f := sshtest.Start(t, 1)
	c, err := sshx.DialConn(context.Background(), f.Hosts[0].Target, f.Config())
	if err != nil {
		t.Fatal(err)
	}
	s, _ := c.NewSession()
	if err := s.Start(sshx.Wrap("sleep 987652 & sleep 987652")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if len(sshtest.Running("987652")) == 0 {
		t.Fatal("command did not start")
	}
	c.Close() // no signal: only the watchdog can clean up
	waitGone(t, "987652", 5*time.Second)
}

func TestTimeout(t *testing.T) {
	f := sshtest.Start(t, 2)
	p := &fanout.Pool{Config: f.Config(), Timeout: time.Second}
	out, _ := fanout.NewOutput(fanout.Prefixed, io.Discard, io.Discard, "")
	res := fanout.RunCommand(context.Background(), p, hostsOf(f), fanout.Command{Cmd: `case $SSH_CONNECTION in *" ` + f.Hosts[1].Target.Addr + ` 22") sleep 987653;; esac`}, out)
	if res[0].Status != fanout.OK || res[1].Status != fanout.TimedOut || fanout.ExitCode(res) != cli.ExitUnreachable {
		t.Fatalf("%+v", res)
	}
	waitGone(t, "987653", 3*time.Second)
}

func TestExitStatusAndOutputModes(t *testing.T) {
	f := sshtest.Start(t, 3)
	p := &fanout.Pool{Config: f.Config()}
	hosts := hostsOf(f)
	cmd := `echo same; echo err >&2; case $SSH_CONNECTION in *" ` + f.Hosts[2].Target.Addr + ` 22") echo odd; exit 7;; esac`
	for _, tc := range []struct {
		mode fanout.Mode
		want []string
	}{
		{fanout.Coalesced, []string{"----------------\n" + hosts[0].Label + "," + hosts[1].Label + " (2)\n----------------\nsame\n", hosts[2].Label + "\n----------------\nsame\nodd\n"}},
		{fanout.Grouped, []string{hosts[1].Label + "\n----------------\nsame\n"}},
		{fanout.JSON, []string{`{"host":"` + hosts[2].Label + `","id":"` + hosts[2].Target.ID + `","stream":"stdout","line":"odd"}`, `"status":"failed","exit_code":7`, `"stream":"stderr","line":"err"`}},
	} {
		var stdout, stderr syncBuffer
		out, _ := fanout.NewOutput(tc.mode, &stdout, &stderr, "")
		res := fanout.RunCommand(context.Background(), p, hosts, fanout.Command{Cmd: cmd}, out)
		if res[2].Status != fanout.Failed || res[2].ExitCode != 7 || fanout.ExitCode(res) != cli.ExitFailed {
			t.Fatalf("%+v", res[2])
		}
		for _, w := range tc.want {
			if !strings.Contains(stdout.b.String(), w) {
				t.Errorf("mode %d: output lacks %q:\n%s", tc.mode, w, stdout.b.String())
			}
		}
	}
	dir := t.TempDir()
	out, _ := fanout.NewOutput(fanout.Prefixed, nil, nil, dir)
	fanout.RunCommand(context.Background(), p, hosts, fanout.Command{Cmd: cmd}, out)
	if b, _ := os.ReadFile(dir + "/" + hosts[2].Target.ID + ".out"); string(b) != "same\nodd\n" {
		t.Errorf("outdir: %q", b)
	}
}

func TestLineWriterLongAndSplitLines(t *testing.T) {
	var buf bytes.Buffer
	out, _ := fanout.NewOutput(fanout.Prefixed, &buf, io.Discard, "")
	w, _, _ := out.Open(sshx.Host{Label: "h"})
	for _, s := range []string{"ab", "c\nd", "e\n\nf"} {
		w.Write([]byte(s))
	}
	w.Close()
	if buf.String() != "h: abc\nh: de\nh: \nh: f\n" {
		t.Fatalf("%q", buf.String())
	}
}

// TestSpoolFullDisk: with the temporary directory on a full 1 MiB tmpfs, the spool's readers
// end with a clear error instead of spinning, and every host's command fails with it and is
// ended rather than given a truncated input.
func TestSpoolFullDisk(t *testing.T) {
	f := sshtest.Start(t, 2)
	tmp := t.TempDir()
	if err := unix.Mount("tmpfs", tmp, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(tmp, unix.MNT_DETACH) })
	t.Setenv("TMPDIR", tmp)
	pr, pw := io.Pipe()
	go func() { // 8 MiB, then the input stays open: only the full disk can end the run
		chunk := make([]byte, 1<<20)
		for range 8 {
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
	}()
	defer pw.Close()
	spool, err := fanout.NewSpool(pr)
	if err != nil {
		t.Fatal(err)
	}
	defer spool.Close()
	var stdout, stderr syncBuffer
	out, _ := fanout.NewOutput(fanout.Prefixed, &stdout, &stderr, "")
	p := &fanout.Pool{Config: f.Config()}
	done := make(chan []fanout.Result)
	go func() {
		done <- fanout.RunCommand(context.Background(), p, hostsOf(f), fanout.Command{Cmd: "cat >/dev/null; sleep 987654", Stdin: spool}, out)
	}()
	var res []fanout.Result
	select {
	case res = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("a full spool disk did not end the run")
	}
	var se *fanout.SpoolError
	if !errors.As(spool.Err(), &se) || !errors.Is(se, syscall.ENOSPC) {
		t.Fatalf("spool error %v, want ENOSPC", spool.Err())
	}
	for _, r := range res {
		if r.Status != fanout.Failed || !errors.As(r.Err, &se) {
			t.Errorf("%s: %v %v, want the spool's failure", r.Host.Label, r.Status, r.Err)
		}
	}
	waitGone(t, "987654", 5*time.Second)
}

// TestGroupedOutputWaitsOnDisk: --group and --coalesce hold what hosts print in files, not
// in memory, until it is shown; the files are gone at the end.
func TestGroupedOutputWaitsOnDisk(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	const hosts, size = 4, 32 << 20
	chunk := bytes.Repeat([]byte("0123456789abcde\n"), 1<<16) // 1 MiB of lines
	for _, mode := range []fanout.Mode{fanout.Grouped, fanout.Coalesced} {
		stdout := sha256.New()
		out, _ := fanout.NewOutput(mode, stdout, io.Discard, "")
		var hs []sshx.Host
		var ws []io.WriteCloser
		for i := range hosts {
			h := sshx.Host{Label: fmt.Sprintf("h%d", i), Target: sshx.Target{ID: fmt.Sprintf("i-%d", i)}}
			w, e, err := out.Open(h)
			if err != nil {
				t.Fatal(err)
			}
			e.Close()
			hs, ws = append(hs, h), append(ws, w)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i, w := range ws {
			for range size / len(chunk) {
				if _, err := w.Write(chunk); err != nil {
					t.Fatal(err)
				}
			}
			if i == hosts-1 {
				w.Write([]byte("odd one out")) // no newline: the block adds one
			}
			w.Close()
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if grew := int64(after.HeapInuse) - int64(before.HeapInuse); grew > 8<<20 {
			t.Errorf("mode %d: %d MiB of output held %d MiB of memory", mode, hosts*size>>20, grew>>20)
		}
		for _, h := range hs {
			out.Done(fanout.Result{Host: h})
		}
		out.Close()
		want := sha256.New()
		blocks := []string{"h0", "h1", "h2", "h3"}
		if mode == fanout.Coalesced {
			blocks = []string{"h0,h1,h2 (3)", "h3"}
		}
		for _, head := range blocks {
			io.WriteString(want, "----------------\n"+head+"\n----------------\n")
			for range size / len(chunk) {
				want.Write(chunk)
			}
			if head == "h3" {
				io.WriteString(want, "odd one out\n")
			}
		}
		if !bytes.Equal(stdout.Sum(nil), want.Sum(nil)) {
			t.Errorf("mode %d: output differs", mode)
		}
		if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
			t.Errorf("mode %d: %d spool entries left behind", mode, len(ents))
		}
	}
}

// TestRebootIsNormal: a command that reboots its host loses its connection to the host's
// shutdown, which counts as its success; any other command losing it is unreachable.
func TestRebootIsNormal(t *testing.T) {
	f := sshtest.Start(t, 2)
	cfg := f.Config()
	p := &fanout.Pool{Config: cfg}
	out, _ := fanout.NewOutput(fanout.Prefixed, io.Discard, io.Discard, "")
	hs := hostsOf(f)
	time.AfterFunc(time.Second, f.Hosts[0].Stop) // the host goes down as a reboot takes it
	// Only host 0 takes long to reboot; the function stands in for the real command.
	cmd := `reboot() { case $SSH_CONNECTION in *" ` + f.Hosts[0].Target.Addr + ` 22") sleep 30;; esac; }; sudo() { "$@"; }; sudo reboot`
	start := time.Now()
	res := fanout.RunCommand(context.Background(), p, hs, fanout.Command{Cmd: cmd}, out)
	if time.Since(start) > 10*time.Second || fanout.ExitCode(res) != 0 {
		fanout.Summary(os.Stderr, res)
		t.Fatalf("a reboot: exit %d after %v", fanout.ExitCode(res), time.Since(start))
	}
	time.AfterFunc(time.Second, f.Hosts[1].Stop)
	out, _ = fanout.NewOutput(fanout.Prefixed, io.Discard, io.Discard, "")
	res = fanout.RunCommand(context.Background(), p, hs[1:], fanout.Command{Cmd: "sleep 30"}, out)
	// The host's end may kill the command before it drops the connection (exit 137): either
	// way it is no success.
	if res[0].Status == fanout.OK {
		t.Fatalf("a host lost under another command counted as a success: %v", res[0].Err)
	}
}
