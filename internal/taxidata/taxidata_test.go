package taxidata

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/parquet-go/parquet-go"

	"ec2kit/internal/count/taxigen"
)

func TestPlanShape(t *testing.T) {
	objs := Plan(1<<30, 1)
	csv, gz, plainNamedGz, pq, eras := 0, 0, 0, 0, map[taxigen.Era]bool{}
	for _, o := range objs {
		if !o.Yellow() {
			continue
		}
		switch {
		case o.Parquet:
			pq++
		default:
			csv++
			eras[o.Era] = true
		}
		if o.Gzip {
			gz++
			if !strings.HasSuffix(o.Name, ".gz") {
				plainNamedGz++
			}
		}
	}
	if csv < 24 || gz < 2 || plainNamedGz < 1 || pq != 1 || len(eras) != 3 {
		t.Fatalf("csv %d gzip %d (%d without .gz) parquet %d eras %d", csv, gz, plainNamedGz, pq, len(eras))
	}
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	objs := Plan(2<<20, 7)
	if err := Write(objs, filepath.Join(dir, "data"), filepath.Join(dir, "pq.csv")); err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		b, err := os.ReadFile(filepath.Join(dir, "data", o.Name))
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case o.Gzip:
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("%s: %v", o.Name, err)
			}
			if b, err = io.ReadAll(zr); err != nil {
				t.Fatalf("%s: %v", o.Name, err)
			}
		case o.Parquet:
			continue
		}
		if !bytes.HasPrefix(b, []byte(o.Era.Header())) || int64(len(b)) < o.Size {
			t.Fatalf("%s: %d bytes, header %q", o.Name, len(b), b[:40])
		}
	}
	// The Parquet object reads back with the counts written beside it.
	f, err := os.Open(filepath.Join(dir, "data", "yellow_tripdata_2023-01.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := parquet.Read[parquetRow](f, mustSize(t, f))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, r := range rows {
		k := ""
		if r.PassengerCount != nil {
			k = strconv.FormatInt(*r.PassengerCount, 10)
		}
		got[k]++
	}
	want, _ := os.ReadFile(filepath.Join(dir, "pq.csv"))
	for _, line := range strings.Split(strings.TrimSpace(string(want)), "\n") {
		k, v, _ := strings.Cut(line, ",")
		if n, _ := strconv.ParseInt(v, 10, 64); got[k] != n {
			t.Fatalf("parquet %q: read %d, counts file says %d", k, got[k], n)
		}
	}
}

func mustSize(t *testing.T, f *os.File) int64 {
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}
