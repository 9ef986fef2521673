package orchestrate

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

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

// prepare makes the job roots exist and be writable by the login user (sudo when /mnt
// belongs to root, as on a fresh instance), deploys the countpass built for the node's
// architecture unless it is there already, and returns it with the node's cores.
func prepare(c *sshx.Conn, bins Binaries) (bin *Binary, cores int, err error) {
	var sb strings.Builder
	sb.WriteString("set -e\n")
	for _, d := range []string{nodejob.ResultsRoot, nodejob.DataRoot, nodejob.WorkRoot} {
		q := sshx.Quote(d)
		fmt.Fprintf(&sb, "if ! { mkdir -p %s && test -w %s; } 2>/dev/null; then sudo -n mkdir -p %s && sudo -n chown \"$(id -u):$(id -g)\" %s; fi\n", q, q, q, q)
	}
	sb.WriteString("uname -m; nproc\n")
	for _, b := range bins {
		fmt.Fprintf(&sb, "if test -x %s; then echo %s; fi\n", sshx.Quote(b.RemotePath), sshx.Quote(b.RemotePath))
	}
	out, err := run(c, sb.String(), nil)
	if err != nil {
		return nil, 0, err
	}
	f := strings.Fields(string(out))
	if len(f) < 2 {
		return nil, 0, fmt.Errorf("unexpected answer from the node: %q", out)
	}
	if bin, err = bins.For(f[0]); err != nil {
		return nil, 0, err
	}
	cores, _ = strconv.Atoi(f[1])
	if !slices.Contains(f[2:], bin.RemotePath) {
		// Upload to a temporary name, then rename: a concurrent or interrupted upload never
		// leaves a truncated binary under the final name.
		p := sshx.Quote(bin.RemotePath)
		cmd := fmt.Sprintf("mkdir -p \"$(dirname %s)\" && t=%s.$$ && if gzip -dc > \"$t\" && chmod 755 \"$t\" && mv -f \"$t\" %s; then :; else rm -f \"$t\"; exit 1; fi", p, p, p)
		if _, err := run(c, cmd, bytes.NewReader(bin.Gzipped())); err != nil {
			return nil, 0, fmt.Errorf("deploying countpass: %w", err)
		}
	}
	return bin, max(cores, 1), nil
}

// putFile writes data to path on the node atomically.
func putFileAt(c *sshx.Conn, path string, data []byte) error {
	p := sshx.Quote(path)
	// A failed write (a full disk) leaves no temporary file behind.
	_, err := run(c, fmt.Sprintf("t=%s.tmp.$$; if cat > \"$t\" && mv -f \"$t\" %s; then :; else rm -f \"$t\"; exit 1; fi", p, p), bytes.NewReader(data))
	return err
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
