package split

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

// refPiece is the rule written the plain way: cut the whole text into lines and give each line
// to the range its first byte lies in.
func refPiece(text string, r Range, header bool) string {
	var out, first strings.Builder
	for off := 0; off < len(text); {
		n := strings.IndexByte(text[off:], '\n') + 1
		if n == 0 {
			n = len(text) - off
		}
		line := text[off : off+n]
		if off == 0 {
			first.WriteString(line)
		}
		if int64(off) >= r.Start && int64(off) < r.End {
			out.WriteString(line)
		}
		off += n
	}
	if header && r.Start > 0 {
		return first.String() + out.String()
	}
	return out.String()
}

// source serves an object from memory and counts what its readers did.
type source struct {
	data          []byte
	wrap          func(io.Reader) io.Reader // how reads are chunked, if not whole
	opens, closes int
	read          int64
}

func (s *source) open(_ context.Context, off, end int64) (io.ReadCloser, error) {
	s.opens++
	var r io.Reader = bytes.NewReader(s.data[min(off, int64(len(s.data))):min(end, int64(len(s.data)))]) // a short source stops early
	if s.wrap != nil {
		r = s.wrap(r)
	}
	return &counted{r: r, s: s}, nil
}

type counted struct {
	r io.Reader
	s *source
}

func (c *counted) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.s.read += int64(n)
	return n, err
}

func (c *counted) Close() error { c.s.closes++; return nil }

// readPiece reads one piece with reads of bufLen bytes and checks the source was closed.
func readPiece(t testing.TB, s *source, r Range, header bool, bufLen int) string {
	t.Helper()
	p := Piece(context.Background(), s.open, int64(len(s.data)), r, header)
	var out bytes.Buffer
	buf := make([]byte, bufLen)
	for {
		n, err := p.Read(buf)
		out.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("piece %v: %v", r, err)
		}
	}
	if s.opens != s.closes {
		t.Fatalf("piece %v: %d opens, %d closes before Close", r, s.opens, s.closes)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestPieces(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		pieceSize  int64
		header     bool
		want       []string
	}{
		{"one line per piece", "a\nb\nc\n", 2, false, []string{"a\n", "b\n", "c\n"}},
		{"boundary on a line start", "ab\ncd\n", 3, false, []string{"ab\n", "cd\n"}},
		{"boundary on a newline", "ab\ncd\n", 2, false, []string{"ab\n", "cd\n", ""}},
		{"crlf", "a\r\nb\r\n", 2, false, []string{"a\r\n", "b\r\n", ""}},
		{"line longer than the piece", "xxxxxxxxxx\ny\n", 3, false, []string{"xxxxxxxxxx\n", "", "", "", "y\n"}},
		{"no final newline", "a\nbc", 2, false, []string{"a\n", "bc"}},
		{"empty object", "", 4, false, []string{""}},
		{"empty object, header", "", 4, true, []string{""}},
		{"one line", "abc", 1, false, []string{"abc", "", ""}},
		{"one line with newline", "abc\n", 2, false, []string{"abc\n", ""}},
		{"blank lines", "\n\n\n", 1, false, []string{"\n", "\n", "\n"}},
		{"header", "h\na\nb\n", 2, true, []string{"h\n", "h\na\n", "h\nb\n"}},
		{"header longer than the piece", "hhhhh\na\n", 2, true, []string{"hhhhh\n", "hhhhh\n", "hhhhh\n", "hhhhh\na\n"}},
		{"header without newline", "hhh", 1, true, []string{"hhh", "hhh", "hhh"}},
		{"object smaller than the piece", "a\nb\n", 100, true, []string{"a\nb\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ranges := Plan(int64(len(tc.text)), tc.pieceSize)
			var got []string
			for _, r := range ranges {
				s := &source{data: []byte(tc.text)}
				piece := readPiece(t, s, r, tc.header, 4096)
				if ref := refPiece(tc.text, r, tc.header); piece != ref {
					t.Errorf("piece %v = %q, reference says %q", r, piece, ref)
				}
				got = append(got, piece)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("pieces %q, want %q", got, tc.want)
			}
		})
	}
}

// TestEveryPieceSize compares every piece of some awkward texts, for every piece size, and
// read in every chunking, with the reference.
func TestEveryPieceSize(t *testing.T) {
	texts := []string{"a\nbb\n\nccc\r\ndddd", "\n", "x", "hdr\r\n1\r\n22\r\n333\r\n", "long line here\nend\n\n"}
	wraps := []func(io.Reader) io.Reader{nil, iotest.OneByteReader, iotest.HalfReader, iotest.DataErrReader}
	for _, text := range texts {
		for size := int64(1); size <= int64(len(text))+1; size++ {
			for _, header := range []bool{false, true} {
				for i, wrap := range wraps {
					for _, r := range Plan(int64(len(text)), size) {
						s := &source{data: []byte(text), wrap: wrap}
						got := readPiece(t, s, r, header, 1+i)
						if want := refPiece(text, r, header); got != want {
							t.Fatalf("%q size %d header %v wrap %d piece %v = %q, want %q", text, size, header, i, r, got, want)
						}
					}
				}
			}
		}
	}
}

