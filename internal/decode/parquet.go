package decode

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/parquet-go/parquet-go"

	"ec2kit/internal/count"
)

// Column is the Parquet column countpass counts (matched case-insensitively: the 2009 CSV
// header spells it Passenger_Count).
const Column = "passenger_count"

// ParquetCounts counts the values of the passenger_count column of the Parquet file in ra.
// A null is the key "", like an empty CSV field. Numbers are written as a CSV writer would
// print them, so the keys of Parquet and CSV objects meet: an integral double 1.0 is "1".
func ParquetCounts(ra io.ReaderAt, size int64) (*count.Counts, error) {
	f, err := open(ra, size)
	if err != nil {
		return nil, err
	}
	col := -1
	for _, fl := range f.Schema().Fields() {
		if strings.EqualFold(fl.Name(), Column) {
			if leaf, ok := f.Schema().Lookup(fl.Name()); ok {
				col = leaf.ColumnIndex
			}
		}
	}
	if col < 0 {
		return nil, fmt.Errorf("parquet: no %s column", Column)
	}
	c := &count.Counts{}
	buf := make([]parquet.Value, 4096)
	var key []byte
	for _, rg := range f.RowGroups() {
		pages := rg.ColumnChunks()[col].Pages()
		for {
			p, err := pages.ReadPage()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				pages.Close()
				return nil, fmt.Errorf("parquet: %w", err)
			}
			vr := p.Values()
			for {
				n, err := vr.ReadValues(buf)
				for _, v := range buf[:n] {
					key = AppendKey(key[:0], v)
					c.Add(key, 1)
				}
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					pages.Close()
					return nil, fmt.Errorf("parquet: %w", err)
				}
			}
			parquet.Release(p)
		}
		pages.Close()
	}
	return c, nil
}

// AppendKey appends the text of v as it would appear in a CSV file: null is empty,
// integral floats have no ".0", byte arrays are their raw bytes.
func AppendKey(b []byte, v parquet.Value) []byte {
	if v.IsNull() {
		return b
	}
	switch v.Kind() {
	case parquet.Int32:
		return strconv.AppendInt(b, int64(v.Int32()), 10)
	case parquet.Int64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case parquet.Float, parquet.Double:
		d := v.Double()
		if v.Kind() == parquet.Float {
			d = float64(v.Float())
		}
		if d == math.Trunc(d) && math.Abs(d) < 1<<53 {
			return strconv.AppendInt(b, int64(d), 10)
		}
		return strconv.AppendFloat(b, d, 'f', -1, 64)
	case parquet.ByteArray, parquet.FixedLenByteArray:
		return append(b, v.ByteArray()...)
	}
	return append(b, v.String()...)
}

func open(ra io.ReaderAt, size int64) (*parquet.File, error) {
	f, err := parquet.OpenFile(ra, size,
		// The default 4 KiB reads would be 4 KiB GETs on S3; column chunks are megabytes.
		parquet.ReadBufferSize(4<<20),
		parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	return f, nil
}

// ParquetCSV writes the first n columns of the Parquet file in ra to w as CSV: a header of
// column names, then one line per row, values written as AppendKey does (timestamps stay
// the integers Parquet stores). It returns the lines written, header included.
func ParquetCSV(ra io.ReaderAt, size int64, w io.Writer, n int) (int64, error) {
	f, err := open(ra, size)
	if err != nil {
		return 0, err
	}
	var line []byte
	for i, leaf := range f.Schema().Columns()[:min(n, len(f.Schema().Columns()))] {
		if i > 0 {
			line = append(line, ',')
		}
		line = append(line, strings.Join(leaf, ".")...)
	}
	if _, err := w.Write(append(line, '\n')); err != nil {
		return 0, err
	}
	lines := int64(1)
	rows := make([]parquet.Row, 1024)
	for _, rg := range f.RowGroups() {
		rr := rg.Rows()
		for {
			k, err := rr.ReadRows(rows)
			line = line[:0]
			for _, row := range rows[:k] {
				for i, v := range row {
					if v.Column() >= n {
						break
					}
					if i > 0 {
						line = append(line, ',')
					}
					line = AppendKey(line, v)
				}
				line = append(line, '\n')
			}
			lines += int64(k)
			if _, werr := w.Write(line); werr != nil {
				rr.Close()
				return lines, werr
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				rr.Close()
				return lines, fmt.Errorf("parquet: %w", err)
			}
		}
		rr.Close()
	}
	return lines, nil
}
