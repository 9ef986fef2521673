package decode

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
	"golang.org/x/sync/errgroup"

	"ec2kit/internal/count"
)

// Column is the Parquet column countpass counts (matched case-insensitively: the 2009 CSV
// header spells it Passenger_Count).
const Column = "passenger_count"

// ParquetCounts counts the values of column sel of the Parquet file in ra: the column of
// that name (case-insensitively), or for a field position, the column of that field of the
// Layout. A null is the key "", like an empty CSV field. Numbers are written as a CSV writer
// would print them, so the keys of Parquet and CSV objects meet: an integral double 1.0 is
// "1".
func ParquetCounts(ra io.ReaderAt, size int64, sel count.Column) (_ *count.Counts, err error) {
	defer corruptPanic(&err)
	pf := prefetch(ra)
	f, err := open(pf, size)
	if err != nil {
		return nil, err
	}
	names := []string{sel.Name}
	if sel.Name == "" {
		if sel.Field < 1 || sel.Field > len(Layout) {
			return nil, fmt.Errorf("parquet: %w for field %d: Parquet columns are matched to the first %d CSV fields by name; choose one by name",
				count.ErrNoColumn, sel.Field, len(Layout))
		}
		names = Layout[sel.Field-1]
	}
	col, _ := column(f, names...)
	if col < 0 {
		return nil, fmt.Errorf("parquet: %w: %s", count.ErrNoColumn, strings.Join(names, " or "))
	}
	var chunks [][2]int64
	for _, rg := range f.Metadata().RowGroups {
		m := rg.Columns[col].MetaData
		start := chunkStart(m)
		chunks = append(chunks, [2]int64{start, start + m.TotalCompressedSize})
	}
	if err := pf.fetch(chunks); err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
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

// ErrCorrupt reports a Parquet file whose footer or metadata cannot be right.
var ErrCorrupt = errors.New("parquet: corrupt file")

// open opens a Parquet file after checking what the reader trusts blindly: the footer
// length (a wrong one means a read at a negative offset, and an allocation of up to 4 GiB)
// and every column chunk's byte range. Reads outside [0, size) are refused besides, so a
// corrupt file never turns into a negative or out-of-range request on S3.
func open(ra io.ReaderAt, size int64) (*parquet.File, error) {
	const magic = 4 // "PAR1" at both ends
	if size < 2*magic+4 {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrCorrupt, size)
	}
	if pf, ok := ra.(*prefetched); ok && !pf.has(size-8, size) {
		// The tail, footer included (unless it is a large one), in one read.
		if err := pf.fetch([][2]int64{{max(0, size-FooterGuess), size}}); err != nil {
			return nil, fmt.Errorf("parquet: %w", err)
		}
	}
	var tail [8]byte
	if _, err := ra.ReadAt(tail[:], size-8); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	if string(tail[4:]) != "PAR1" {
		return nil, fmt.Errorf("%w: no PAR1 at the end (encrypted or truncated?)", ErrCorrupt)
	}
	footer := int64(binary.LittleEndian.Uint32(tail[:4]))
	dataEnd := size - 8 - footer // the column chunks lie in [magic, dataEnd)
	if dataEnd < magic {
		return nil, fmt.Errorf("%w: footer of %d bytes in a %d-byte file", ErrCorrupt, footer, size)
	}
	f, err := parquet.OpenFile(bounded{ra, size}, size,
		// The default 4 KiB reads would be 4 KiB GETs on S3; column chunks are megabytes.
		parquet.ReadBufferSize(4<<20),
		parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	for i, rg := range f.Metadata().RowGroups {
		for j, c := range rg.Columns {
			m := c.MetaData
			start := chunkStart(m)
			if start < magic || m.TotalCompressedSize < 0 || m.TotalCompressedSize > dataEnd-start {
				return nil, fmt.Errorf("%w: row group %d column %d claims bytes %d+%d of a file whose data ends at %d",
					ErrCorrupt, i, j, start, m.TotalCompressedSize, dataEnd)
			}
		}
	}
	return f, nil
}

// chunkStart is where a column chunk's bytes begin: its dictionary page, if any, comes first.
func chunkStart(m format.ColumnMetaData) int64 {
	if m.DictionaryPageOffset != 0 {
		return min(m.DataPageOffset, m.DictionaryPageOffset)
	}
	return m.DataPageOffset
}

// FooterGuess is how much of a file's end is read at once to find its footer: the taxi
// files' footers take a few KiB to a few tens.
const FooterGuess = 256 << 10

// fetchPart is the most one read of a prefetch asks for: a column chunk of several MiB in
// one GET would come at one S3 connection's rate, in parts it comes at several.
const fetchPart = 1 << 20

// Span is bytes of a file already read, at offset Off.
type Span struct {
	Off int64
	B   []byte
}

// Known returns ra with some of its bytes already read: reads of them are served from
// memory. countpass has an object's first bytes from finding its format (the Parquet
// reader checks them), and may have read its tail beside them.
func Known(ra io.ReaderAt, spans ...Span) io.ReaderAt {
	return &prefetched{ra: ra, spans: spans}
}

// prefetch is ra as a prefetched reader, keeping what Known already holds.
func prefetch(ra io.ReaderAt) *prefetched {
	if pf, ok := ra.(*prefetched); ok {
		return pf
	}
	return &prefetched{ra: ra}
}

// prefetched serves reads from ranges fetched ahead of them, several at once. On S3 every
// read is a request that waits for its first byte (tens of milliseconds), and the Parquet
// reader reads one thing after another: the tail, the footer, then each row group's column
// chunk. Fetched together, the chunks cost one wait instead of one per row group. Reads
// outside what was fetched go to the source.
type prefetched struct {
	ra    io.ReaderAt
	spans []Span
}

// fetch reads every range [start, end) at once, in reads of at most fetchPart, a few in
// flight.
func (p *prefetched) fetch(ranges [][2]int64) error {
	spans := make([]Span, len(ranges))
	var g errgroup.Group
	g.SetLimit(16)
	for i, r := range ranges {
		b := make([]byte, r[1]-r[0])
		spans[i] = Span{r[0], b}
		for at := int64(0); at < int64(len(b)); at += fetchPart {
			g.Go(func() error {
				part := b[at:min(at+fetchPart, int64(len(b)))]
				if _, err := p.ra.ReadAt(part, r[0]+at); err != nil && !errors.Is(err, io.EOF) {
					return err
				}
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return err
	}
	p.spans = append(p.spans, spans...)
	return nil
}

// has reports whether bytes [start, end) are held.
func (p *prefetched) has(start, end int64) bool {
	for _, s := range p.spans {
		if start >= s.Off && end <= s.Off+int64(len(s.B)) {
			return true
		}
	}
	return false
}

func (p *prefetched) ReadAt(b []byte, off int64) (int, error) {
	for _, s := range p.spans {
		if off >= s.Off && off+int64(len(b)) <= s.Off+int64(len(s.B)) {
			return copy(b, s.B[off-s.Off:]), nil
		}
	}
	return p.ra.ReadAt(b, off)
}

// corruptPanic turns a panic of the Parquet reader into ErrCorrupt: parquet-go trusts
// parts of the metadata that only a corrupt file gets wrong (a slice bound, a type), and a
// bad object must fail its key, not the whole node program.
func corruptPanic(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: %v", ErrCorrupt, r)
	}
}

// bounded refuses reads outside the file, whatever the metadata said.
type bounded struct {
	ra   io.ReaderAt
	size int64
}

func (b bounded) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > b.size {
		return 0, fmt.Errorf("%w: read at offset %d of a %d-byte file", ErrCorrupt, off, b.size)
	}
	if int64(len(p)) > b.size-off {
		n, err := b.ra.ReadAt(p[:b.size-off], off)
		if err == nil {
			err = io.EOF
		}
		return n, err
	}
	return b.ra.ReadAt(p, off)
}

// Layout is the CSV layout's first fields, as countpass counts them (passenger_count is
// the 4th), with each field's column names across the eras of the data (matched
// case-insensitively, the first name being the current one). A Parquet file's columns come
// in an order of their own; they are put in this layout by name.
var Layout = [][]string{
	{"VendorID", "vendor_id", "vendor_name"},
	{"tpep_pickup_datetime", "pickup_datetime", "Trip_Pickup_DateTime"},
	{"tpep_dropoff_datetime", "dropoff_datetime", "Trip_Dropoff_DateTime"},
	{Column},
	{"trip_distance"},
}

// column returns the index of the leaf column with one of names (case-insensitively), and
// its name; -1 if there is none.
func column(f *parquet.File, names ...string) (int, string) {
	for i, leaf := range f.Schema().Columns() {
		name := strings.Join(leaf, ".")
		for _, n := range names {
			if strings.EqualFold(name, n) {
				return i, name
			}
		}
	}
	return -1, ""
}

// ParquetCSV writes the Parquet file in ra to w as CSV in the Layout's fields: a header of
// column names, then one line per row, values written as AppendKey does (timestamps stay
// the integers Parquet stores). A field whose column the file lacks is empty (and named as
// in the Layout). It returns the lines written, header included.
func ParquetCSV(ra io.ReaderAt, size int64, w io.Writer) (_ int64, err error) {
	defer corruptPanic(&err)
	f, err := open(prefetch(ra), size)
	if err != nil {
		return 0, err
	}
	field := map[int]int{} // column index -> field
	var line []byte
	for i, names := range Layout {
		col, name := column(f, names...)
		if col < 0 {
			name = names[0]
		} else {
			field[col] = i
		}
		if i > 0 {
			line = append(line, ',')
		}
		line = append(line, name...)
	}
	if _, err := w.Write(append(line, '\n')); err != nil {
		return 0, err
	}
	lines := int64(1)
	rows := make([]parquet.Row, 1024)
	vals := make([]parquet.Value, len(Layout))
	for _, rg := range f.RowGroups() {
		rr := rg.Rows()
		for {
			k, err := rr.ReadRows(rows)
			line = line[:0]
			for _, row := range rows[:k] {
				clear(vals) // a null Value: an empty field
				for _, v := range row {
					if i, ok := field[v.Column()]; ok {
						vals[i] = v
					}
				}
				for i, v := range vals {
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