func TestPieceIsAReader(t *testing.T) {
	text := "h\n" + strings.Repeat("some,row,of,csv\n", 1000)
	s := &source{data: []byte(text)}
	r := Range{Part: 1, Start: 100, End: 9000}
	if err := iotest.TestReader(Piece(context.Background(), s.open, int64(len(text)), r, true), []byte(refPiece(text, r, true))); err != nil {
		t.Fatal(err)
	}
}

// TestReadsOnlyItsPiece checks that a piece stops reading its source once its last line ends.
func TestReadsOnlyItsPiece(t *testing.T) {
	line := strings.Repeat("y", 99) + "\n"
	s := &source{data: []byte(strings.Repeat(line, 100_000))} // 10 MB
	r := Range{Part: 1, Start: 1 << 20, End: 2 << 20}
	readPiece(t, s, r, false, 4096)
	if limit := int64(r.End-r.Start) + int64(len(line)) + bufSize; s.read > limit {
		t.Errorf("read %d bytes of the source for a %d-byte piece, want at most %d", s.read, r.End-r.Start, limit)
	}
}

// TestOpensAtOnce checks that a piece with a header opens both its sources on the first Read,
// so that on S3 their first-byte latencies overlap, and asks each for what it needs.
func TestOpensAtOnce(t *testing.T) {
	line := strings.Repeat("y", 99) + "\n"
	data := []byte(strings.Repeat(line, 10_000)) // 1 MB
	var asked [][2]int64
	s := &source{data: data}
	open := func(ctx context.Context, start, end int64) (io.ReadCloser, error) {
		asked = append(asked, [2]int64{start, end})
		return s.open(ctx, start, end)
	}
	p := Piece(context.Background(), open, int64(len(data)), Range{Part: 1, Start: 500_000, End: 600_000}, true)
	defer p.Close()
	if _, err := p.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	want := [][2]int64{{0, 1 + bufSize}, {499_999, 600_000 + bufSize}}
	if fmt.Sprint(asked) != fmt.Sprint(want) {
		t.Errorf("opened %v on the first Read, want %v", asked, want)
	}
}

// xs is an endless stream of 'x'.
type xs struct{}

func (xs) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

// TestLongLineStreams splits an object whose first line is 100 MB: no piece may hold it.
func TestLongLineStreams(t *testing.T) {
	const long = 100 << 20
	const rest = "\nend\n"
	size := int64(long + len(rest))
	s := &source{}
	open := func(_ context.Context, off, end int64) (io.ReadCloser, error) {
		r := io.MultiReader(io.LimitReader(xs{}, max(0, long-off)), strings.NewReader(rest[max(0, off-long):]))
		r = io.LimitReader(r, end-off)
		return &counted{r: r, s: s}, nil
	}
	for _, tc := range []struct {
		r         Range
		header    bool
		wantBytes int64
		wantEnd   string
		maxRead   int64 // of the source
	}{
		{Range{0, 0, 1 << 20}, false, long + 1, "x\n", long + 1 + bufSize},
		{Range{1, 1 << 20, 2 << 20}, false, 0, "", 1<<20 + 1 + bufSize}, // no line starts in it
		{Range{2, long - 10, size}, false, 4, "end\n", 20},
		{Range{2, long - 10, size}, true, long + 1 + 4, "x\nend\n", size + 20},
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s.read = 0
		p := Piece(context.Background(), open, size, tc.r, tc.header)
		end := &tailWriter{}
		n, err := io.Copy(end, p)
		runtime.ReadMemStats(&after)
		if err != nil || n != tc.wantBytes || !strings.HasSuffix(string(end.last), tc.wantEnd) {
			t.Errorf("piece %v header %v: %d bytes ending %q, %v; want %d bytes ending %q", tc.r, tc.header, n, end.last, err, tc.wantBytes, tc.wantEnd)
		}
		if s.read > tc.maxRead {
			t.Errorf("piece %v header %v read %d bytes of the source, want at most %d", tc.r, tc.header, s.read, tc.maxRead)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
			t.Errorf("piece %v header %v allocated %d bytes: the line was held, not streamed", tc.r, tc.header, alloc)
		}
	}
}

// tailWriter keeps only the last bytes written to it.
type tailWriter struct{ last []byte }

