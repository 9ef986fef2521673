package count

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"ec2kit/internal/count/taxigen"
)

// reference is the plain implementation the kernel must agree with: split every line on
// commas and take the field-th field, like `tail -n +2 | cut -d, -f4` for field 4; blank
// lines have no field.
func reference(data []byte, field int) (map[string]uint64, uint64) {
	m := map[string]uint64{}
	var skipped uint64
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, MaxLine+2)
	first := true
	for sc.Scan() { // ScanLines drops a "\r" before "\n" (and at the very end)
		if first {
			first = false
			continue
		}
		f := strings.Split(sc.Text(), ",")
		if sc.Text() == "" || len(f) < field {
			skipped++
			continue
		}
		m[f[field-1]]++
	}
	return m, skipped
}

func check(t *testing.T, data []byte, workers, block int) { checkField(t, data, workers, block, 4) }

// checkField checks every reader, with each kernel, against the reference.
func checkField(t *testing.T, data []byte, workers, block, field int) {
	t.Helper()
	for _, k := range kernels {
		func() {
			defer useKernel(k)()
			checkKernel(t, k, data, workers, block, field)
		}()
	}
}

func checkKernel(t *testing.T, kernel string, data []byte, workers, block, field int) {
	t.Helper()
	want, wantSkipped := reference(data, field)
	col := Column{Field: field}
	r := iotest.HalfReader(bytes.NewReader(data)) // short reads, like a network stream
	got, err := Reader(r, col, workers, block)
	if err != nil {
		t.Fatalf("%s: field=%d workers=%d block=%d: %v", kernel, field, workers, block, err)
	}
	if !maps.Equal(got.Map(), want) || got.Skipped != wantSkipped {
		t.Fatalf("%s: field=%d workers=%d block=%d input %q:\n got %v skipped %d\nwant %v skipped %d",
			kernel, field, workers, block, data[:min(len(data), 300)], got.Map(), got.Skipped, want, wantSkipped)
	}
	var rows uint64
	for _, n := range want {
		rows += n
	}
	if got.Rows != rows || got.Bytes != int64(len(data)) {
		t.Fatalf("%s: rows %d bytes %d, want %d %d", kernel, got.Rows, got.Bytes, rows, len(data))
	}
	if b, err := Bytes(data, col, workers); err != nil || !maps.Equal(b.Map(), want) || b.Skipped != wantSkipped || !bytes.Equal(b.Header, got.Header) {
		t.Fatalf("%s: Bytes field=%d workers=%d input %q: got %v skipped %d (%v)", kernel, field, workers, data[:min(len(data), 300)], b.Map(), b.Skipped, err)
	}
	at, err := ReaderAt(bytes.NewReader(data), int64(len(data)), col, workers, block)
	if err != nil || !maps.Equal(at.Map(), want) || at.Skipped != wantSkipped || at.Rows != rows ||
		(len(data) > 0 && !bytes.Equal(at.Header, got.Header)) {
		t.Fatalf("%s: ReaderAt field=%d workers=%d block=%d input %q: got %v skipped %d header %q (%v)",
			kernel, field, workers, block, data[:min(len(data), 300)], at.Map(), at.Skipped, at.Header, err)
	}
}

var cases = map[string]string{
	"empty":              "",
	"header only":        "a,b,c,d,e",
	"header only nl":     "a,b,c,d,e\n",
	"basic":              "h,h,h,h,h\n1,t,t,1,x\n2,t,t,2,x\n3,t,t,1,x\n",
	"no final newline":   "h\n1,t,t,1,x\n2,t,t,2",
	"crlf":               "h,h,h,h\r\n1,t,t,1,x\r\n2,t,t,2\r\n\r\n3,t,t,2\r",
	"empty 4th":          "h\na,b,c,,e\na,b,c,\na,b,c,\r\n",
	"few fields":         "h\na,b,c\n\n\na\n,,\n,,,\n",
	"long keys":          "h\na,b,c,10,e\na,b,c,10\na,b,c,1.5,x\na,b,c,abc\r\n",
	"inner cr":           "h\na,b,c,1\r,e\na,b,c,\rx\na,b,c,1\r\r\n",
	"blank header":       "\na,b,c,1\n",
	"cr only lines":      "h\r\n\r\n\r\na,b,c,d\r\n",
	"comma dash":         "h\n,-,-,-,-\n-,,-,-\n,,,-\n",
	"wide first fields":  "h\naaaaaaaaaaaaaaaaaa,bbbbbbbbbbbbbbbbbbbbb,ccccccccccccccc,7,dddddddd\n",
	"commas in one word": "h\n,,,,,,,,,,,,\n,,,5,,,,,,\n",
}

