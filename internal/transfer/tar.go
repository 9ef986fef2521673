package transfer

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"ec2kit/internal/sshx"
)

// bufSize batches tar headers and file data into large channel writes.
const bufSize = 1 << 20

// pushScript unpacks the tar on stdin at $1. $2 is the top entry's name, empty when the
// archive holds a directory's contents (source given with a trailing slash). Like cp/scp:
// into $1 when it is a directory (or ends in /), else as $1 itself; $1's parent must exist.
const pushScript = `d=$1 n=$2
x() { tar -x -p --no-same-owner -f - -C "$1"; }
if [ -z "$n" ]; then mkdir -p -- "$d" && x "$d"; exit; fi
case $d in */) mkdir -p -- "$d";; esac
if [ -d "$d" ]; then x "$d"; exit; fi
t=$(mktemp -d "$(dirname -- "$d")/.ec2kit-XXXXXX") || exit 1
x "$t" && mv -f -- "$t/$n" "$d"; r=$?; rm -rf -- "$t"; exit $r`

// Push copies local (a file, or a directory tree; "dir/" copies its contents) to remote.
func Push(ctx context.Context, c *ssh.Client, local, remote string) error {
	name := filepath.Base(local)
	if strings.HasSuffix(local, "/") {
		name = ""
	}
	cmd := "sh -c " + sshx.Quote(pushScript) + " ec2kit " + shellPath(remote) + " " + sshx.Quote(name)
	return run(ctx, c, cmd, func(s *ssh.Session) (func() error, error) {
		in, err := s.StdinPipe()
		return func() error {
			defer in.Close()
			return writeTar(in, local, name)
		}, err
	})
}

// run runs cmd on c under the watchdog: setup wires the session's pipes and returns the
// local half of the transfer, which runs while the remote command does. The end of ctx
// closes the session; the error prefers the remote side's story.
func run(ctx context.Context, c *ssh.Client, cmd string, setup func(*ssh.Session) (func() error, error)) error {
	s, err := c.NewSession()
	if err != nil {
		return err
	}
	defer s.Close()
	var stderr bytes.Buffer
	s.Stderr = &stderr
	work, err := setup(s)
	if err != nil {
		return err
	}
	if err := s.Start(sshx.Wrap(cmd)); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	lerr := work()
	return remoteErr(s.Wait(), lerr, &stderr)
}

// remoteErr prefers the remote side's story (its stderr), then a local write error.
func remoteErr(err, local error, stderr *bytes.Buffer) error {
	msg := strings.TrimSpace(stderr.String())
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i] // the first line says what went wrong; tar's last one only that it did
	}
	var ee *ssh.ExitError
	switch {
	case err != nil && errors.As(err, &ee) && msg != "":
		return fmt.Errorf("%s: %w", msg, err)
	case err != nil:
		return err
	case local != nil:
		return local
	}
	return nil
}

// writeTar streams local as a tar archive whose entries start with name/ (or are the bare
// contents when name is empty).
func writeTar(w io.Writer, local, name string) error {
	bw := bufio.NewWriterSize(w, bufSize)
	tw := tar.NewWriter(bw)
	root := filepath.Clean(local)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		entry := path.Join(name, filepath.ToSlash(rel))
		if entry == "." || entry == "" {
			return nil // the contents' root is the destination itself
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return nil // sockets and the like are skipped, as tar does
		}
		h.Name, h.Uid, h.Gid, h.Uname, h.Gname = entry, 0, 0, "", ""
		if fi.IsDir() {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// Pull copies remote (a file or a tree; "dir/" means its contents) into the local
// directory dir, created if needed.
func Pull(ctx context.Context, c *ssh.Client, remote, dir string) error {
	var cmd string
	if strings.HasSuffix(remote, "/") {
		cmd = "tar -c -f - -C " + shellPath(remote) + " ."
	} else {
		p := path.Clean(remote)
		cmd = "tar -c -f - -C " + shellPath(path.Dir(p)) + " -- " + sshx.Quote(path.Base(p))
	}
	return run(ctx, c, cmd, func(s *ssh.Session) (func() error, error) {
		out, err := s.StdoutPipe()
		return func() error {
			err := extract(bufio.NewReaderSize(out, bufSize), dir)
			if err != nil {
				s.Close() // stop the remote tar: nothing reads its output any more
			}
			return err
		}, err
	})
}

// extract unpacks a tar stream under dir, refusing entries that would land outside it.
// Directory modes are applied last, so read-only directories still receive their files.
func extract(r io.Reader, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	type dirMode struct {
		path  string
		mode  fs.FileMode
		mtime time.Time
	}
	var dirs []dirMode
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		name := path.Clean(h.Name)
		if name == "." {
			continue
		}
		if path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("refusing archive entry %q outside the destination", h.Name)
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		mode := fs.FileMode(h.Mode).Perm() | fs.FileMode(h.Mode)&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o700); err != nil {
				return err
			}
			dirs = append(dirs, dirMode{p, mode, h.ModTime})
			continue
		case tar.TypeReg:
			if err := writeFile(p, tr, mode); err != nil {
				return err
			}
		case tar.TypeSymlink:
			os.Remove(p)
			if err := os.Symlink(h.Linkname, p); err != nil {
				return err
			}
			continue
		case tar.TypeLink:
			ln := path.Clean(h.Linkname)
			if path.IsAbs(ln) || strings.HasPrefix(ln, "../") {
				return fmt.Errorf("refusing hard link %q outside the destination", h.Linkname)
			}
			os.Remove(p)
			if err := os.Link(filepath.Join(dir, filepath.FromSlash(ln)), p); err != nil {
				return err
			}
			continue
		default:
			continue // devices, fifos: not copied
		}
		os.Chtimes(p, h.ModTime, h.ModTime)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		os.Chmod(dirs[i].path, dirs[i].mode)
		os.Chtimes(dirs[i].path, dirs[i].mtime, dirs[i].mtime)
	}
	return nil
}

func writeFile(p string, r io.Reader, mode fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	os.Remove(p) // a read-only or hard-linked file is replaced, not written through
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
