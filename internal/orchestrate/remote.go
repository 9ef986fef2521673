package orchestrate

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"ec2kit/internal/cli"
	"ec2kit/internal/nodejob"
	"ec2kit/internal/sshx"
)

// run runs a shell command on c with stdin, returning its stdout; a failure carries the
// command's stderr.
func run(c *sshx.Conn, cmd string, stdin io.Reader) ([]byte, error) {
	s, err := c.NewSession()
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var out, errb bytes.Buffer
	s.Stdin, s.Stdout, s.Stderr = stdin, &out, &errb
	if err := s.Run(cmd); err != nil {
		return out.Bytes(), fmt.Errorf("%s: %w: %s", firstWord(cmd), err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

func firstWord(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return s
	}
	return f[0]
}

// Binary is the countpass program to deploy: read once, named by its hash on the nodes so
// that a node keeps one copy per build and a re-run uploads nothing.
type Binary struct {
	Data       []byte
	RemotePath string // relative to the login user's home
}

// LocalCountpass finds the countpass binary beside this executable, else on PATH.
func LocalCountpass() (*Binary, error) {
	path := ""
	if exe, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(exe), "countpass"); fileExists(p) {
			path = p
		}
	}
	if path == "" {
		p, err := exec.LookPath("countpass")
		if err != nil {
			return nil, cli.WithHint(cli.Errorf(cli.ExitLocal, "countpass not found beside %s nor on PATH", os.Args[0]),
				"build it: go build -o bin/ ./cmd/... (scripts/setup does)")
		}
		path = p
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, cli.Errorf(cli.ExitLocal, "reading countpass: %v", err)
	}
	sum := sha256.Sum256(b)
	return &Binary{Data: b, RemotePath: ".ec2kit/bin/countpass-" + hex.EncodeToString(sum[:6])}, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// unameArch maps Go's architecture names to `uname -m`'s.
var unameArch = map[string]string{"amd64": "x86_64", "arm64": "aarch64"}

// prepare makes the job roots exist and be writable by the login user (sudo when /mnt
// belongs to root, as on a fresh instance), and reports the node's cores and whether the
// binary is already there.
func prepare(c *sshx.Conn, bin *Binary) (cores int, err error) {
	var sb strings.Builder
	sb.WriteString("set -e\n")
	for _, d := range []string{nodejob.ResultsRoot, nodejob.DataRoot, nodejob.WorkRoot} {
		q := sshx.Quote(d)
		fmt.Fprintf(&sb, "if ! { mkdir -p %s && test -w %s; } 2>/dev/null; then sudo -n mkdir -p %s && sudo -n chown \"$(id -u):$(id -g)\" %s; fi\n", q, q, q, q)
	}
	fmt.Fprintf(&sb, "uname -m; nproc; if test -x %s; then echo have; else echo need; fi\n", sshx.Quote(bin.RemotePath))
	out, err := run(c, sb.String(), nil)
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(out))
	if len(f) != 3 {
		return 0, fmt.Errorf("unexpected answer from the node: %q", out)
	}
	if want := unameArch[runtime.GOARCH]; want != "" && f[0] != want {
		return 0, cli.WithHint(cli.Errorf(cli.ExitLocal, "the node is %s but countpass is built for %s", f[0], runtime.GOARCH),
			"build countpass for the nodes: GOARCH=arm64 go build -o bin/ ./cmd/countpass")
	}
	cores, _ = strconv.Atoi(f[1])
	if f[2] == "need" {
		// Upload to a temporary name, then rename: a concurrent or interrupted upload never
		// leaves a truncated binary under the final name.
		p := sshx.Quote(bin.RemotePath)
		cmd := fmt.Sprintf("mkdir -p \"$(dirname %s)\" && cat > %s.$$ && chmod 755 %s.$$ && mv -f %s.$$ %s", p, p, p, p, p)
		if _, err := run(c, cmd, bytes.NewReader(bin.Data)); err != nil {
			return 0, fmt.Errorf("deploying countpass: %w", err)
		}
	}
	return max(cores, 1), nil
}

// putFile writes data to path on the node atomically.
func putFileAt(c *sshx.Conn, path string, data []byte) error {
	p := sshx.Quote(path)
	// A failed write (a full disk) leaves no temporary file behind.
	_, err := run(c, fmt.Sprintf("t=%s.tmp.$$; if cat > \"$t\" && mv -f \"$t\" %s; then :; else rm -f \"$t\"; exit 1; fi", p, p), bytes.NewReader(data))
	return err
}

// readFile returns the contents of path on the node, nil when it does not exist.
func readFile(c *sshx.Conn, path string) ([]byte, error) {
	return run(c, fmt.Sprintf("cat %s 2>/dev/null || true", sshx.Quote(path)), nil)
}

// listFiles returns the paths (relative to dir) of the regular files under dir, skipping
// dotfiles and dot-directories (manifests, temporary files of unfinished writes).
func listFiles(c *sshx.Conn, dir string) ([]string, error) {
	out, err := run(c, fmt.Sprintf("cd %s && find . -mindepth 1 -name '.*' -prune -o -type f -print0", sshx.Quote(dir)), nil)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, f := range strings.Split(string(out), "\x00") {
		if f != "" {
			files = append(files, strings.TrimPrefix(f, "./"))
		}
	}
	return files, nil
}

// readManifests returns the manifests of every job under root on the node.
func readManifests(c *sshx.Conn, root string) ([]*nodejob.Manifest, error) {
	out, err := run(c, nodejob.ManifestsCmd(root), nil)
	return nodejob.ParseManifests(out), err
}
