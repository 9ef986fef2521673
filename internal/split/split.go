// Package split cuts one text object into line-aligned pieces that can be processed apart.
//
// A piece covering bytes [Start, End) of an object owns exactly the lines whose first byte lies
// in that range: it skips to the first line start at or after Start and reads past End, without
// any limit, to the end of its last line. Every line of the object therefore belongs to exactly
// one piece, whatever the piece size (the input-split rule of Hadoop's LineRecordReader). Lines
// end with '\n'; a '\r' before it is ordinary line content, so CRLF text splits like LF text.
package split

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
)

// Range is one piece of an object: Part counts from 0 in offset order, and the piece owns the
// lines that start in [Start, End).
type Range struct {
	Part       int
	Start, End int64
}

// String formats r as "start-end", the form of EC2KIT_RANGE.
func (r Range) String() string { return fmt.Sprintf("%d-%d", r.Start, r.End) }

// Plan cuts an object of size bytes into contiguous ranges of at most pieceSize bytes, as equal
// as possible, so no piece is a sliver. An object of at most pieceSize bytes is one piece; an
// empty object is the single piece 0-0. pieceSize must be positive.
func Plan(size, pieceSize int64) []Range {
	if pieceSize < 1 || size < 0 {
		panic(fmt.Sprintf("split.Plan(%d, %d): size must be >= 0 and pieceSize >= 1", size, pieceSize))
	}
	n := max(1, size/pieceSize+min(1, size%pieceSize))
	// The first size%n pieces are one byte longer; computing offsets this way never overflows.
	q, rem := size/n, size%n
	ranges := make([]Range, n)
	var start int64
	for i := range ranges {
		end := start + q
		if int64(i) < rem {
			end++
		}
		ranges[i] = Range{Part: i, Start: start, End: end}
		start = end
	}
	return ranges
}

// Opener streams an object from byte off to its end.
type Opener func(ctx context.Context, off int64) (io.ReadCloser, error)

// ErrShort reports a source that ended before the object's size.
var ErrShort = errors.New("split: source ended before the object's size")

// bufSize bounds what a piece holds of a line it skips or finishes: lines of any length stream.
const bufSize = 64 << 10

// Piece returns a reader of r's piece of an object of size bytes: with header, every piece but
// the first (Start > 0) is preceded by the object's first line. The source is opened on the
// first Read (so errors from open arrive there), read no further than the piece needs, and
// closed as soon as the piece has ended, or by Close. r needs 0 <= Start <= End; an End past
// size means size.
func Piece(ctx context.Context, open Opener, size int64, r Range, header bool) io.ReadCloser {
	p := &piece{ctx: ctx, open: open, size: size}
	if header && r.Start > 0 {
		p.segs = append(p.segs, segment{0, min(1, size)}) // the line that starts at byte 0
	}
	p.segs = append(p.segs, segment{r.Start, min(r.End, size)})
	return p
}

// segment is the lines that start in [start, end).
type segment struct{ start, end int64 }

// Phases of reading one segment.
const (
	phaseSkip = iota // discarding up to the first line start at or after start
	phaseBulk        // copying bytes before end: no need to look for newlines
	phaseTail        // finishing the line that crosses end
)

type piece struct {
	ctx   context.Context
	open  Opener
	size  int64
	segs  []segment // still to read; segs[0] is the current one
	src   io.ReadCloser
	br    *bufio.Reader
	phase int
	pos   int64  // object offset of the next byte br returns
	tail  []byte // rest of a line chunk from br.ReadSlice, not yet returned
	err   error  // sticky: io.EOF once every segment is done
}

func (p *piece) Read(b []byte) (int, error) {
	for p.err == nil {
		if len(p.tail) > 0 {
			n := copy(b, p.tail)
			p.tail = p.tail[n:]
			return n, nil
		}
		if len(b) == 0 {
			return 0, nil
		}
		n, err := p.step(b)
		if err != nil {
			p.err = err
			p.closeSource() // already closed at io.EOF; a second error would hide the first
		}
		if n > 0 {
			return n, nil
		}
	}
	return 0, p.err
}

// step advances the current segment, returning bytes in b (or in p.tail); io.EOF means every
// segment is done.
func (p *piece) step(b []byte) (int, error) {
	if p.src == nil {
		if len(p.segs) == 0 {
			return 0, io.EOF
		}
		s := p.segs[0]
		if s.start >= s.end {
			p.segs = p.segs[1:]
			return 0, nil
		}
		// Opening one byte early tells whether start itself is a line start.
		p.pos, p.phase = max(0, s.start-1), phaseSkip
		if s.start == 0 {
			p.phase = phaseBulk
		}
		src, err := p.open(p.ctx, p.pos)
		if err != nil {
			return 0, fmt.Errorf("split: open at byte %d: %w", p.pos, err)
		}
		p.src = src
		p.br = bufio.NewReaderSize(io.LimitReader(src, p.size-p.pos), bufSize)
	}
	s := p.segs[0]
	if p.pos >= s.end && p.phase != phaseTail || p.pos >= p.size {
		return 0, p.nextSegment()
	}
	switch p.phase {
	case phaseBulk:
		n, err := p.br.Read(b[:min(int64(len(b)), s.end-p.pos)])
		p.pos += int64(n)
		if n > 0 && p.pos == s.end && b[n-1] != '\n' {
			p.phase = phaseTail
		}
		return n, p.eof(err)
	default:
		chunk, err := p.br.ReadSlice('\n')
		p.pos += int64(len(chunk))
		lineEnded := err == nil
		if err == bufio.ErrBufferFull {
			err = nil
		}
		if err = p.eof(err); err != nil {
			return 0, err
		}
		if p.phase == phaseSkip {
			if lineEnded {
				p.phase = phaseBulk
			}
			return 0, nil
		}
		if lineEnded {
			p.phase = phaseBulk // at end: the segment is done
		}
		n := copy(b, chunk)
		p.tail = chunk[n:]
		return n, nil
	}
}

// eof turns the end of the source into the end of the segment, or into ErrShort when the
// object's size has not been reached.
func (p *piece) eof(err error) error {
	if err != io.EOF {
		return err
	}
	if p.pos < p.size {
		return fmt.Errorf("%w (at byte %d of %d)", ErrShort, p.pos, p.size)
	}
	return nil
}

func (p *piece) nextSegment() error {
	p.segs = p.segs[1:]
	return p.closeSource()
}

func (p *piece) closeSource() error {
	if p.src == nil {
		return nil
	}
	err := p.src.Close()
	p.src, p.br = nil, nil
	return err
}

// Close closes the source if it is still open; later Reads fail with fs.ErrClosed.
func (p *piece) Close() error {
	if p.err == nil {
		p.err = fs.ErrClosed
	}
	return p.closeSource()
}
