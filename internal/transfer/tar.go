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
// stops the remote command (sshx.StopOnDone); the error prefers the remote side's story.
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
	stop := sshx.StopOnDone(ctx, c, s)
	defer stop()
	lerr := work()
	return remoteErr(s.Wait(), lerr, &stderr)
}

// remoteErr prefers a refused or failed archive entry (the remote side then fails only
// because it was stopped), then the remote side's story (its stderr), then a local error.
func remoteErr(err, local error, stderr *bytes.Buffer) error {
	msg := strings.TrimSpace(stderr.String())
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i] // the first line says what went wrong; tar's last one only that it did
	}
	var ee *ssh.ExitError
	var entry *EntryError
	switch {
	case errors.As(local, &entry):
		return local
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

// ErrUnsafe marks an archive entry that would write outside the destination, or through
// a symbolic link (one from the archive or one already there).
var ErrUnsafe = errors.New("refusing to write outside the destination")

// EntryError is a failure to extract one archive entry (as opposed to a broken stream).
type EntryError struct {
	Name string // as the archive names it
	Err  error
}

func (e *EntryError) Error() string { return fmt.Sprintf("archive entry %q: %v", e.Name, e.Err) }
func (e *EntryError) Unwrap() error { return e.Err }

// extract unpacks a tar stream under dir. Every file operation goes through an os.Root, so
// nothing outside dir is touched, and no entry is written through a symbolic link: one
// that the archive made, or one left by an earlier pull (its target may have changed
// since). Directory modes are applied last, so read-only directories still receive their
// files.
func extract(r io.Reader, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	x := &extractor{root: root, dirs: map[string]bool{}}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if err := x.entry(h, tr); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return err // the stream broke, not this entry
			}
			return &EntryError{Name: h.Name, Err: err}
		}
	}
	x.finish()
	return nil
}

type extractor struct {
	root *os.Root
	dirs map[string]bool // real directories (no symlinks) this extraction made or checked
	made []dirMode       // directory entries, for their modes and times at the end
}

type dirMode struct {
	name  string
	mode  fs.FileMode
	mtime time.Time
}

func (x *extractor) entry(h *tar.Header, r io.Reader) error {
	name, err := localName(h.Name)
	if err != nil || name == "." {
		return err
	}
	if err := x.parents(name); err != nil {
		return err
	}
	mode := fs.FileMode(h.Mode).Perm() | fs.FileMode(h.Mode)&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)
	switch h.Typeflag {
	case tar.TypeDir:
		if err := x.dir(name); err != nil {
			return err
		}
		x.made = append(x.made, dirMode{name, mode, h.ModTime})
		return nil
	case tar.TypeReg:
		if err := x.replace(name); err != nil {
			return err
		}
		if err := x.file(name, r, mode); err != nil {
			return err
		}
		x.root.Chtimes(name, h.ModTime, h.ModTime)
		return nil
	case tar.TypeSymlink:
		if err := x.replace(name); err != nil {
			return err
		}
		return x.root.Symlink(h.Linkname, name)
	case tar.TypeLink:
		target, err := localName(h.Linkname)
		if err != nil {
			return err
		}
		if err := x.parents(target); err != nil {
			return err
		}
		if err := x.replace(name); err != nil {
			return err
		}
		return x.root.Link(target, name)
	}
	return nil // devices, fifos: not copied
}

// localName is an entry's name as a path inside the root, refusing absolute names and
// names that climb out of it.
func localName(name string) (string, error) {
	n := path.Clean(name)
	if path.IsAbs(n) || n == ".." || strings.HasPrefix(n, "../") {
		return "", ErrUnsafe
	}
	return filepath.FromSlash(n), nil
}

// parents makes sure every directory above name is a real directory, creating missing
// ones, and refuses a symbolic link among them.
func (x *extractor) parents(name string) error {
	parent := filepath.Dir(name)
	if parent == "." || x.dirs[parent] {
		return nil
	}
	if err := x.parents(parent); err != nil {
		return err
	}
	fi, err := x.root.Lstat(parent)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := x.root.Mkdir(parent, 0o755); err != nil {
			return err
		}
	case err != nil:
		return err
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%w: %s is a symbolic link", ErrUnsafe, filepath.ToSlash(parent))
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", filepath.ToSlash(parent))
	}
	x.dirs[parent] = true
	return nil
}

// dir makes name a real directory; a symbolic link or file there is replaced, as tar does.
func (x *extractor) dir(name string) error {
	if fi, err := x.root.Lstat(name); err == nil && fi.IsDir() {
		x.dirs[name] = true
		return nil
	}
	if err := x.replace(name); err != nil {
		return err
	}
	if err := x.root.Mkdir(name, 0o700); err != nil {
		return err
	}
	x.dirs[name] = true
	return nil
}

// replace removes what is at name (a file, a link, an empty directory), so that the entry
// is written anew rather than through it: a read-only or hard-linked file is replaced, not
// written through.
func (x *extractor) replace(name string) error {
	delete(x.dirs, name)
	if err := x.root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// file writes r to the new file name; O_EXCL never opens an existing file or link.
func (x *extractor) file(name string, r io.Reader, mode fs.FileMode) error {
	f, err := x.root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
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

// finish applies the directories' modes and times, deepest first, to those still
// directories (a later entry may have replaced one).
func (x *extractor) finish() {
	for i := len(x.made) - 1; i >= 0; i-- {
		d := x.made[i]
		if fi, err := x.root.Lstat(d.name); err != nil || !fi.IsDir() {
			continue
		}
		x.root.Chmod(d.name, d.mode)
		x.root.Chtimes(d.name, d.mtime, d.mtime)
	}
}
