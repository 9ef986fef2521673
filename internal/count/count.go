// Package count is the counting kernel of countpass: it counts the rows of a CSV stream by
// the raw bytes of their 4th comma-separated field, exactly like `cut -d, -f4 | sort | uniq -c`
// minus the header line.
//
// Rules: the first line is a header and is not counted; a trailing "\r" is not part of a line;
// a line with fewer than 4 fields (a blank line included) is skipped and counted in Skipped;
// a last line without a newline is counted; there is no quote handling.
//
// The kernel is built for ~150-byte taxi rows where the key is almost always one byte; see
// the comments on lines and thirdComma for the tricks and why they pay.
package count

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"sort"
	"strconv"
)

// MaxLine bounds the memory a line may take: a line longer than this is an error (one up to
// a block longer may pass). Taxi rows are ~200 bytes; a megabyte
// "line" means the input is not the CSV we count (binary data with no newlines).
const MaxLine = 1 << 20

// ErrLongLine reports a line longer than MaxLine.
var ErrLongLine = fmt.Errorf("a line is longer than %d bytes: not a CSV file", MaxLine)

// Counts holds counts per key. Single-byte keys, which are nearly all keys in the taxi data,
// go to an array indexed by the byte: no hashing, no map, no allocation.
type Counts struct {
	byByte  [256]uint64
	empty   uint64
	other   map[string]*uint64 // pointer values: an existing key is bumped without re-hashing on store
	Rows    uint64             // rows counted (header and skipped rows excluded)
	Skipped uint64             // rows with fewer than 4 fields, blank lines included
}

// Add counts n rows of key (used by sources that are not CSV text, such as Parquet).
func (c *Counts) Add(key []byte, n uint64) {
	c.bump(key, n)
	c.Rows += n
}

func (c *Counts) bump(key []byte, n uint64) {
	switch len(key) {
	case 0:
		c.empty += n
	case 1:
		c.byByte[key[0]] += n
	default:
		p := c.other[string(key)] // the compiler does not allocate for this lookup
		if p == nil {
			if c.other == nil {
				c.other = map[string]*uint64{}
			}
			p = new(uint64)
			c.other[string(key)] = p
		}
		*p += n
	}
}

// Merge adds o's counts to c.
func (c *Counts) Merge(o *Counts) {
	for i, n := range o.byByte {
		c.byByte[i] += n
	}
	c.empty += o.empty
	for k, p := range o.other {
		c.bump([]byte(k), *p)
	}
	c.Rows += o.Rows
	c.Skipped += o.Skipped
}

// Map returns the counts as a map from key to count (keys with a zero count are absent).
func (c *Counts) Map() map[string]uint64 {
	m := map[string]uint64{}
	for i, n := range c.byByte {
		if n > 0 {
			m[string([]byte{byte(i)})] = n
		}
	}
	if c.empty > 0 {
		m[""] = c.empty
	}
	for k, p := range c.other {
		m[k] = *p
	}
	return m
}

// WriteTo writes one "key,count" line per key, sorted by key, so equal inputs give equal
// bytes (results are compared across nodes).
func (c *Counts) WriteTo(w io.Writer) (int64, error) {
	m := c.Map()
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b []byte
	for _, k := range keys {
		b = append(b, k...)
		b = append(b, ',')
		b = strconv.AppendUint(b, m[k], 10)
		b = append(b, '\n')
	}
	n, err := w.Write(b)
	return int64(n), err
}

// line counts one line (without its "\n").
func (c *Counts) line(l []byte) {
	if len(l) > 0 && l[len(l)-1] == '\r' {
		l = l[:len(l)-1]
	}
	k := thirdComma(l)
	if k < 0 {
		c.Skipped++
		return
	}
	key := l[k+1:]
	// Fast path: a one-byte key followed by the 5th field's comma is the common taxi row.
	if len(key) >= 2 && key[1] == ',' && key[0] != ',' {
		c.byByte[key[0]]++
		c.Rows++
		return
	}
	if j := bytes.IndexByte(key, ','); j >= 0 {
		key = key[:j]
	}
	c.Add(key, 1)
}

