// Package lines turns byte streams into whole lines.
package lines

import (
	"bytes"
	"io"
)

// MaxLine bounds how much of a line without newline is held back: once that much has
// arrived it is passed on as a line of its own.
const MaxLine = 1 << 20

// Writer splits what is written to it into lines, formats each, and hands every batch of
// complete formatted lines to Dst in one Write, so that lines from writers sharing a Dst
// never mix and a shared lock behind Dst is taken once per write, not once per line.
type Writer struct {
	Dst     io.Writer
	Format  func(out, line []byte) []byte // appends line (without its newline) formatted, newline included
	partial []byte
	out     []byte
}

func (l *Writer) Write(p []byte) (int, error) {
	n := len(p)
	l.out = l.out[:0]
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			l.partial = append(l.partial, p...)
			if len(l.partial) >= MaxLine {
				l.out = l.Format(l.out, l.partial)
				l.partial = l.partial[:0]
			}
			break
		}
		if len(l.partial) > 0 {
			l.partial = append(l.partial, p[:i]...)
			l.out = l.Format(l.out, l.partial)
			l.partial = l.partial[:0]
		} else {
			l.out = l.Format(l.out, p[:i])
		}
		p = p[i+1:]
	}
	if len(l.out) > 0 {
		if _, err := l.Dst.Write(l.out); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// Close flushes a last line that had no newline.
func (l *Writer) Close() error {
	if len(l.partial) == 0 {
		return nil
	}
	_, err := l.Dst.Write(l.Format(nil, l.partial))
	l.partial = nil
	return err
}
