package decode

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"

	"ec2kit/internal/count"
)

const sample = "VendorID,a,b,passenger_count,x\r\n\r\n1,t,t,1,x\r\n1,t,t,2,x\r\n1,t,t,,x\r\n1,t,t,1"

var sampleCounts = map[string]uint64{"1": 2, "2": 1, "": 1}

func gz(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func zst(t testing.TB, b []byte) []byte {
	w, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	return w.EncodeAll(b, nil)
}

// countStream is what countpass does with a CSV stream.
func countStream(data []byte) (map[string]uint64, error) {
	f := Detect(data)
	r, err := CSVReader(f, bytes.NewReader(data), count.Passengers)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	res, err := count.Reader(r, count.Passengers, 1, 0)
	if err != nil {
		return nil, err
	}
	return res.Map(), nil
}

func TestStreams(t *testing.T) {
	two := append(gz(t, []byte(sample[:40])), gz(t, []byte(sample[40:]))...) // multi-member gzip
	for name, data := range map[string][]byte{
		"plain": []byte(sample), "gzip": gz(t, []byte(sample)), "zstd": zst(t, []byte(sample)),
		"gzip members": two,
	} {
		got, err := countStream(data)
		if err != nil || !maps.Equal(got, sampleCounts) {
			t.Errorf("%s: got %v %v", name, got, err)
		}
	}
}

func TestDetect(t *testing.T) {
	for in, want := range map[string]Format{
		"": CSV, "a,b": CSV, "\x1f\x8b\x08": Gzip, "\x28\xb5\x2f\xfd": Zstd, "PAR1xx": Parquet,
	} {
		if got := Detect([]byte(in)); got != want {
			t.Errorf("Detect(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestBadStreams(t *testing.T) {
	big := gz(t, bytes.Repeat([]byte(sample+"\n"), 5000))
	for name, c := range map[string]struct {
		data []byte
		want string
	}{
		"truncated gzip":  {big[:len(big)/2], "gzip: truncated"},
		"truncated zstd":  {zst(t, bytes.Repeat([]byte(sample+"\n"), 5000))[:300], "zstd"},
		"corrupt gzip":    {append(gz(t, []byte(sample))[:12], bytes.Repeat([]byte{0xff}, 40)...), "gzip"},
		"binary":          {[]byte("a,b,c,d\n\x00\x01\x02"), "NUL byte"},
		"few header cols": {[]byte("just some text\nmore\n"), "fewer than 4"},
		"no newline":      {bytes.Repeat([]byte("x,"), SniffSize), "no line end"},
	} {
		_, err := countStream(c.data)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error with %q", name, err, c.want)
		}
	}
	for _, ok := range []string{"", "a,b,c,d", "a,b,c,d\n"} {
		if _, err := countStream([]byte(ok)); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}

type tripDouble struct {
	VendorID       int64    `parquet:"VendorID"`
	PassengerCount *float64 `parquet:"passenger_count,optional"`
	TripDistance   float64  `parquet:"trip_distance"`
}

type tripInt struct {
	VendorID       int32  `parquet:"vendor_id"`
	PassengerCount *int64 `parquet:"Passenger_Count,optional"`
}

func writeParquet[T any](t *testing.T, rows []T) string {
	path := filepath.Join(t.TempDir(), "f.parquet")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	// Small pages and row groups so the reader crosses page and group boundaries.
	w := parquet.NewGenericWriter[T](f, parquet.PageBufferSize(256), parquet.MaxRowsPerRowGroup(1000))
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return path
}

func parquetCounts(t *testing.T, path string) map[string]uint64 {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	head := make([]byte, HeadSize)
	io.ReadFull(f, head)
	if Detect(head) != Parquet {
		t.Fatalf("not detected as parquet: %q", head)
	}
	c, err := ParquetCounts(f, st.Size(), count.Passengers)
	if err != nil {
		t.Fatal(err)
	}
	return c.Map()
}

func TestParquet(t *testing.T) {
	var dbl []tripDouble
	var ints []tripInt
	want := map[string]uint64{}
	for i := range 5000 {
		d := float64(i % 7)
		p := &d
		key := string(rune('0' + i%7))
		if i%13 == 0 {
			p, key = nil, ""
		} else if i%101 == 0 {
			d, key = 2.5, "2.5"
		}
		dbl = append(dbl, tripDouble{VendorID: 1, PassengerCount: p, TripDistance: 1.5})
		var ip *int64
		if p != nil && *p == float64(int64(*p)) {
			n := int64(*p)
			ip = &n
		}
		if ip != nil || p == nil {
			ints = append(ints, tripInt{VendorID: 2, PassengerCount: ip})
		}
		want[key]++
	}
	dblPath := writeParquet(t, dbl)
	if got := parquetCounts(t, dblPath); !maps.Equal(got, want) {
		t.Fatalf("double column: got %v want %v", got, want)
	}
	// Other columns: by name, or by the field of the CSV layout they stand in.
	f, _ := os.Open(dblPath)
	defer f.Close()
	st, _ := f.Stat()
	for col, want := range map[count.Column]string{
		{Name: "VENDORID"}: "map[1:5000]", {Field: 1}: "map[1:5000]", {Field: 5}: "map[1.5:5000]",
		{Field: 2}: "error", {Field: 6}: "error", {Name: "tip_amount"}: "error",
	} {
		c, err := ParquetCounts(f, st.Size(), col)
		got := "error"
		if err == nil {
			got = fmt.Sprint(c.Map())
		} else if !errors.Is(err, count.ErrNoColumn) {
			t.Errorf("%v: %v", col, err)
		}
		if got != want {
			t.Errorf("%v: got %s, want %s", col, got, want)
		}
	}
	delete(want, "2.5")
	if got := parquetCounts(t, writeParquet(t, ints)); !maps.Equal(got, want) {
		t.Fatalf("int column: got %v want %v", got, want)
	}
}

func TestParquetErrors(t *testing.T) {
	type other struct {
		A int64 `parquet:"a"`
	}
	path := writeParquet(t, []other{{1}})
	f, _ := os.Open(path)
	defer f.Close()
	st, _ := f.Stat()
	if _, err := ParquetCounts(f, st.Size(), count.Passengers); !errors.Is(err, count.ErrNoColumn) || !strings.Contains(err.Error(), "passenger_count") {
		t.Fatalf("got %v", err)
	}
	if _, err := ParquetCounts(bytes.NewReader([]byte("PAR1garbage")), 11, count.Passengers); err == nil {
		t.Fatal("garbage parquet accepted")
	}
}

type tripFull struct {
	VendorID       int64    `parquet:"VendorID"`
	Pickup         int64    `parquet:"tpep_pickup_datetime"`
	Dropoff        int64    `parquet:"tpep_dropoff_datetime"`
	PassengerCount *float64 `parquet:"passenger_count,optional"`
	TripDistance   float64  `parquet:"trip_distance"`
	Fare           float64  `parquet:"fare_amount"`
}

// tripOtherOrder has the published files' columns in an order of its own (passenger_count
// 3rd, no dropoff time), as the demo's Parquet object has.
type tripOtherOrder struct {
	Fare           float64  `parquet:"fare_amount"`
	VendorID       int64    `parquet:"vendorid"`
	Pickup         int64    `parquet:"tpep_pickup_datetime"`
	PassengerCount *float64 `parquet:"Passenger_Count,optional"`
	TripDistance   float64  `parquet:"trip_distance"`
}

func TestParquetCSV(t *testing.T) {
	var full []tripFull
	var other []tripOtherOrder
	for i := range 3000 {
		d := float64(i % 5)
		p := &d
		if i%11 == 0 {
			p = nil
		}
		full = append(full, tripFull{1, int64(i), int64(i + 60), p, 1.25, 7})
		other = append(other, tripOtherOrder{7, 1, int64(i), p, 1.25})
	}
	for _, c := range []struct{ path, header, first string }{
		{writeParquet(t, full), "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance", "1,0,60,,1.25"},
		{writeParquet(t, other), "vendorid,tpep_pickup_datetime,tpep_dropoff_datetime,Passenger_Count,trip_distance", "1,0,,,1.25"},
	} {
		f, _ := os.Open(c.path)
		defer f.Close()
		st, _ := f.Stat()
		var buf bytes.Buffer
		n, err := ParquetCSV(f, st.Size(), &buf)
		if err != nil || n != 3001 {
			t.Fatalf("%d lines, %v", n, err)
		}
		lines := strings.SplitN(buf.String(), "\n", 3)
		if lines[0] != c.header || lines[1] != c.first {
			t.Fatalf("got %q", lines[:2])
		}
		res, err := count.Reader(&buf, count.Passengers, 1, 0)
		if err != nil || !maps.Equal(res.Map(), parquetCounts(t, c.path)) {
			t.Fatalf("%s: counts of the CSV %v differ from the Parquet's %v (%v)", c.header, res.Map(), parquetCounts(t, c.path), err)
		}
	}
}

// countingReaderAt counts the reads that reach the file.
type countingReaderAt struct {
	ra    io.ReaderAt
	reads atomic.Int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	c.reads.Add(1)
	return c.ra.ReadAt(p, off)
}

// TestParquetReadsAhead checks that counting a column reads the file in two rounds: its
// tail with the footer, then every row group's chunk of the column at once (on S3 each
// read waits for its first byte).
func TestParquetReadsAhead(t *testing.T) {
	var rows []tripInt
	for i := range 5000 { // 5 row groups
		n := int64(i % 4)
		rows = append(rows, tripInt{VendorID: 1, PassengerCount: &n})
	}
	data, err := os.ReadFile(writeParquet(t, rows))
	if err != nil {
		t.Fatal(err)
	}
	src := &countingReaderAt{ra: bytes.NewReader(data)}
	c, err := ParquetCounts(src, int64(len(data)), count.Passengers)
	if err != nil || c.Rows != 5000 {
		t.Fatalf("counted %d rows, %v", c.Rows, err)
	}
	if n := src.reads.Load(); n != 1+5 {
		t.Errorf("%d reads of the file, want 6: the tail, then a chunk per row group", n)
	}
}

// recordingReaderAt notes the byte ranges read.
type recordingReaderAt struct {
	ra    io.ReaderAt
	mu    sync.Mutex
	reads [][2]int64
}

func (r *recordingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	r.reads = append(r.reads, [2]int64{off, off + int64(len(p))})
	r.mu.Unlock()
	return r.ra.ReadAt(p, off)
}

// TestParquetKnownBytes checks that the bytes countpass already holds (the head it found
// the format in, the tail read beside it) are not read again, and that a column chunk
// larger than fetchPart is read in parts, all at once.
func TestParquetKnownBytes(t *testing.T) {
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[tripInt](&buf) // one row group
	rows := make([]tripInt, 300_000)
	for i := range rows {
		n := int64(i * 7919 % 1000003) // spread, so the chunk stays large
		rows[i] = tripInt{VendorID: int32(i), PassengerCount: &n}
	}
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	size := int64(len(data))
	f, err := parquet.OpenFile(bytes.NewReader(data), size)
	if err != nil {
		t.Fatal(err)
	}
	m := f.Metadata().RowGroups[0].Columns[1].MetaData
	start, end := chunkStart(m), chunkStart(m)+m.TotalCompressedSize
	if size <= FooterGuess || end-start <= 2*fetchPart {
		t.Fatalf("a %d-byte file with a %d-byte chunk is too small for this test", size, end-start)
	}

	src := &recordingReaderAt{ra: bytes.NewReader(data)}
	known := Known(src, Span{0, data[:HeadSize]}, Span{size - FooterGuess, data[size-FooterGuess:]})
	c, err := ParquetCounts(known, size, count.Passengers)
	if err != nil || c.Rows != uint64(len(rows)) {
		t.Fatalf("counted %d rows, %v", c.Rows, err)
	}
	want := int((end - start + fetchPart - 1) / fetchPart)
	if len(src.reads) != want {
		t.Errorf("%d reads %v, want the chunk's %d parts", len(src.reads), src.reads, want)
	}
	for _, r := range src.reads {
		if r[0] < start || r[1] > end || r[1]-r[0] > fetchPart {
			t.Errorf("read [%d, %d) is not a part of the chunk [%d, %d)", r[0], r[1], start, end)
		}
	}
}

// strictReaderAt fails the test on a read the file cannot satisfy: what would be a negative
// or out-of-range Range header on S3.
type strictReaderAt struct {
	t    *testing.T
	data []byte
}

func (s strictReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(s.data)) {
		s.t.Fatalf("read of %d bytes at offset %d of a %d-byte file", len(p), off, len(s.data))
	}
	return copy(p, s.data[off:]), nil
}

func smallParquet(t testing.TB) []byte {
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[tripDouble](&buf, parquet.MaxRowsPerRowGroup(7))
	for i := range 20 {
		d := float64(i % 3)
		w.Write([]tripDouble{{VendorID: 1, PassengerCount: &d, TripDistance: 2}})
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestParquetCorruptFooter(t *testing.T) {
	good := smallParquet(t)
	bigFooter := bytes.Clone(good)
	binary.LittleEndian.PutUint32(bigFooter[len(good)-8:], uint32(len(good))) // longer than the file
	for name, data := range map[string][]byte{
		"footer longer than the file": bigFooter,
		"too short":                   []byte("PAR1PAR1"),
		"no magic at the end":         good[:len(good)-1],
	} {
		if _, err := ParquetCounts(strictReaderAt{t, data}, int64(len(data)), count.Passengers); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: got %v, want ErrCorrupt", name, err)
		}
	}
}

// FuzzParquet feeds corrupt Parquet files to the reader: it may fail, but never panics nor
// reads outside the file.
func FuzzParquet(f *testing.F) {
	good := smallParquet(f)
	f.Add(good, uint16(0), byte(0))
	f.Fuzz(func(t *testing.T, data []byte, at uint16, b byte) {
		if len(data) > 0 {
			data = bytes.Clone(data)
			data[int(at)%len(data)] ^= b
		}
		ParquetCounts(strictReaderAt{t, data}, int64(len(data)), count.Passengers)
		ParquetCSV(strictReaderAt{t, data}, int64(len(data)), io.Discard)
	})
}