// lines counts every complete line of p and returns the unfinished tail.
//
// Each row is read once: a SWAR scan (below) walks from the line start to the 3rd comma,
// watching for a newline on the way (a short row), then bytes.IndexByte, which the runtime
// implements with SIMD (AVX2 / NEON), skips the ~100 bytes after the key to the line end at
// tens of bytes per cycle. Finding the line end first and then scanning for commas would
// read the first ~45 bytes twice and pay one more call per row.
func (c *Counts) lines(p []byte) []byte {
	start := 0
	for start < len(p) {
		k, end := thirdCommaOrEnd(p, start)
		if k < 0 { // the line ends before its 4th field
			if end == len(p) {
				return p[start:]
			}
			c.Skipped++
			start = end + 1
			continue
		}
		ks := k + 1
		// Fast path: a one-byte key followed by the 5th field's comma is the common taxi row.
		if ks+1 < len(p) && p[ks+1] == ',' && p[ks] != ',' && p[ks] != '\n' {
			nl := bytes.IndexByte(p[ks+2:], '\n')
			if nl < 0 {
				return p[start:]
			}
			c.byByte[p[ks]]++
			c.Rows++
			start = ks + 2 + nl + 1
			continue
		}
		e := ks
		for e < len(p) && p[e] != ',' && p[e] != '\n' {
			e++
		}
		nl := e
		if e < len(p) && p[e] == ',' {
			nl = bytes.IndexByte(p[e:], '\n')
			if nl < 0 {
				return p[start:]
			}
			nl += e
		}
		if nl == len(p) {
			return p[start:]
		}
		key := p[ks:e]
		if e == nl && len(key) > 0 && key[len(key)-1] == '\r' { // the line's trailing "\r"
			key = key[:len(key)-1]
		}
		c.Add(key, 1)
		start = nl + 1
	}
	return p[start:]
}

// thirdCommaOrEnd scans the line starting at p[i] for its 3rd comma. It returns the comma's
// index and the index of the first newline before it (or len(p) if p ends first), with k -1
// when the newline or the end of p comes first.
//
// It tests 8 bytes per step (SWAR): the taxi fields before the key are ~1+19+19 bytes, so a
// byte loop would take ~40 branchy steps per row, and bytes.IndexByte's call overhead
// dominates on such short spans. The steps look for commas only; whether a newline came
// first (a short row, rare) is checked once, with one SIMD IndexByte over the span. The
// fast scan gives up after headScan bytes, so short rows cannot make it run far ahead;
// thirdCommaExact then handles the row.
func thirdCommaOrEnd(p []byte, i int) (k, end int) {
	start, need := i, 3
	for lim := min(len(p), i+headScan); i+8 <= lim; i += 8 {
		cm := zeroBytes(binary.LittleEndian.Uint64(p[i:]) ^ commas)
		if n := bits.OnesCount64(cm); n < need {
			need -= n
			continue
		}
		for ; need > 1; need-- {
			cm &= cm - 1
		}
		k = i + bits.TrailingZeros64(cm)/8
		if nl := bytes.IndexByte(p[start:k], '\n'); nl >= 0 {
			return -1, start + nl
		}
		return k, len(p)
	}
	return thirdCommaExact(p, start)
}

// headScan is how far the fast scan looks for the 3rd comma: taxi rows have it at ~45.
const headScan = 128

