package transfer_test

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"ec2kit/internal/cli"
	"ec2kit/internal/fanout"
	"ec2kit/internal/sshx"
	"ec2kit/internal/sshx/sshtest"
	"ec2kit/internal/transfer"
)

func TestMain(m *testing.M) { sshtest.Main(m) }

// makeTree writes files small files in nested directories, one big file, a symlink and an
// executable, and returns the tree's root.
func makeTree(t *testing.T, files int, big int64) string {
	root := filepath.Join(t.TempDir(), "tree")
	r := rand.New(rand.NewPCG(1, 2))
	for i := range files {
		p := filepath.Join(root, fmt.Sprintf("d%02d/sub%d/f%04d.txt", i%17, i%3, i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		b := make([]byte, r.IntN(4096))
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		if err := os.WriteFile(p, b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Create(filepath.Join(root, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for off := int64(0); off < big; off += int64(len(chunk)) {
		for j := 0; j < len(chunk); j += 4096 {
			chunk[j] = byte(off>>20) ^ byte(j>>12) // varied but cheap to make
		}
		f.Write(chunk[:min(int64(len(chunk)), big-off)])
	}
	f.Close()
	os.WriteFile(filepath.Join(root, "run.sh"), []byte("#!/bin/sh\n"), 0o751)
	os.Symlink("run.sh", filepath.Join(root, "link"))
	return root
}

// digest summarises a tree: every path with its mode and content hash.
func digest(t *testing.T, root string) string {
	var sb strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, _ := os.Lstat(p)
		fmt.Fprintf(&sb, "%s %v", rel, fi.Mode())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			sb.WriteString(" -> " + l)
		case fi.Mode().IsRegular():
			f, _ := os.Open(p)
			h := sha256.New()
			io.Copy(h, f)
			f.Close()
			fmt.Fprintf(&sb, " %x", h.Sum(nil))
		}
		sb.WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sb.String()
}

func TestRoundTrip(t *testing.T) {
	hosts, big := 10, int64(500<<20)
	if os.Getenv("EC2KIT_BIG") == "" {
		big = 64 << 20 // EC2KIT_BIG=1 runs the full 500 MB
	}
	if testing.Short() {
		hosts, big = 2, 8<<20
	}
	f := sshtest.Start(t, hosts)
	src := makeTree(t, 1000, big)
	want := digest(t, src)
	var hs []sshx.Host
	for _, tg := range f.Targets() {
		hs = append(hs, sshx.Host{Target: tg, Label: tg.ID})
	}
	p := &fanout.Pool{Config: f.Config()}
	// The hosts share this machine's disk: each gets its own remote directory.
	remote := t.TempDir()
	res := p.Each(context.Background(), hs, func(ctx context.Context, h sshx.Host, c *sshx.Conn) error {
		return transfer.Push(ctx, c.Client, src, filepath.Join(remote, h.Target.ID)+"/")
	}, nil)
	if fanout.ExitCode(res) != 0 {
		fanout.Summary(os.Stderr, res)
		t.Fatal("push failed")
	}
	back := t.TempDir()
	res = p.Each(context.Background(), hs, func(ctx context.Context, h sshx.Host, c *sshx.Conn) error {
		return transfer.Pull(ctx, c.Client, filepath.Join(remote, h.Target.ID, "tree"), filepath.Join(back, h.Target.ID))
	}, nil)
	if fanout.ExitCode(res) != 0 {
		fanout.Summary(os.Stderr, res)
		t.Fatal("pull failed")
	}
	for _, h := range hs {
		if got := digest(t, filepath.Join(back, h.Target.ID, "tree")); got != want {
			t.Fatalf("%s: tree differs after the round trip", h.Target.ID)
		}
	}
}

func TestPushSemantics(t *testing.T) {
	f := sshtest.Start(t, 1)
	c, err := sshx.Dial(context.Background(), f.Hosts[0].Target, f.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := t.TempDir()
	os.WriteFile(local+"/a.txt", []byte("A"), 0o600)
	os.Mkdir(local+"/dir", 0o755)
	os.WriteFile(local+"/dir/b", []byte("B"), 0o755)
	remote := t.TempDir()
	ctx := context.Background()
	check := func(p, want string) {
		t.Helper()
		if b, err := os.ReadFile(p); err != nil || string(b) != want {
			t.Fatalf("%s: %q %v", p, b, err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(transfer.Push(ctx, c, local+"/a.txt", remote)) // into a directory
	check(remote+"/a.txt", "A")
	must(transfer.Push(ctx, c, local+"/a.txt", remote+"/renamed")) // as a new name
	check(remote+"/renamed", "A")
	must(transfer.Push(ctx, c, local+"/dir", remote+"/new/")) // trailing slash: a directory
	check(remote+"/new/dir/b", "B")
	must(transfer.Push(ctx, c, local+"/dir/", remote+"/contents")) // contents
	check(remote+"/contents/b", "B")
	if fi, _ := os.Stat(remote + "/contents/b"); fi.Mode().Perm() != 0o755 {
		t.Fatalf("mode %v", fi.Mode())
	}
	err = transfer.Push(ctx, c, local+"/a.txt", remote+"/missing/parent/x")
	if err == nil || !strings.Contains(err.Error(), "exit") {
		t.Fatalf("want a remote failure, got %v", err)
	}
	err = transfer.Pull(ctx, c, remote+"/nothing-here", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "nothing-here") {
		t.Fatalf("want tar's complaint, got %v", err)
	}
}

func TestParse(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/f"
	os.WriteFile(file, nil, 0o600)
	for _, tc := range []struct {
		src, dst string
		code     int
	}{
		{file, ":/mnt", 0},
		{":/mnt/results/", dir + "/out", 0},
		{":a", ":b", cli.ExitUsage},
		{"a", "b", cli.ExitUsage},
		{dir + "/missing", ":/mnt", cli.ExitUsage},
		{":/mnt/x", file, cli.ExitUsage}, // a pull into a file
	} {
		if _, err := transfer.Parse(tc.src, tc.dst); cli.CodeOf(err) != tc.code {
			t.Errorf("Parse(%q, %q) = %v, want code %d", tc.src, tc.dst, err, tc.code)
		}
	}
}

// fakeTar makes every `tar` the hosts run this script instead (bind mounts in the tests'
// own mount namespace, undone when the test ends): a node that does what it likes.
func fakeTar(t *testing.T, script string) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tar")
	if err := os.WriteFile(file, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, d := range []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		real, err := filepath.EvalSymlinks(filepath.Join(d, "tar"))
		if err != nil || seen[real] {
			continue
		}
		seen[real] = true
		if err := unix.Mount(file, real, "", unix.MS_BIND, ""); err != nil {
			t.Fatalf("bind %s: %v", real, err)
		}
		t.Cleanup(func() { unix.Unmount(real, unix.MNT_DETACH) })
	}
	if len(seen) == 0 {
		t.Skip("no tar on the hosts' PATH")
	}
}

// tarOf builds a tar stream of directories (name ending in /), symlinks (link set) and files.
func tarOf(t *testing.T, entries ...[3]string) []byte {
	var b strings.Builder
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		name, link, body := e[0], e[1], e[2]
		h := &tar.Header{Name: name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(body))}
		switch {
		case strings.HasSuffix(name, "/"):
			h = &tar.Header{Name: name, Mode: 0o755, Typeflag: tar.TypeDir}
		case link != "":
			h = &tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: link}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, body)
	}
	tw.Close()
	return []byte(b.String())
}

// TestPullFromHostileNode pulls, over real SSH, from a node whose tar sends a symlink and
// then a file through it: the pull fails naming the entry and nothing outside its
// directory changes. merge pulls through transfer.Pull too, so this covers it as well.
func TestPullFromHostileNode(t *testing.T) {
	f := sshtest.Start(t, 1)
	c, err := sshx.Dial(context.Background(), f.Hosts[0].Target, f.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	outside := t.TempDir()
	archive := filepath.Join(t.TempDir(), "archive.tar")
	os.WriteFile(archive, tarOf(t, [3]string{"results/", "", ""}, [3]string{"results/x", outside, ""}, [3]string{"results/x/evil", "", "pwned"}), 0o644)
	fakeTar(t, "exec cat "+sshx.Quote(archive))
	pull := filepath.Join(t.TempDir(), "pull", f.Hosts[0].Target.ID)
	err = transfer.Pull(context.Background(), c, "/mnt/results", pull)
	var ee *transfer.EntryError
	if !errors.As(err, &ee) || ee.Name != "results/x/evil" || !errors.Is(err, transfer.ErrUnsafe) {
		t.Fatalf("got %v, want a refusal of results/x/evil", err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("the pull wrote %d entries outside its directory", len(ents))
	}
}

// TestTwoPullsThroughASymlink: a first pull brings link -> elsewhere, the node then makes
// link a directory with a file in it; the second pull must replace the local link, not
// write through it.
func TestTwoPullsThroughASymlink(t *testing.T) {
	f := sshtest.Start(t, 1)
	c, err := sshx.Dial(context.Background(), f.Hosts[0].Target, f.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	outside, remote := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(remote, "link")); err != nil {
		t.Fatal(err)
	}
	pull := filepath.Join(t.TempDir(), f.Hosts[0].Target.ID)
	if err := transfer.Pull(context.Background(), c, remote+"/", pull); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(remote, "link"))
	os.Mkdir(filepath.Join(remote, "link"), 0o755)
	os.WriteFile(filepath.Join(remote, "link", "file"), []byte("mine"), 0o644)
	if err := transfer.Pull(context.Background(), c, remote+"/", pull); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("the second pull wrote %d entries outside its directory", len(ents))
	}
	if b, err := os.ReadFile(filepath.Join(pull, "link", "file")); err != nil || string(b) != "mine" {
		t.Fatalf("link/file: %q %v", b, err)
	}
}

// TestPullInterrupted: a pull from a node whose tar never answers returns soon after its
// context ends, and leaves nothing running on the node, though the connection stays open.
func TestPullInterrupted(t *testing.T) {
	f := sshtest.Start(t, 1)
	c, err := sshx.Dial(context.Background(), f.Hosts[0].Target, f.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fakeTar(t, "exec sleep 987656")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(time.Second, cancel)
	start := time.Now()
	if err := transfer.Pull(ctx, c, "/mnt/results", t.TempDir()); err == nil {
		t.Fatal("an interrupted pull succeeded")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the pull took %v to end after Ctrl-C at 1s", took)
	}
	for deadline := time.Now().Add(3 * time.Second); len(sshtest.Running("sleep 987656")) > 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the node's tar is still running")
		}
	}
}