func TestEdgeCases(t *testing.T) {
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			for _, w := range []int{1, 3} {
				for block := 1; block <= len(in)+1; block++ {
					for field := 1; field <= 6; field++ {
						checkField(t, []byte(in), w, block, field)
					}
				}
				check(t, []byte(in), w, 0)
			}
		})
	}
}

func TestSpecifics(t *testing.T) {
	res, err := Reader(strings.NewReader("VendorID,x,y,passenger_count\r\n\r\n1,a,b,2\r\n1,a,b,\r\n1,a,b,2"), Passengers, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Header) != "VendorID,x,y,passenger_count" || res.Skipped != 1 || res.Rows != 3 {
		t.Fatalf("header %q skipped %d rows %d", res.Header, res.Skipped, res.Rows)
	}
	var out strings.Builder
	res.WriteTo(&out)
	if out.String() != ",1\n2,2\n" {
		t.Fatalf("output %q", out.String())
	}
}

func TestTaxiData(t *testing.T) {
	for era := range 3 {
		var buf bytes.Buffer
		if err := taxigen.Write(&buf, taxigen.Era(era), 300_000, uint64(era)); err != nil {
			t.Fatal(err)
		}
		for _, block := range []int{4096, 65536, 0} {
			check(t, buf.Bytes(), 1, block)
			check(t, buf.Bytes(), 4, block)
		}
		for _, field := range []int{1, 2, 5, 9, 30} {
			checkField(t, buf.Bytes(), 2, 4096, field)
		}
	}
}

func TestLongLine(t *testing.T) {
	data := "h\n" + strings.Repeat("x", 2*MaxLine+10) + "\n1,2,3,4\n"
	if _, err := Reader(strings.NewReader(data), Passengers, 1, 4096); err != ErrLongLine {
		t.Fatalf("got %v", err)
	}
	if _, err := Reader(strings.NewReader(data), Passengers, 2, 0); err != ErrLongLine {
		t.Fatalf("got %v", err)
	}
}

func TestMerge(t *testing.T) {
	var a, b Counts
	a.Add([]byte("1"), 2)
	a.Add([]byte("10"), 1)
	b.Add([]byte("10"), 5)
	b.Add(nil, 1)
	b.Skipped = 3
	a.Merge(&b)
	want := map[string]uint64{"1": 2, "10": 6, "": 1}
	if !maps.Equal(a.Map(), want) || a.Rows != 9 || a.Skipped != 3 {
		t.Fatalf("got %v rows %d skipped %d", a.Map(), a.Rows, a.Skipped)
	}
}

func FuzzKernel(f *testing.F) {
	for _, in := range cases {
		f.Add([]byte(in), uint16(7), uint8(3))
	}
	f.Add(append([]byte(taxigen.Era2010.Header()+"\r\n\r\n"), taxigen.New(taxigen.Era2010, 1).AppendRow(nil)...), uint16(13), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, block uint16, field uint8) {
		check(t, data, 1, int(block%512)+1)
		check(t, data, 2, int(block%64)+1)
		checkField(t, data, 2, int(block%64)+1, int(field%8)+1)
	})
}

// checkLines runs each kernel directly on p, as the readers do on a block (the unfinished
// last line goes to line), and compares with the reference. It also checks that the tail
// the kernel leaves is exactly what follows p's last newline.
func checkLines(t *testing.T, p []byte, field int) {
	t.Helper()
	want, wantSkipped := reference(append([]byte("header\n"), p...), field)
	var rows uint64
	for _, n := range want {
		rows += n
	}
	for _, k := range kernels {
		func() {
			defer useKernel(k)()
			var c Counts
			rest := c.lines(p, field-1)
			if tail := len(p) - bytes.LastIndexByte(p, '\n') - 1; len(rest) != tail {
				t.Fatalf("%s: field %d: a tail of %d bytes, want %d; input %q", k, field, len(rest), tail, p[:min(len(p), 300)])
			}
			if len(rest) > 0 {
				c.line(rest, field-1)
			}
			if !maps.Equal(c.Map(), want) || c.Skipped != wantSkipped || c.Rows != rows {
				t.Fatalf("%s: field %d input %q:\n got %v skipped %d rows %d\nwant %v skipped %d rows %d",
					k, field, p[:min(len(p), 300)], c.Map(), c.Skipped, c.Rows, want, wantSkipped, rows)
			}
		}()
	}
}