// thirdCommaExact is thirdCommaOrEnd watching for newlines at every step.
func thirdCommaExact(p []byte, i int) (k, end int) {
	need := 3
	for ; i+8 <= len(p); i += 8 {
		w := binary.LittleEndian.Uint64(p[i:])
		cm := zeroBytes(w ^ commas)
		nm := zeroBytes(w ^ newlines)
		if nm != 0 {
			cm &= (nm & -nm) - 1 // only commas before the newline belong to this line
		}
		if n := bits.OnesCount64(cm); n >= need {
			for ; need > 1; need-- {
				cm &= cm - 1
			}
			return i + bits.TrailingZeros64(cm)/8, len(p)
		} else {
			need -= n
		}
		if nm != 0 {
			return -1, i + bits.TrailingZeros64(nm)/8
		}
	}
	for ; i < len(p); i++ {
		switch p[i] {
		case ',':
			if need--; need == 0 {
				return i, len(p)
			}
		case '\n':
			return -1, i
		}
	}
	return -1, len(p)
}

// zeroBytes returns a mask with the high bit set in exactly the zero bytes of v. This is the
// exact test (no carries between bytes), so a byte right after a match is never mistaken
// for one, as it can be with the shorter (v-0x01..)&^v&0x80.. trick.
func zeroBytes(v uint64) uint64 { return ^((v&lo7 + lo7) | v | lo7) }

const (
	lo7      = 0x7f7f7f7f7f7f7f7f
	commas   = 0x2c2c2c2c2c2c2c2c // ',' in every byte
	newlines = 0x0a0a0a0a0a0a0a0a // '\n' in every byte
)

// thirdComma returns the index of the third ',' in l, or -1.
func thirdComma(l []byte) int { return nthComma(l, 3) }

// nthComma returns the index of the n-th ',' in l, or -1 (the same SWAR scan as
// thirdCommaOrEnd, for a single line that has no newline).
func nthComma(l []byte, need int) int {
	i := 0
	for ; i+8 <= len(l); i += 8 {
		m := zeroBytes(binary.LittleEndian.Uint64(l[i:]) ^ commas)
		if n := bits.OnesCount64(m); n < need {
			need -= n
			continue
		}
		for ; need > 1; need-- {
			m &= m - 1
		}
		return i + bits.TrailingZeros64(m)/8
	}
	for ; i < len(l); i++ {
		if l[i] == ',' {
			if need--; need == 0 {
				return i
			}
		}
	}
	return -1
}

// AppendFields appends to dst the first n fields of every line of blk, each line ending in
// "\n" (a trailing "\r" dropped), like `cut -d, -f1-n`: a line with fewer fields is kept
// whole. A last line without a newline gets one.
func AppendFields(dst, blk []byte, n int) []byte {
	for len(blk) > 0 {
		i := bytes.IndexByte(blk, '\n')
		if i < 0 {
			i = len(blk)
		}
		l := blk[:i]
		blk = blk[min(i+1, len(blk)):]
		if len(l) > 0 && l[len(l)-1] == '\r' {
			l = l[:len(l)-1]
		}
		if k := nthComma(l, n); k >= 0 {
			l = l[:k]
		}
		dst = append(append(dst, l...), '\n')
	}
	return dst
}

// BlockSize is the default read size: large enough that the per-read cost (a syscall, a
// channel send) vanishes, small enough that a block is still in L2 when it is counted.
const BlockSize = 1 << 20

// Result is what counting a stream gives.
type Result struct {
	Counts
	Header []byte // the first line, without "\r\n"
	Bytes  int64  // bytes read
}

// Reader counts the CSV stream r. With workers > 1, blocks are counted on that many
// goroutines in parallel (order does not matter for counting), so one stream can use every
// core; with 1 everything happens on the calling goroutine. blockSize 0 means BlockSize.
func Reader(r io.Reader, workers, blockSize int) (*Result, error) {
	if blockSize <= 0 {
		blockSize = BlockSize
	}
	if workers < 1 {
		workers = 1
	}
	res := &Result{}
	s := &Splitter{r: r, size: blockSize}
	if workers == 1 {
		buf := make([]byte, blockSize+MaxLine)
		for {
			blk, final, err := s.Next(buf)
			if err != nil {
				return res, err
			}
			res.count(blk, final)
			if final {
				res.Bytes = s.n
				return res, nil
			}
		}
	}
	return res, res.parallel(s, workers, blockSize)
}

