package countpass

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"

	"ec2kit/internal/cli"
	"ec2kit/internal/cloudtest"
	"ec2kit/internal/count"
	"ec2kit/internal/count/taxigen"
	"ec2kit/internal/nodejob"
	"ec2kit/internal/s3stream"
)

func taxi(era taxigen.Era, size int64, seed uint64) []byte {
	var b bytes.Buffer
	taxigen.Write(&b, era, size, seed)
	return b.Bytes()
}

// expect is the result file a CSV must give, computed by the kernel's own reader with
// one worker (the kernel is checked against a plain implementation in its own tests).
func expect(t *testing.T, csv []byte) string {
	res, err := count.Reader(bytes.NewReader(csv), count.Passengers, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	res.WriteTo(&b)
	return b.String()
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func zstded(b []byte) []byte {
	w, _ := zstd.NewWriter(nil)
	return w.EncodeAll(b, nil)
}

type pq struct {
	VendorID       int64    `parquet:"VendorID"`
	Pickup         int64    `parquet:"tpep_pickup_datetime"`
	Dropoff        int64    `parquet:"tpep_dropoff_datetime"`
	PassengerCount *float64 `parquet:"passenger_count,optional"`
	TripDistance   float64  `parquet:"trip_distance"`
}

// pqOtherOrder has passenger_count 3rd, as the demo's (and some published) files do.
type pqOtherOrder struct {
	VendorID       int64    `parquet:"VendorID"`
	Pickup         int64    `parquet:"tpep_pickup_datetime"`
	PassengerCount *float64 `parquet:"passenger_count,optional"`
	TripDistance   float64  `parquet:"trip_distance"`
	Total          float64  `parquet:"total_amount"`
}

// parquetObject returns a Parquet file and its expected result.
func parquetObject(t *testing.T, otherOrder bool) ([]byte, string) {
	var rows []pq
	var other []pqOtherOrder
	n := map[string]int{}
	for i := range 20000 {
		d := float64(i % 4)
		p, k := &d, fmt.Sprint(i%4)
		if i%9 == 0 {
			p, k = nil, ""
		}
		rows = append(rows, pq{2, int64(i), int64(i), p, 3})
		other = append(other, pqOtherOrder{2, int64(i), p, 3, 9})
		n[k]++
	}
	var buf bytes.Buffer
	if err := parquet.Write(&buf, rows); err != nil {
		t.Fatal(err)
	}
	if otherOrder {
		buf.Reset()
		if err := parquet.Write(&buf, other); err != nil {
			t.Fatal(err)
		}
	}
	var keys []string
	for k := range n {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var want strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&want, "%s,%d\n", k, n[k])
	}
	return buf.Bytes(), want.String()
}

func TestFilter(t *testing.T) {
	dir := t.TempDir()
	csv := taxi(taxigen.Era2010, 500_000, 1)
	os.WriteFile(filepath.Join(dir, "a.csv.gz"), gzipped(csv), 0o644)
	pqb, pqWant := parquetObject(t, false)
	os.WriteFile(filepath.Join(dir, "b"), pqb, 0o644)
	for _, c := range []struct {
		files []string
		stdin []byte
		want  string
	}{
		{nil, csv, expect(t, csv)},
		{nil, zstded(csv), expect(t, csv)},
		{nil, pqb, pqWant},
		{[]string{filepath.Join(dir, "a.csv.gz")}, nil, expect(t, csv)},
		{[]string{filepath.Join(dir, "b")}, nil, pqWant},
	} {
		var out bytes.Buffer
		if err := Run(context.Background(), Options{Files: c.files}, bytes.NewReader(c.stdin), &out); err != nil {
			t.Fatal(err)
		}
		if out.String() != c.want {
			t.Fatalf("%v: got\n%s\nwant\n%s", c.files, out.String(), c.want)
		}
	}
}

// session runs countpass with keys fed through a pipe and returns its protocol lines.
type session struct {
	in   *io.PipeWriter
	out  *bufio.Scanner
	done chan error
}

func start(o Options) *session {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	s := &session{in: inW, out: bufio.NewScanner(outR), done: make(chan error, 1)}
	go func() {
		err := Run(context.Background(), o, inR, outW)
		outW.Close()
		s.done <- err
	}()
	return s
}

// send writes keys to countpass's stdin, then closes it when last. It does not wait: the
// test must read countpass's output meanwhile, or both would block on full pipes.
func (s *session) send(last bool, keys ...string) {
	go func() {
		for _, k := range keys {
			fmt.Fprintln(s.in, k)
		}
		if last {
			s.in.Close()
		}
	}()
}

func (s *session) next(t *testing.T) []string {
	t.Helper()
	for s.out.Scan() {
		if f := strings.Split(s.out.Text(), "\t"); f[0] != "progress" {
			return f
		}
	}
	t.Fatal("countpass ended early")
	return nil
}

func TestKeys(t *testing.T) {
	csv15 := taxi(taxigen.Era2015, 3_000_000, 2)
	csv10 := taxi(taxigen.Era2010, 1_000_000, 3)
	gz := gzipped(csv10)
	pqb, pqWant := parquetObject(t, false)
	pqOther, _ := parquetObject(t, true)
	objs := map[string][]byte{
		"trip data/yellow_tripdata_2023-01.parquet": pqOther,
		"trip data/yellow_tripdata_2015-01.csv":     csv15,
		"trip data/yellow_tripdata_2012-01.csv":     gz,
		"trip data/yellow_tripdata_2013-01.csv.zst": zstded(csv10),
		"trip data/yellow_tripdata_2024-01.parquet": pqb,
		"trip data/yellow_tripdata_2011-01.csv":     gz[:len(gz)/2],
		"trip data/yellow_tripdata_binary.csv":      append([]byte("VendorID,a,b,c\n"), 0, 1, 2),
		"trip data/yellow_tripdata_empty.csv":       nil,
		"trip data/sub dir/yellow with spaces.csv":  csv10[:5000],
	}
	want := map[string]string{
		"trip data/yellow_tripdata_2015-01.csv":     expect(t, csv15),
		"trip data/yellow_tripdata_2012-01.csv":     expect(t, csv10),
		"trip data/yellow_tripdata_2013-01.csv.zst": expect(t, csv10),
		"trip data/yellow_tripdata_2024-01.parquet": pqWant,
		"trip data/yellow_tripdata_2023-01.parquet": pqWant,
		"trip data/yellow_tripdata_empty.csv":       "",
		"trip data/sub dir/yellow with spaces.csv":  expect(t, csv10[:5000]),
	}
	bad := map[string]string{
		"trip data/yellow_tripdata_2011-01.csv": "truncated",
		"trip data/yellow_tripdata_binary.csv":  "NUL byte",
		"trip data/yellow_tripdata_missing.csv": "no such key",
		"elsewhere/x.csv":                       "outside --src",
		"trip data/../x":                        "path segment",
	}
	bucket := testBucket(t, objs)
	results := t.TempDir()
	o := Options{Keys: true, Src: "s3://" + bucket + "/trip data/", Results: results, Jobs: 3,
		PartSize: 256 << 10, Streams: 3, Progress: true}
	s := start(o)
	// Keys are read as they come: the first key finishes while stdin is still open.
	s.send(false, "trip data/yellow_tripdata_2015-01.csv")
	if f := s.next(t); f[0] != "ok" || f[1] != "trip data/yellow_tripdata_2015-01.csv" || f[2] != fmt.Sprint(len(csv15)) {
		t.Fatalf("first line %q", f)
	}
	var rest []string
	for k := range want {
		if k != "trip data/yellow_tripdata_2015-01.csv" {
			rest = append(rest, k)
		}
	}
	for k := range bad {
		rest = append(rest, k)
	}
	s.send(true, rest...)
	for range rest {
		f := s.next(t)
		switch {
		case f[0] == "ok" && want[f[1]] != "":
		case f[0] == "ok" && f[1] == "trip data/yellow_tripdata_empty.csv":
		case f[0] == "err" && bad[f[1]] != "" && strings.Contains(f[3], bad[f[1]]):
		default:
			t.Errorf("unexpected line %q", f)
		}
	}
	if err := <-s.done; cli.CodeOf(err) != cli.ExitFailed {
		t.Fatalf("exit: %v", err)
	}
	for k, w := range want {
		got, err := os.ReadFile(filepath.Join(results, k))
		if err != nil || string(got) != w {
			t.Errorf("%s: got %q %v, want %q", k, got, err, w)
		}
	}
	for k := range bad {
		if _, err := os.Stat(filepath.Join(results, k)); err == nil {
			t.Errorf("%s: a failed key left a result", k)
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(results, "trip data", ".*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}

	// download then count-files gives the same results as --keys.
	data, results2 := t.TempDir(), t.TempDir()
	s = start(Options{Download: true, Src: "s3://" + bucket, Data: data, Jobs: 2})
	keys := []string{"trip data/yellow_tripdata_2012-01.csv", "trip data/yellow_tripdata_2024-01.parquet", "trip data/yellow_tripdata_2023-01.parquet", "trip data/sub dir/yellow with spaces.csv"}
	s.send(true, keys...)
	for range keys {
		if f := s.next(t); f[0] != "ok" {
			t.Fatalf("download: %q", f)
		}
	}
	if err := <-s.done; err != nil {
		t.Fatal(err)
	}
	s = start(Options{CountFiles: true, Data: data, Results: results2, Jobs: 2})
	s.send(true, append(keys, "not/there")...)
	for range len(keys) + 1 {
		if f := s.next(t); f[0] != "ok" && f[1] != "not/there" {
			t.Fatalf("count-files: %q", f)
		}
	}
	if err := <-s.done; cli.CodeOf(err) != cli.ExitFailed {
		t.Fatalf("count-files exit: %v", err)
	}
	for _, k := range keys {
		got, _ := os.ReadFile(filepath.Join(results2, k))
		if string(got) != want[k] {
			t.Errorf("download+count %s: got %q want %q", k, got, want[k])
		}
	}
}

// testBucket is a fresh bucket of the local cloud holding objs.
func testBucket(t *testing.T, objs map[string][]byte) string {
	_, b := cloudtest.Bucket(t, "countpass", objs)
	return b
}

// An object replaced while countpass reads it fails its key: never a count torn between two
// versions. Likewise an object that changed since the caller listed it.
func TestReplacedObject(t *testing.T) {
	ones := append([]byte("VendorID,a,b,passenger_count,x\n"), bytes.Repeat([]byte("1,a,b,1,x\n"), 800_000)...)
	twos := bytes.ReplaceAll(ones, []byte(",1,"), []byte(",2,"))
	s3c, bucket := cloudtest.Bucket(t, "countpass", map[string][]byte{"k.csv": ones})
	ctx := context.Background()
	c := &s3stream.Client{S3: s3c, Bucket: bucket, PartSize: 8 << 10, Streams: 1}
	w := &fromS3{o: Options{Results: t.TempDir()}, c: c}
	listed, err := c.Stat(ctx, "k.csv")
	if err != nil {
		t.Fatal(err)
	}
	replace := func() {
		if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String("k.csv"), Body: bytes.NewReader(twos)}); err != nil {
			t.Error(err)
		}
	}

	var progress atomic.Int64
	done := make(chan struct{})
	go func() { // replace it once the read is under way
		defer close(done)
		for progress.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		replace()
	}()
	_, err = w.do(ctx, nodejob.Item{Key: "k.csv", Part: -1, Size: -1}, &progress)
	<-done
	if !errors.Is(err, s3stream.ErrChanged) {
		t.Fatalf("replaced mid-read (%d of %d bytes read): %v", progress.Load(), len(ones), err)
	}
	if _, err := os.Stat(filepath.Join(w.o.Results, "k.csv")); err == nil {
		t.Fatal("a result was written")
	}
	if _, err := w.do(ctx, nodejob.Item{Key: "k.csv", Part: -1, Size: listed.Size, ETag: listed.ETag}, &progress); !errors.Is(err, s3stream.ErrChanged) {
		t.Fatalf("changed since listed: %v", err)
	}
}

// The worker returns a key's skipped rows to its caller (which totals them).
func TestWorkerSkipped(t *testing.T) {
	data, results := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(data, "k.csv"), []byte("a,b,c,d\n1,2,3,4\nshort\n\n1,2,3,\n"), 0o644)
	w := &countFiles{Options{Data: data, Results: results}}
	var progress atomic.Int64
	d, err := w.do(context.Background(), nodejob.Item{Key: "k.csv", Part: -1}, &progress)
	if err != nil || d != (stats{bytes: 30, rows: 2, skipped: 2}) {
		t.Fatalf("got %+v, %v", d, err)
	}
}

// expectCol is expect for another column.
func expectCol(t *testing.T, csv []byte, col count.Column) string {
	res, err := count.Reader(bytes.NewReader(csv), col, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	res.WriteTo(&b)
	return b.String()
}

// --field and --column count another column, in every header generation and in every
// reading path (mapped file, stream, gzip, Parquet); a header without the column is an
// error naming the file.
func TestColumns(t *testing.T) {
	dir := t.TempDir()
	pqb, pqWant := parquetObject(t, true)
	os.WriteFile(filepath.Join(dir, "p.parquet"), pqb, 0o644)
	for era := range 3 {
		csv := taxi(taxigen.Era(era), 300_000, uint64(era))
		plain, gz := filepath.Join(dir, "a.csv"), filepath.Join(dir, "a.csv.gz")
		os.WriteFile(plain, csv, 0o644)
		os.WriteFile(gz, gzipped(csv), 0o644)
		payment := expectCol(t, csv, count.Column{Field: 12})
		if payment == expect(t, csv) {
			t.Fatal("the test needs a column that differs from the 4th")
		}
		for _, c := range []struct {
			o     Options
			stdin []byte
			want  string
		}{
			{Options{Files: []string{plain}, Column: "PAYMENT_TYPE"}, nil, payment},
			{Options{Files: []string{gz}, Column: "payment_type"}, nil, payment},
			{Options{Column: "Payment_Type"}, csv, payment},
			{Options{Files: []string{plain}, Field: 12}, nil, payment},
			{Options{Field: 12}, csv, payment},
			{Options{Files: []string{plain}, Field: 1}, nil, expectCol(t, csv, count.Column{Field: 1})},
			{Options{Files: []string{plain}, Column: "passenger_count"}, nil, expect(t, csv)},
			{Options{Files: []string{filepath.Join(dir, "p.parquet")}, Column: "Passenger_Count"}, nil, pqWant},
			{Options{Files: []string{filepath.Join(dir, "p.parquet")}, Field: 4}, nil, pqWant},
		} {
			var out bytes.Buffer
			if err := Run(context.Background(), c.o, bytes.NewReader(c.stdin), &out); err != nil || out.String() != c.want {
				t.Fatalf("era %d %+v: %v, got\n%.200s\nwant\n%.200s", era, c.o, err, out.String(), c.want)
			}
		}
	}
	for _, o := range []Options{
		{Files: []string{filepath.Join(dir, "a.csv")}, Column: "tip"},
		{Files: []string{filepath.Join(dir, "a.csv.gz")}, Column: "tip"},
		{Files: []string{filepath.Join(dir, "p.parquet")}, Column: "payment_type"},
	} {
		err := Run(context.Background(), o, nil, io.Discard)
		if cli.CodeOf(err) != cli.ExitData || !errors.Is(err, count.ErrNoColumn) || !strings.Contains(err.Error(), o.Files[0]) {
			t.Errorf("%+v: %v", o, err)
		}
	}
	for _, o := range []Options{{Field: -1}, {Field: 2, Column: "x"}, {Download: true, Src: "s3://bkt", Column: "x"}} {
		if err := Run(context.Background(), o, nil, io.Discard); cli.CodeOf(err) != cli.ExitUsage {
			t.Errorf("%+v: %v", o, err)
		}
	}
}

// --column over S3 keys: each object's own header decides; an object without the column
// fails with its key named, the others finish.
func TestKeysColumn(t *testing.T) {
	csv09, csv15 := taxi(taxigen.Era2009, 200_000, 5), taxi(taxigen.Era2015, 200_000, 6)
	pqb, _ := parquetObject(t, true)
	bucket := testBucket(t, map[string][]byte{"a.csv": csv09, "b.csv.gz": gzipped(csv15), "c.parquet": pqb})
	results := t.TempDir()
	s := start(Options{Keys: true, Src: "s3://" + bucket, Results: results, Jobs: 2, Column: "payment_type"})
	s.send(true, "a.csv", "b.csv.gz", "c.parquet")
	lines := map[string][]string{}
	for range 3 {
		f := s.next(t)
		lines[f[1]] = f
	}
	if err := <-s.done; cli.CodeOf(err) != cli.ExitFailed {
		t.Fatalf("exit: %v", err)
	}
	if f := lines["c.parquet"]; f[0] != "err" || !strings.Contains(f[3], "payment_type") {
		t.Fatalf("object without the column: %q", f)
	}
	for k, csv := range map[string][]byte{"a.csv": csv09, "b.csv.gz": csv15} {
		got, _ := os.ReadFile(filepath.Join(results, k))
		if lines[k][0] != "ok" || string(got) != expectCol(t, csv, count.Column{Field: 12}) {
			t.Errorf("%s: %q, result %q", k, lines[k], got)
		}
	}
}

// A file and the same bytes on stdin follow one rule: a 10 MB line is refused by both.
func TestLongLineFileAndStdin(t *testing.T) {
	in := append(taxi(taxigen.Era2015, 100_000, 1), bytes.Repeat([]byte("x"), 10<<20)...)
	in = append(in, "\n1,a,b,1,x\n"...)
	path := filepath.Join(t.TempDir(), "long.csv")
	os.WriteFile(path, in, 0o644)
	for _, c := range []struct {
		files []string
		stdin []byte
	}{{[]string{path}, nil}, {nil, in}, {nil, gzipped(in)}} {
		err := Run(context.Background(), Options{Files: c.files}, bytes.NewReader(c.stdin), io.Discard)
		if !errors.Is(err, count.ErrLongLine) || cli.CodeOf(err) != cli.ExitData {
			t.Errorf("files %v, %d bytes on stdin: %v", c.files, len(c.stdin), err)
		}
	}
}

func TestStreamsFor(t *testing.T) {
	for _, c := range []struct {
		mem  int64
		jobs int
		want int
	}{{0, 8, s3stream.MaxStreams}, {64 << 30, 8, s3stream.MaxStreams}, {1 << 30, 8, 15}, {256 << 20, 8, 3}, {1 << 30, 1, s3stream.MaxStreams}} {
		if got := streamsFor(c.mem, c.jobs); got != c.want {
			t.Errorf("streamsFor(%d MiB, %d jobs) = %d, want %d", c.mem>>20, c.jobs, got, c.want)
		}
	}
}
