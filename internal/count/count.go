// Package count is the counting kernel of countpass: it counts the rows of a CSV stream by
// the raw bytes of one comma-separated field (the 4th, passenger_count, by default), exactly
// like `cut -d, -f4 | sort | uniq -c` minus the header line.
//
// Rules: the first line is a header and is not counted; a trailing "\r" is not part of a line;
// a line with fewer fields than the counted one's position, and a blank line, is skipped and
// counted in Skipped; a last line without a newline is counted; there is no quote handling.
//
// The kernel is built for ~150-byte taxi rows where the key is almost always one byte. It
// comes in two forms, both fuzzed against a plain reference (split every line on commas):
//
//   - linesIndexed (amd64 with AVX2) first classifies the bytes 64 at a time into a bitmap of
//     commas and one of newlines, in assembly, then walks the lines on the bitmaps: the key
//     and the line end fall out of a few trailing-zero counts and cleared low bits, with no
//     per-byte loop and almost no unpredictable branch. It counts about twice as fast as the other.
//   - linesSWAR (everywhere else) scans 8 bytes per step in plain Go to the key, then
//     skips to the line end with bytes.IndexByte (SIMD in the runtime).
//
// See the comments on each for the tricks and why they pay.
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
	"strings"
)

// MaxLine bounds the memory a line may take: a line (its bytes before the "\n") longer than
// this is an error, in every reader alike (stream, mapped file, ReaderAt). Taxi rows are
// ~200 bytes; a megabyte "line" means the input is not the CSV we count (binary data with
// no newlines). Blocks are at most MaxLine long, so only a line that crosses a block's
// boundary can be longer, and only those are measured.
const MaxLine = 1 << 20

// ErrLongLine reports a line longer than MaxLine.
var ErrLongLine = fmt.Errorf("a line is longer than %d bytes: not a CSV file", MaxLine)

// ErrNoColumn reports a header that lacks the column to count.
var ErrNoColumn = errors.New("no such column")

// Column selects the field to count: by its 1-based position, or by name, matched against
// each stream's header case-insensitively.
type Column struct {
	Field int    // 1-based position, used when Name is ""
	Name  string // a header field
}

// Passengers is the default column: the 4th field is passenger_count in every era of the
// taxi data.
var Passengers = Column{Field: 4}

func (c Column) String() string {
	if c.Name != "" {
		return fmt.Sprintf("column %q", c.Name)
	}
	return fmt.Sprintf("field %d", c.Field)
}

// commas returns how many commas precede the column in rows under header.
func (c Column) commas(header []byte) (int, error) {
	if c.Name == "" {
		if c.Field < 1 {
			return 0, fmt.Errorf("field %d: fields are numbered from 1", c.Field)
		}
		return c.Field - 1, nil
	}
	for i, f := range bytes.Split(header, []byte{','}) {
		if strings.EqualFold(string(f), c.Name) {
			return i, nil
		}
	}
	return 0, fmt.Errorf("%w in the header: %q", ErrNoColumn, c.Name)
}

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