func (res *Result) parallel(s *Splitter, workers, blockSize int) error {
	free := make(chan []byte, 2*workers)
	for range cap(free) {
		free <- make([]byte, blockSize+MaxLine)
	}
	type job struct{ blk, buf []byte }
	work := make(chan job)
	done := make(chan *Counts)
	for range workers {
		go func() {
			c := &Counts{}
			for j := range work {
				c.lines(j.blk) // blocks end at a line end: no tail
				free <- j.buf
			}
			done <- c
		}()
	}
	var err error
	for {
		buf := <-free
		var blk []byte
		var final bool
		blk, final, err = s.Next(buf)
		if err != nil {
			break
		}
		if !res.takeHeader(&blk, final) {
			free <- buf
		} else if final {
			res.tail(blk)
			free <- buf
		} else {
			work <- job{blk, buf}
		}
		if final {
			break
		}
	}
	close(work)
	for range workers {
		res.Merge(<-done)
	}
	res.Bytes = s.n
	return err
}

// count counts one block from the Splitter.
func (res *Result) count(blk []byte, final bool) {
	if !res.takeHeader(&blk, final) {
		return
	}
	if final {
		res.tail(blk)
		return
	}
	res.lines(blk)
}

// tail counts the last block, whose last line may lack a newline.
func (res *Result) tail(blk []byte) {
	if rest := res.lines(blk); len(rest) > 0 {
		res.line(rest)
	}
}

// takeHeader removes the header from the first block; it reports whether anything is left.
func (res *Result) takeHeader(blk *[]byte, final bool) bool {
	if res.Header != nil {
		return len(*blk) > 0
	}
	b := *blk
	if len(b) == 0 {
		return false
	}
	i := bytes.IndexByte(b, '\n')
	if i < 0 { // only at the end of the stream: the header was its only line
		i = len(b)
	}
	res.Header = bytes.TrimSuffix(append([]byte{}, b[:i]...), []byte("\r"))
	*blk = b[min(i+1, len(b)):]
	return len(*blk) > 0
}

// Splitter reads a stream in blocks that end at a line end, so blocks can be processed
// independently. The unfinished tail of a read is copied to the front of the next block
// (at most one line: cheap).
type Splitter struct {
	r     io.Reader
	size  int
	carry []byte
	n     int64
	eof   bool
}

// NewSplitter returns a Splitter reading r in blocks of about size bytes.
func NewSplitter(r io.Reader, size int) *Splitter { return &Splitter{r: r, size: size} }

// Next fills buf (len(buf) ≥ size+MaxLine) and returns the complete lines read, ending with
// "\n". final is true at the end of the stream; the last block may then end without "\n".
// Each byte is read and searched once, however long the lines.
func (s *Splitter) Next(buf []byte) (blk []byte, final bool, err error) {
	n := copy(buf, s.carry)
	start, limit := n, n+s.size // new data goes to buf[start:limit]
	for {
		for n < limit && !s.eof {
			m, err := s.r.Read(buf[n:limit])
			n += m
			s.n += int64(m)
			if errors.Is(err, io.EOF) {
				s.eof = true
			} else if err != nil {
				return nil, false, err
			}
		}
		if s.eof {
			s.carry = s.carry[:0]
			return buf[:n], true, nil
		}
		if i := bytes.LastIndexByte(buf[start:n], '\n'); i >= 0 {
			end := start + i + 1
			s.carry = append(s.carry[:0], buf[end:n]...)
			return buf[:end], false, nil
		}
		if n > MaxLine { // no line end yet: keep reading, up to the bound
			return nil, false, ErrLongLine
		}
		start, limit = n, min(n+s.size, len(buf))
	}
}
