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

// Opener streams bytes [start, end) of an object.
type Opener func(ctx context.Context, start, end int64) (io.ReadCloser, error)

// ErrShort reports a source that ended before the object's size.
var ErrShort = errors.New("split: source ended before the object's size")

// bufSize bounds what a piece holds of a line it skips or finishes: lines of any length stream.
const bufSize = 64 << 10

// Piece returns a reader of r's piece of an object of size bytes: with header, every piece but
// the first (Start > 0) is preceded by the object's first line. Each segment's source (the
// header's, the piece's) is opened on the first Read, all at once so that their first bytes
// arrive together (on S3 each open waits a first-byte latency), and asks for what the segment
// needs as far as is known: through End, and a window past it for the line that crosses End.
// A longer line is read with further opens. Errors from open arrive in Read; each source is
// closed as soon as its segment has ended, or by Close. r needs 0 <= Start <= End; an End past
// size means size.
func Piece(ctx context.Context, open Opener, size int64, r Range, header bool) io.ReadCloser {
	p := &piece{ctx: ctx, open: open, size: size}
	if header && r.Start > 0 {
		p.segs = append(p.segs, segment{start: 0, end: min(1, size)}) // the line that starts at byte 0
	}
	p.segs = append(p.segs, segment{start: r.Start, end: min(r.End, size)})
	return p
}

// segment is the lines that start in [start, end), and the source opened for them.
type segment struct {
	start, end int64
	src        io.ReadCloser
	window     int64 // bytes src was asked for
}

// Phases of reading one segment.
const (
	phaseSkip = iota // discarding up to the first line start at or after start
	phaseBulk        // copying bytes before end: no need to look for newlines
	phaseTail        // finishing the line that crosses end
)

type piece struct {
	ctx    context.Context
	open   Opener
	size   int64
	segs   []segment // still to read; segs[0] is the current one
	opened bool      // every segment's source has been opened
	br     *bufio.Reader
	phase  int
	pos    int64  // object offset of the next byte br returns
	tail   []byte // rest of a line chunk from br.ReadSlice, not yet returned
	err    error  // sticky: io.EOF once every segment is done
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
			p.closeSources() // already closed at io.EOF; a second error would hide the first
		}
		if n > 0 {
			return n, nil
		}
	}
	return 0, p.err
}

// openAll opens every segment's source: from one byte before its start, which tells whether
// start itself is a line start, through its end and a window past it.
func (p *piece) openAll() error {
	p.opened = true
	for i := range p.segs {
		s := &p.segs[i]
		if s.start >= s.end {
			continue
		}
		from := max(0, s.start-1)
		src, err := p.openRange(s, from, s.end+bufSize-from)
		if err != nil {
			return err
		}
		s.src = src
	}
	return nil
}

// openRange opens n bytes from off for segment s (fewer at the object's end), and remembers
// n as the window to double should the line go on past it.
func (p *piece) openRange(s *segment, off, n int64) (io.ReadCloser, error) {
	end := min(p.size, off+n)
	src, err := p.open(p.ctx, off, end)
	if err != nil {
		return nil, fmt.Errorf("split: open at byte %d: %w", off, err)
	}
	s.window = n
	return &exact{src: src, left: end - off, end: end, size: p.size}, nil
}

// step advances the current segment, returning bytes in b (or in p.tail); io.EOF means every
// segment is done.
func (p *piece) step(b []byte) (int, error) {
	if !p.opened {
		if err := p.openAll(); err != nil {
			return 0, err
		}
	}
	if p.br == nil {
		if len(p.segs) == 0 {
			return 0, io.EOF
		}
		s := p.segs[0]
		if s.start >= s.end {
			p.segs = p.segs[1:]
			return 0, nil
		}
		p.pos, p.phase = max(0, s.start-1), phaseSkip
		if s.start == 0 {
			p.phase = phaseBulk
		}
		p.br = bufio.NewReaderSize(s.src, bufSize)
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
		return n, p.more(err)
	default:
		chunk, err := p.br.ReadSlice('\n')
		p.pos += int64(len(chunk))
		lineEnded := err == nil
		if err == bufio.ErrBufferFull {
			err = nil
		}
		if err = p.more(err); err != nil {
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

// more handles the end of the current source: at the object's end the segment ends there;
// before it, a line goes on past the window asked for, and the source is opened again from
// where it stopped, asking for twice as much.
func (p *piece) more(err error) error {
	switch {
	case err != io.EOF:
		return err
	case p.pos >= p.size:
		return nil
	}
	s := &p.segs[0]
	s.src.Close()
	s.src = nil
	src, err := p.openRange(s, p.pos, 2*s.window)
	if err != nil {
		return err
	}
	s.src = src
	p.br.Reset(src)
	return nil
}

func (p *piece) nextSegment() error {
	err := p.segs[0].src.Close()
	p.segs, p.br = p.segs[1:], nil
	return err
}

// closeSources closes every source still open, returning the first error.
func (p *piece) closeSources() error {
	var first error
	for i := range p.segs {
		if s := &p.segs[i]; s.src != nil {
			if err := s.src.Close(); first == nil {
				first = err
			}
			s.src = nil
		}
	}
	p.segs, p.br = nil, nil
	return first
}

// Close closes the sources still open; later Reads fail with fs.ErrClosed.
func (p *piece) Close() error {
	if p.err == nil {
		p.err = fs.ErrClosed
	}
	return p.closeSources()
}

// exact holds a source to the bytes it was asked for: a source that ends early is ErrShort,
// never a piece that looks whole.
type exact struct {
	src       io.ReadCloser
	left      int64
	end, size int64
}

func (e *exact) Read(b []byte) (int, error) {
	if e.left == 0 {
		return 0, io.EOF
	}
	n, err := e.src.Read(b[:min(int64(len(b)), e.left)])
	e.left -= int64(n)
	switch {
	case e.left == 0:
		return n, nil
	case err == io.EOF:
		return n, fmt.Errorf("%w (at byte %d of %d)", ErrShort, e.end-e.left, e.size)
	}
	return n, err
}

func (e *exact) Close() error { return e.src.Close() }