// randomRows returns about size bytes of lines of random lengths (blank to several hundred
// bytes, so some cross every index window and some have their key or end out of the
// index's reach) made of commas, "\r", "\n" and a few letters.
func randomRows(seed uint64, size int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	var b []byte
	for len(b) < size {
		n := r.IntN(64)
		switch r.IntN(8) {
		case 0:
			n = r.IntN(500)
		case 1:
			n = 0
		}
		commaEvery := 1 + r.IntN(12)
		for range n {
			switch c := r.IntN(commaEvery * 4); {
			case c == 0:
				b = append(b, ',')
			case c == 1 && r.IntN(8) == 0:
				b = append(b, '\r')
			default:
				b = append(b, "0123456789ab"[c%12])
			}
		}
		if r.IntN(4) == 0 {
			b = append(b, '\r')
		}
		b = append(b, '\n')
	}
	if r.IntN(2) == 0 { // end without a newline
		b = b[:len(b)-1]
	}
	return b
}

func TestLinesRandom(t *testing.T) {
	for seed := range uint64(40) {
		p := randomRows(seed, 40_000)
		for field := 1; field <= 12; field++ {
			checkLines(t, p, field)
		}
	}
	var buf bytes.Buffer
	taxigen.Write(&buf, taxigen.Era2015, 100_000, 5)
	for _, field := range []int{1, 3, 4, 5, 8, 19, 20} {
		// Every alignment of the rows against the index's 64-byte words and windows.
		for skip := range 70 {
			checkLines(t, buf.Bytes()[skip:], field)
		}
	}
}

// FuzzLines fuzzes the kernels directly: the input repeated up to ~64 KiB (so lines cross
// index windows at varied offsets), any field from 1 to 24.
func FuzzLines(f *testing.F) {
	for _, in := range cases {
		f.Add([]byte(in), uint8(3), uint16(1))
	}
	f.Add(taxigen.New(taxigen.Era2015, 1).AppendRow(nil), uint8(3), uint16(500))
	f.Add(randomRows(1, 2000), uint8(7), uint16(20))
	f.Fuzz(func(t *testing.T, data []byte, field uint8, reps uint16) {
		n := 1 + int(reps)%(1+(64<<10)/max(len(data), 1))
		checkLines(t, bytes.Repeat(data, n), int(field%24)+1)
	})
}

// taxiData is ~64 MiB of 2015-style rows, generated once for the benchmarks.
var taxiData = func() func() []byte {
	var data []byte
	return func() []byte {
		if data == nil {
			var buf bytes.Buffer
			taxigen.Write(&buf, taxigen.Era2015, 64<<20, 42)
			data = buf.Bytes()
		}
		return data
	}
}()

// BenchmarkKernel measures each kernel alone on rows in memory (GB/s = MB/s / 1000), in
// blocks of BlockSize as Reader feeds it. It also reports GB per second of the thread's own
// CPU time ("GB/cpu-s"), which stays meaningful on a machine busy with other work.
func BenchmarkKernel(b *testing.B) {
	data := taxiData()
	var blocks [][]byte
	for p := data; len(p) > 0; {
		n := min(BlockSize, len(p))
		n = bytes.LastIndexByte(p[:n], '\n') + 1
		blocks, p = append(blocks, p[:n]), p[n:]
	}
	for _, k := range kernels {
		for _, field := range []int{4, 1, 9} {
			b.Run(fmt.Sprintf("%s/field=%d", k, field), func(b *testing.B) {
				defer useKernel(k)()
				b.SetBytes(int64(len(data)))
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				cpu0 := threadCPU()
				for b.Loop() {
					var c Counts
					for _, blk := range blocks {
						if rest := c.lines(blk, field-1); len(rest) != 0 {
							b.Fatal("tail")
						}
					}
				}
				b.ReportMetric(float64(len(data))*float64(b.N)/(threadCPU()-cpu0).Seconds()/1e9, "GB/cpu-s")
			})
		}
	}
}

// threadCPU is the CPU time the calling thread has used.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkReader measures the whole streaming path from an in-memory reader.
func BenchmarkReader(b *testing.B) {
	data := taxiData()
	for _, w := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", w), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := Reader(bytes.NewReader(data), Passengers, w, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestAppendFields(t *testing.T) {
	in := "a,b,c,d,e,f,g\r\nshort,x\n\n1,2,3,4,5\n1,2,3,4,5,\nlong1234,long1234,long1234,7,8,9\nlast,1,2,3,4,5"
	want := "a,b,c,d,e\nshort,x\n\n1,2,3,4,5\n1,2,3,4,5\nlong1234,long1234,long1234,7,8\nlast,1,2,3,4\n"
	if got := string(AppendFields(nil, []byte(in), 5)); got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	// Selecting 5 fields keeps the counts: the 4th field survives.
	var buf bytes.Buffer
	taxigen.Write(&buf, taxigen.Era2010, 100_000, 3)
	cut := AppendFields(nil, buf.Bytes(), 5)
	a, _ := Reader(bytes.NewReader(buf.Bytes()), Passengers, 1, 0)
	b, _ := Reader(bytes.NewReader(cut), Passengers, 1, 0)
	if !maps.Equal(a.Map(), b.Map()) || a.Skipped != b.Skipped {
		t.Fatalf("counts differ after cut: %v %v", a.Map(), b.Map())
	}
}