// line counts one line (without its "\n"), whose key follows its need-th comma.
func (c *Counts) line(l []byte, need int) {
	if len(l) > 0 && l[len(l)-1] == '\r' {
		l = l[:len(l)-1]
	}
	k := -1 // the first field follows no comma
	if need > 0 {
		k = nthComma(l, need)
	}
	if k < 0 && (need > 0 || len(l) == 0) {
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

// linesSWAR is lines in plain Go, for the CPUs linesIndexed does not serve: it counts every
// complete line of p, whose keys follow the need-th comma of their line, and returns the
// unfinished tail.
//
// Each row is read once: a SWAR scan (below) walks from the line start to the 3rd comma,
// watching for a newline on the way (a short row), then bytes.IndexByte, which the runtime
// implements with SIMD (AVX2 / NEON), skips the ~100 bytes after the key to the line end at
// tens of bytes per cycle. Finding the line end first and then scanning for commas would
// read the first ~45 bytes twice and pay one more call per row.
func (c *Counts) linesSWAR(p []byte, need int) []byte {
	start := 0
	for start < len(p) {
		ks, end := keyStart(p, start, need)
		if ks < 0 { // the line ends before the key's field
			if end == len(p) {
				return p[start:]
			}
			c.Skipped++
			start = end + 1
			continue
		}
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

// keyStart scans the line starting at p[i] for its need-th comma. It returns the index
// after the comma, where the key starts, and the index of the first newline before it (or
// len(p) if p ends first), with ks -1 when the newline or the end of p comes first. For
// need 0 (the first field) ks is i, or -1 for a blank line.
//
// It tests 8 bytes per step (SWAR): the taxi fields before the key are ~1+19+19 bytes, so a
// byte loop would take ~40 branchy steps per row, and bytes.IndexByte's call overhead
// dominates on such short spans. The steps look for commas only; whether a newline came
// first (a short row, rare) is checked once, with one SIMD IndexByte over the span. The
// fast scan gives up after fieldScan bytes per field, so short rows cannot make it run far
// ahead; keyStartExact then handles the row.
func keyStart(p []byte, i, need int) (ks, end int) {
	if need == 0 {
		return lineStart(p, i)
	}
	start, left := i, need
	for lim := min(len(p), i+(need+1)*fieldScan); i+8 <= lim; i += 8 {
		cm := zeroBytes(binary.LittleEndian.Uint64(p[i:]) ^ commas)
		if n := bits.OnesCount64(cm); n < left {
			left -= n
			continue
		}
		for ; left > 1; left-- {
			cm &= cm - 1
		}
		k := i + bits.TrailingZeros64(cm)/8
		if nl := bytes.IndexByte(p[start:k], '\n'); nl >= 0 {
			return -1, start + nl
		}
		return k + 1, len(p)
	}
	return keyStartExact(p, start, need)
}

// lineStart is keyStart for the first field: the key starts the line, unless the line is
// blank (or not yet known not to be).
func lineStart(p []byte, i int) (ks, end int) {
	switch {
	case i == len(p), p[i] == '\r' && i+1 == len(p):
		return -1, len(p)
	case p[i] == '\n':
		return -1, i
	case p[i] == '\r' && p[i+1] == '\n':
		return -1, i + 1
	}
	return i, len(p)
}

// fieldScan is how far per field the fast scan looks: taxi rows have the 3rd comma at ~45,
// within the 128 bytes it allows for 4 fields.
const fieldScan = 32

// keyStartExact is keyStart watching for newlines at every step.
func keyStartExact(p []byte, i, need int) (ks, end int) {
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
			return i + bits.TrailingZeros64(cm)/8 + 1, len(p)
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
				return i + 1, len(p)
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

// nthComma returns the index of the n-th ',' in l (n ≥ 1), or -1 (the same SWAR scan as
// nthCommaOrEnd, for a single line that has no newline).
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
	col    Column
	need   int // commas before the key, once the header is known
}

// Reader counts column col of the CSV stream r. With workers > 1, blocks are counted on
// that many goroutines in parallel (order does not matter for counting), so one stream can
// use every core; with 1 everything happens on the calling goroutine. blockSize 0 means
// BlockSize.
func Reader(r io.Reader, col Column, workers, blockSize int) (*Result, error) {
	if blockSize <= 0 {
		blockSize = BlockSize
	}
	blockSize = min(blockSize, MaxLine)
	if workers < 1 {
		workers = 1
	}
	res := &Result{col: col}
	s := &Splitter{r: r, size: blockSize}
	if workers == 1 {
		buf := make([]byte, blockSize+MaxLine)
		for {
			blk, final, err := s.Next(buf)
			if err == nil {
				err = res.count(blk, final)
			}
			if err != nil {
				return res, err
			}
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
	type job struct {
		blk, buf []byte
		need     int
	}
	work := make(chan job)
	done := make(chan *Counts)
	for range workers {
		go func() {
			c := &Counts{}
			for j := range work {
				c.lines(j.blk, j.need) // blocks end at a line end: no tail
				free <- j.buf
			}
			done <- c
		}()
	}
	var err error
	for {
		buf := <-free
		var blk []byte
		var final, more bool
		blk, final, err = s.Next(buf)
		if err == nil {
			more, err = res.takeHeader(&blk)
		}
		if err != nil {
			break
		}
		if !more {
			free <- buf
		} else if final {
			res.tail(blk)
			free <- buf
		} else {
			work <- job{blk, buf, res.need}
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
func (res *Result) count(blk []byte, final bool) error {
	if more, err := res.takeHeader(&blk); !more || err != nil {
		return err
	}
	if final {
		res.tail(blk)
		return nil
	}
	res.lines(blk, res.need)
	return nil
}

// tail counts the last block, whose last line may lack a newline.
func (res *Result) tail(blk []byte) {
	if rest := res.lines(blk, res.need); len(rest) > 0 {
		res.line(rest, res.need)
	}
}

// takeHeader removes the header from the first block and finds the column in it; it
// reports whether anything is left.
func (res *Result) takeHeader(blk *[]byte) (more bool, err error) {
	if res.Header != nil {
		return len(*blk) > 0, nil
	}
	b := *blk
	if len(b) == 0 {
		return false, nil
	}
	i := bytes.IndexByte(b, '\n')
	if i < 0 { // only at the end of the stream: the header was its only line
		i = len(b)
	}
	if err := res.setHeader(b[:i]); err != nil {
		return false, err
	}
	*blk = b[min(i+1, len(b)):]
	return len(*blk) > 0, nil
}

// setHeader keeps the header line (without its "\n") and finds the column in it.
func (res *Result) setHeader(line []byte) (err error) {
	res.Header = bytes.TrimSuffix(append([]byte{}, line...), []byte("\r"))
	res.need, err = res.col.commas(res.Header)
	return err
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

// NewSplitter returns a Splitter reading r in blocks of about size (at most MaxLine) bytes.
func NewSplitter(r io.Reader, size int) *Splitter {
	return &Splitter{r: r, size: min(size, MaxLine)}
}

// Next fills buf (len(buf) ≥ size+MaxLine) and returns the complete lines read, ending with
// "\n". final is true at the end of the stream; the last block may then end without "\n".
// Each byte is read and searched once, however long the lines.
func (s *Splitter) Next(buf []byte) (blk []byte, final bool, err error) {
	n := copy(buf, s.carry)
	carried := n
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
			return buf[:n], true, checkLong(buf[:n], carried, true)
		}
		if i := bytes.LastIndexByte(buf[start:n], '\n'); i >= 0 {
			end := start + i + 1
			s.carry = append(s.carry[:0], buf[end:n]...)
			return buf[:end], false, checkLong(buf[:end], carried, false)
		}
		if n > MaxLine { // no line end yet: keep reading, up to the bound
			return nil, false, ErrLongLine
		}
		start, limit = n, min(n+s.size, len(buf))
	}
}

// checkLong applies MaxLine to a block whose first carried bytes are the start of a line
// begun in an earlier read: that first line, and with final the block's last line (which
// has no "\n"), are the ones that may cross a read; every other line lies within one read of
// at most MaxLine bytes.
func checkLong(b []byte, carried int, final bool) error {
	first := bytes.IndexByte(b[carried:], '\n')
	switch {
	case first < 0 && len(b) > MaxLine, first >= 0 && carried+first > MaxLine:
		return ErrLongLine
	case final && len(b)-bytes.LastIndexByte(b, '\n')-1 > MaxLine:
		return ErrLongLine
	}
	return nil
}
