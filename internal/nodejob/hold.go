package nodejob

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// The lock holder (countpass --hold DIR) also reads what the job directory holds and
// prepares it for the run, over the one SSH session that holds the lock: a command per step
// would cost the job's start a round trip or more each, and a fleet's operator is one or
// more milliseconds from its nodes (tens under the local cloud's network model).
//
//	node:         locked\n                            (or busy\n, and the end)
//	node:         survey <m> <f>\n<manifest><files>   m bytes of the previous manifest (0: none),
//	                                                  f bytes of file names, each ended by NUL
//	orchestrator: write <s> <m>\n<stale><manifest>    s bytes of names to remove, each ended by
//	                                                  NUL, and the manifest to write
//	node:         written\n                           (or failed\t<why>\n)
//
// The end of the orchestrator's input (its connection's, however it ends) releases the lock.
const (
	HoldLocked  = "locked"
	HoldBusy    = "busy"
	HoldWritten = "written"
)

// maxHoldSection bounds a length the other side announces: a job's file names and manifest
// stay far below it.
const maxHoldSection = 1 << 30

// Survey is what a job directory holds before a run: its manifest (nil if none) and the
// paths, relative to it, of its regular files (results), dotfiles and dot-directories aside.
type Survey struct {
	Manifest []byte
	Files    []string
}

// SurveyDir reads the survey of job directory dir.
func SurveyDir(dir string) (Survey, error) {
	var s Survey
	m, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return s, err
	}
	s.Manifest = m
	err = fs.WalkDir(os.DirFS(dir), ".", func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case p == ".":
			return nil
		case strings.HasPrefix(d.Name(), "."):
			if d.IsDir() {
				return fs.SkipDir
			}
		case d.Type().IsRegular():
			s.Files = append(s.Files, p)
		}
		return nil
	})
	return s, err
}

// Encode is the survey as the node sends it.
func (s Survey) Encode() []byte {
	files := joinNUL(s.Files)
	b := fmt.Appendf(nil, "survey %d %d\n", len(s.Manifest), len(files))
	return append(append(b, s.Manifest...), files...)
}

// ReadSurvey reads a survey from the node.
func ReadSurvey(r *bufio.Reader) (Survey, error) {
	secs, err := readSections(r, "survey")
	if err != nil {
		return Survey{}, err
	}
	s := Survey{Files: splitNUL(secs[1])}
	if len(secs[0]) > 0 {
		s.Manifest = secs[0]
	}
	return s, nil
}

// Write is the orchestrator's request to prepare the job directory: remove the stale files
// (earlier results this run does not keep) and write the manifest.
type Write struct {
	Stale    []string
	Manifest []byte
}

// Encode is the request as the orchestrator sends it.
func (w Write) Encode() []byte {
	stale := joinNUL(w.Stale)
	b := fmt.Appendf(nil, "write %d %d\n", len(stale), len(w.Manifest))
	return append(append(b, stale...), w.Manifest...)
}

// ReadWrite reads a write request; io.EOF means the orchestrator is done.
func ReadWrite(r *bufio.Reader) (Write, error) {
	secs, err := readSections(r, "write")
	if err != nil {
		return Write{}, err
	}
	return Write{Stale: splitNUL(secs[0]), Manifest: secs[1]}, nil
}

// Apply carries out w in job directory dir. The names come over the wire, so they are
// resolved inside dir (os.Root): none reaches outside it, whatever it says. The manifest is
// written whole or not at all.
func (w Write) Apply(dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, f := range w.Stale {
		if err := root.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	tmp := ManifestName + ".tmp"
	f, err := root.Create(tmp)
	if err != nil {
		return err
	}
	_, err = f.Write(w.Manifest)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Rename(tmp, ManifestName)
	}
	if err != nil {
		_ = root.Remove(tmp) // a full disk leaves no partial file behind
	}
	return err
}

// EncodeWritten is the node's answer to a write: nil, or why it failed.
func EncodeWritten(err error) string {
	if err == nil {
		return HoldWritten + "\n"
	}
	return "failed\t" + strings.NewReplacer("\n", " ", "\t", " ").Replace(err.Error()) + "\n"
}

// ReadWritten reads the node's answer to a write.
func ReadWritten(r *bufio.Reader) error {
	line, err := r.ReadString('\n')
	if err != nil {
		return fmt.Errorf("no answer to the write: %w", err)
	}
	line = strings.TrimSuffix(line, "\n")
	if line == HoldWritten {
		return nil
	}
	if why, ok := strings.CutPrefix(line, "failed\t"); ok {
		return errors.New(why)
	}
	return fmt.Errorf("%w: %q", ErrLine, line)
}

// readSections reads "<word> <a> <b>\n" and then the a and b bytes it announces.
func readSections(r *bufio.Reader, word string) ([2][]byte, error) {
	var secs [2][]byte
	line, err := r.ReadString('\n')
	if err != nil {
		if errors.Is(err, io.EOF) && line == "" {
			return secs, io.EOF
		}
		return secs, fmt.Errorf("%w: %q: %v", ErrLine, line, err)
	}
	var a, b int
	if n, err := fmt.Sscanf(line, word+" %d %d\n", &a, &b); n != 2 || err != nil || a < 0 || b < 0 ||
		a > maxHoldSection || b > maxHoldSection {
		return secs, fmt.Errorf("%w: %q", ErrLine, strings.TrimSuffix(line, "\n"))
	}
	for i, n := range []int{a, b} {
		// Read as it comes rather than allocated up front: a garbled length costs nothing.
		if secs[i], err = io.ReadAll(io.LimitReader(r, int64(n))); err != nil || len(secs[i]) < n {
			return secs, fmt.Errorf("%w: %s cut short after %d of %d bytes", ErrLine, word, len(secs[i]), n)
		}
	}
	return secs, nil
}

func joinNUL(names []string) []byte {
	var b bytes.Buffer
	for _, n := range names {
		b.WriteString(n)
		b.WriteByte(0)
	}
	return b.Bytes()
}

func splitNUL(b []byte) []string {
	var out []string
	for len(b) > 0 {
		name, rest, _ := bytes.Cut(b, []byte{0}) // a last name without its NUL still counts
		out = append(out, string(name))
		b = rest
	}
	return out
}