func TestReaderAt(t *testing.T) {
	var buf bytes.Buffer
	taxigen.Write(&buf, taxigen.Era2010, 200_000, 9)
	inputs := append([]string{buf.String()}, slices.Collect(maps.Values(cases))...)
	for _, in := range inputs {
		want, wantSkipped := reference([]byte(in), 4)
		for _, block := range []int{1, 2, 3, 7, 100, 4096, 0} {
			for _, w := range []int{1, 3} {
				got, err := ReaderAt(strings.NewReader(in), int64(len(in)), Passengers, w, block)
				if err != nil || !maps.Equal(got.Map(), want) || got.Skipped != wantSkipped {
					t.Fatalf("block %d workers %d input %.200q: got %v skipped %d (%v), want %v skipped %d",
						block, w, in, got.Map(), got.Skipped, err, want, wantSkipped)
				}
			}
		}
	}
}

func TestColumnByName(t *testing.T) {
	in := "VendorID,Trip_Pickup,x,Passenger_Count,payment_type\r\n1,a,b,2,CSH\r\n1,a,b,1,CRD\r\n1,a,b,2,CSH\r\nshort\r\n"
	for name, want := range map[string]string{"passenger_count": "1,1\n2,2\n", "PAYMENT_TYPE": "CRD,1\nCSH,2\n", "vendorid": "1,3\nshort,1\n"} {
		col := Column{Name: name}
		r, err := Reader(strings.NewReader(in), col, 1, 0)
		b, berr := Bytes([]byte(in), col, 2)
		a, aerr := ReaderAt(strings.NewReader(in), int64(len(in)), col, 2, 7)
		for _, res := range []*Result{r, b, a} {
			var out strings.Builder
			res.WriteTo(&out)
			if out.String() != want || err != nil || berr != nil || aerr != nil {
				t.Fatalf("%s: got %q (%v %v %v), want %q", name, out.String(), err, berr, aerr, want)
			}
		}
	}
	col := Column{Name: "tip_amount"}
	_, err := Reader(strings.NewReader(in), col, 2, 0)
	_, berr := Bytes([]byte(in), col, 2)
	_, aerr := ReaderAt(strings.NewReader(in), int64(len(in)), col, 2, 0)
	for _, err := range []error{err, berr, aerr} {
		if !errors.Is(err, ErrNoColumn) || !strings.Contains(err.Error(), "tip_amount") {
			t.Fatalf("missing column: %v", err)
		}
	}
}

// Every reader applies one rule: a line of MaxLine bytes is counted, one of MaxLine+1 is
// ErrLongLine, wherever it lies (header, middle, last line with or without "\n", CRLF).
func TestLongLineRule(t *testing.T) {
	rows := strings.Repeat("1,a,b,2,x\n", 5000)
	long := func(n int) string { return "1,a,b," + strings.Repeat("x", n-6) }
	for _, n := range []int{MaxLine, MaxLine + 1} {
		for name, in := range map[string]string{
			"header":        long(n) + "\n" + rows,
			"middle":        "h,h,h,h\n" + rows + long(n) + "\n" + rows,
			"middle crlf":   "h,h,h,h\r\n" + rows + long(n-1) + "\r\n" + rows,
			"last":          "h,h,h,h\n" + rows + long(n) + "\n",
			"last, no nl":   "h,h,h,h\n" + rows + long(n),
			"only line":     long(n),
			"after a block": "h,h,h,h\n" + strings.Repeat("1,a,b,2,x\n", BlockSize/10+3) + long(n) + "\n" + rows,
		} {
			want := error(nil)
			if n > MaxLine {
				want = ErrLongLine
			}
			for _, block := range []int{0, 4096} {
				for _, w := range []int{1, 2} {
					_, err := Reader(strings.NewReader(in), Passengers, w, block)
					_, aerr := ReaderAt(strings.NewReader(in), int64(len(in)), Passengers, w, block)
					_, berr := Bytes([]byte(in), Passengers, w)
					if err != want || aerr != want || berr != want {
						t.Fatalf("%s, a %d-byte line, block %d, workers %d: Reader %v, ReaderAt %v, Bytes %v; want %v",
							name, n, block, w, err, aerr, berr, want)
					}
				}
			}
			if want == nil {
				check(t, []byte(in), 2, 0)
			}
		}
	}
}
