package count

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
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
// commas and take the 4th field, like `tail -n +2 | cut -d, -f4`.
func reference(data []byte) (map[string]uint64, uint64) {
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
		if len(f) < 4 {
			skipped++
			continue
		}
		m[f[3]]++
	}
	return m, skipped
}

func check(t *testing.T, data []byte, workers, block int) {
	t.Helper()
	want, wantSkipped := reference(data)
	r := iotest.HalfReader(bytes.NewReader(data)) // short reads, like a network stream
	got, err := Reader(r, workers, block)
	if err != nil {
		t.Fatalf("workers=%d block=%d: %v", workers, block, err)
	}
	if !maps.Equal(got.Map(), want) || got.Skipped != wantSkipped {
		t.Fatalf("workers=%d block=%d input %q:\n got %v skipped %d\nwant %v skipped %d",
			workers, block, data[:min(len(data), 300)], got.Map(), got.Skipped, want, wantSkipped)
	}
	var rows uint64
	for _, n := range want {
		rows += n
	}
	if got.Rows != rows || got.Bytes != int64(len(data)) {
		t.Fatalf("rows %d bytes %d, want %d %d", got.Rows, got.Bytes, rows, len(data))
	}
	if b := Bytes(data, workers); !maps.Equal(b.Map(), want) || b.Skipped != wantSkipped || !bytes.Equal(b.Header, got.Header) {
		t.Fatalf("Bytes workers=%d input %q: got %v skipped %d", workers, data[:min(len(data), 300)], b.Map(), b.Skipped)
	}
	at, err := ReaderAt(bytes.NewReader(data), int64(len(data)), workers, block)
	if err != nil || !maps.Equal(at.Map(), want) || at.Skipped != wantSkipped || at.Rows != rows ||
		(len(data) > 0 && !bytes.Equal(at.Header, got.Header)) {
		t.Fatalf("ReaderAt workers=%d block=%d input %q: got %v skipped %d header %q (%v)",
			workers, block, data[:min(len(data), 300)], at.Map(), at.Skipped, at.Header, err)
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
					check(t, []byte(in), w, block)
				}
				check(t, []byte(in), w, 0)
			}
		})
	}
}

func TestSpecifics(t *testing.T) {
	res, err := Reader(strings.NewReader("VendorID,x,y,passenger_count\r\n\r\n1,a,b,2\r\n1,a,b,\r\n1,a,b,2"), 1, 0)
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
	}
}

func TestLongLine(t *testing.T) {
	data := "h\n" + strings.Repeat("x", 2*MaxLine+10) + "\n1,2,3,4\n"
	if _, err := Reader(strings.NewReader(data), 1, 4096); err != ErrLongLine {
		t.Fatalf("got %v", err)
	}
	if _, err := Reader(strings.NewReader(data), 2, 0); err != ErrLongLine {
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
		f.Add([]byte(in), uint16(7))
	}
	f.Add(append([]byte(taxigen.Era2010.Header()+"\r\n\r\n"), taxigen.New(taxigen.Era2010, 1).AppendRow(nil)...), uint16(13))
	f.Fuzz(func(t *testing.T, data []byte, block uint16) {
		check(t, data, 1, int(block%512)+1)
		check(t, data, 2, int(block%64)+1)
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

// BenchmarkKernel measures the kernel alone on rows in memory (GB/s = MB/s / 1000), in
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
	b.SetBytes(int64(len(data)))
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0 := threadCPU()
	for b.Loop() {
		var c Counts
		for _, blk := range blocks {
			if rest := c.lines(blk); len(rest) != 0 {
				b.Fatal("tail")
			}
		}
	}
	b.ReportMetric(float64(len(data))*float64(b.N)/(threadCPU()-cpu0).Seconds()/1e9, "GB/cpu-s")
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
				if _, err := Reader(bytes.NewReader(data), w, 0); err != nil {
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
	a, _ := Reader(bytes.NewReader(buf.Bytes()), 1, 0)
	b, _ := Reader(bytes.NewReader(cut), 1, 0)
	if !maps.Equal(a.Map(), b.Map()) || a.Skipped != b.Skipped {
		t.Fatalf("counts differ after cut: %v %v", a.Map(), b.Map())
	}
}

func TestReaderAt(t *testing.T) {
	var buf bytes.Buffer
	taxigen.Write(&buf, taxigen.Era2010, 200_000, 9)
	inputs := append([]string{buf.String()}, slices.Collect(maps.Values(cases))...)
	for _, in := range inputs {
		want, wantSkipped := reference([]byte(in))
		for _, block := range []int{1, 2, 3, 7, 100, 4096, 0} {
			for _, w := range []int{1, 3} {
				got, err := ReaderAt(strings.NewReader(in), int64(len(in)), w, block)
				if err != nil || !maps.Equal(got.Map(), want) || got.Skipped != wantSkipped {
					t.Fatalf("block %d workers %d input %.200q: got %v skipped %d (%v), want %v skipped %d",
						block, w, in, got.Map(), got.Skipped, err, want, wantSkipped)
				}
			}
		}
	}
}