func (w *tailWriter) Write(p []byte) (int, error) {
	w.last = append(w.last, p[max(0, len(p)-8):]...)
	w.last = w.last[max(0, len(w.last)-8):]
	return len(p), nil
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("boom")
	failing := func(context.Context, int64, int64) (io.ReadCloser, error) { return nil, boom }
	if _, err := io.ReadAll(Piece(ctx, failing, 10, Range{0, 0, 10}, false)); !errors.Is(err, boom) {
		t.Errorf("open error: got %v, want %v", err, boom)
	}

	short := &source{data: []byte("a\nb\nc")}
	if _, err := io.ReadAll(Piece(ctx, short.open, 20, Range{0, 0, 20}, false)); !errors.Is(err, ErrShort) {
		t.Errorf("short source: got %v, want ErrShort", err)
	}
	if short.closes != short.opens {
		t.Errorf("short source left open")
	}

	unused := &source{data: []byte("a\nb\n")}
	if err := Piece(ctx, unused.open, 4, Range{0, 0, 4}, false).Close(); err != nil || unused.opens != 0 {
		t.Errorf("Close before Read: %v, %d opens", err, unused.opens)
	}

	s := &source{data: []byte(strings.Repeat("line\n", 1000))}
	p := Piece(ctx, s.open, int64(len(s.data)), Range{0, 0, int64(len(s.data))}, false)
	if _, err := p.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil || s.closes != 1 {
		t.Errorf("Close mid-piece: %v, %d closes", err, s.closes)
	}
	if _, err := p.Read(make([]byte, 10)); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Read after Close: got %v, want fs.ErrClosed", err)
	}
}

func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		size, pieceSize int64
		want            string
	}{
		{0, 5, "[0-0]"},
		{5, 5, "[0-5]"},
		{6, 5, "[0-3 3-6]"},
		{10, 3, "[0-3 3-6 6-8 8-10]"},
		{math.MaxInt64, 1 << 60, "[0-1152921504606846976 1152921504606846976-2305843009213693952 " +
			"2305843009213693952-3458764513820540928 3458764513820540928-4611686018427387904 " +
			"4611686018427387904-5764607523034234880 5764607523034234880-6917529027641081856 " +
			"6917529027641081856-8070450532247928832 8070450532247928832-9223372036854775807]"},
	} {
		ranges := Plan(tc.size, tc.pieceSize)
		if got := fmt.Sprint(ranges); got != tc.want {
			t.Errorf("Plan(%d, %d) = %s, want %s", tc.size, tc.pieceSize, got, tc.want)
		}
		checkPlan(t, ranges, tc.size, tc.pieceSize)
	}
	defer func() {
		if recover() == nil {
			t.Error("Plan with pieceSize 0 did not panic")
		}
	}()
	Plan(10, 0)
}

// checkPlan checks that ranges number and cover [0, size) in order, each at most pieceSize.
func checkPlan(t testing.TB, ranges []Range, size, pieceSize int64) {
	t.Helper()
	var next int64
	for i, r := range ranges {
		if r.Part != i || r.Start != next || r.End < r.Start || r.End-r.Start > pieceSize || (size > 0 && r.End == r.Start) {
			t.Fatalf("Plan(%d, %d): range %d is %+v", size, pieceSize, i, r)
		}
		next = r.End
	}
	if next != size {
		t.Fatalf("Plan(%d, %d) ends at %d", size, pieceSize, next)
	}
}

// FuzzSplit checks, for any text, piece size, header choice and read chunking, that the pieces
// partition the object's lines exactly and agree with the reference.
func FuzzSplit(f *testing.F) {
	f.Add([]byte("a\nbb\r\n\nccc"), uint16(2), true, uint8(0))
	f.Add([]byte("header\nrow\n"), uint16(7), true, uint8(4))
	f.Add([]byte(""), uint16(1), false, uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, pieceSize uint16, header bool, chunking uint8) {
		size := int64(len(data))
		ps := 1 + int64(pieceSize)%(size+1)
		ranges := Plan(size, ps)
		checkPlan(t, ranges, size, ps)
		wrap := []func(io.Reader) io.Reader{nil, iotest.OneByteReader, iotest.HalfReader}[chunking%3]
		bufLen := []int{1, 2, 3, 7, 4096}[chunking/3%5]
		first := data[:bytes.IndexByte(data, '\n')+1]
		if len(first) == 0 {
			first = data
		}
		var all []byte
		for _, r := range ranges {
			s := &source{data: data, wrap: wrap}
			got := readPiece(t, s, r, header, bufLen)
			if want := refPiece(string(data), r, header); got != want {
				t.Fatalf("piece %v = %q, want %q", r, got, want)
			}
			if header && r.Part > 0 {
				rest, ok := strings.CutPrefix(got, string(first))
				if !ok {
					t.Fatalf("piece %v = %q does not start with the header %q", r, got, first)
				}
				got = rest
			}
			all = append(all, got...)
		}
		if !bytes.Equal(all, data) {
			t.Fatalf("pieces join to %q, want %q", all, data)
		}
	})
}

func BenchmarkPiece(b *testing.B) {
	for _, lineLen := range []int{100, 1 << 20} {
		b.Run(fmt.Sprintf("line=%d", lineLen), func(b *testing.B) {
			data := bytes.Repeat(append(bytes.Repeat([]byte("7,"), lineLen/2-1), '1', '\n'), (64<<20)/lineLen)
			open := func(_ context.Context, off, end int64) (io.ReadCloser, error) {
				return io.NopCloser(bytes.NewReader(data[off:end])), nil
			}
			ranges := Plan(int64(len(data)), 8<<20)
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				for _, r := range ranges {
					if _, err := io.Copy(io.Discard, Piece(context.Background(), open, int64(len(data)), r, true)); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
