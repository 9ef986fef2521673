package merge

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"ec2kit/internal/fanout"
	"ec2kit/internal/sshx"
)

// pull copies a node's results directory into dir, streaming it as a tar over one SSH
// session (one round trip however many files; sftp would pay one per file).
func pull(ctx context.Context, c *sshx.Conn, remote, dir string) error {
	s, err := c.NewSession()
	if err != nil {
		return err
	}
	defer s.Close()
	out, err := s.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr strings.Builder
	s.Stderr = &stderr
	// A node that never ran a job has no results directory: that is an empty result set,
	// which the manifest check then judges.
	q := "'" + strings.ReplaceAll(remote, "'", `'\''`) + "'"
	if err := s.Start("if test -d " + q + "; then tar -C " + q + " -cf - .; fi"); err != nil {
		return err
	}
	untarErr := untar(out, dir)
	if untarErr != nil {
		s.Close()
	}
	if err := s.Wait(); err != nil {
		return fmt.Errorf("reading %s: %w: %s", remote, err, strings.TrimSpace(stderr.String()))
	}
	return untarErr
}

// untar extracts regular files and directories into dir, refusing any path that would
// escape it.
func untar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the results stream: %w", err)
		}
		name := filepath.Clean(h.Name)
		if name == "." {
			continue
		}
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("results stream holds an unsafe path %q", h.Name)
		}
		p := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			f, err := os.Create(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
	}
}

// hostDir is where one node's results go: one directory per node, so that nodes holding the
// same key never overwrite each other.
func hostDir(root string, h fanout.Host) string { return filepath.Join(root, h.Target.ID) }
