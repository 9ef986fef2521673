// Package decode turns an object's bytes into what countpass counts: it tells gzip, zstd,
// Parquet and plain CSV apart by their first bytes (names lie: a ".csv" key may hold gzip),
// decompresses CSV streams, checks that a stream looks like CSV text, and counts a column
// of Parquet files (passenger_count by default) or writes them as CSV in the layout of the
// CSV objects.
package decode

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"ec2kit/internal/count"
)

// Format is an object's content type.
type Format string

const (
	CSV     Format = "csv"
	Gzip    Format = "gzip"
	Zstd    Format = "zstd"
	Parquet Format = "parquet"
)

// HeadSize is how many leading bytes Detect needs.
const HeadSize = 4

// Detect returns the format whose magic number head starts with; anything else is CSV
// (CheckCSV then decides whether it really is).
func Detect(head []byte) Format {
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return Gzip
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return Zstd
	case bytes.HasPrefix(head, []byte("PAR1")):
		return Parquet
	}
	return CSV
}

// Decompress returns the CSV text of r, which holds f (CSV, Gzip or Zstd). Close the result
// to release the decoder.
func Decompress(f Format, r io.Reader) (io.ReadCloser, error) {
	switch f {
	case CSV:
		return io.NopCloser(r), nil
	case Gzip:
		// klauspost's gzip is a drop-in for compress/gzip, ~1.5-2x faster at inflating;
		// multi-member files (concatenated gzip) are read whole, like gunzip does.
		z, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return &errReader{z, "gzip"}, nil
	case Zstd:
		z, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(2))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return &errReader{zstdCloser{z}, "zstd"}, nil
	}
	return nil, fmt.Errorf("%s is not a CSV stream", f)
}

type zstdCloser struct{ *zstd.Decoder }

func (z zstdCloser) Close() error { z.Decoder.Close(); return nil }

// errReader names the codec in errors and calls a cut-short stream what it is.
type errReader struct {
	io.ReadCloser
	codec string
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.ReadCloser.Read(p)
	switch {
	case err == nil || err == io.EOF:
	case errors.Is(err, io.ErrUnexpectedEOF):
		err = fmt.Errorf("%s: truncated data (unexpected end of stream)", e.codec)
	default:
		err = fmt.Errorf("%s: %w", e.codec, err)
	}
	return n, err
}

// SniffSize is how much of a decoded stream CheckCSV looks at.
const SniffSize = 64 << 10

// CheckCSV decides whether the start of a decoded stream is the CSV countpass counts, so a
// binary object fails loudly instead of producing garbage counts. head is the first
// SniffSize bytes (or the whole stream, if eof). Not CSV: a NUL byte (text never has one),
// or a header line with fewer fields than col's position (no such column to count; a
// column chosen by name is looked up by the kernel). An empty stream is a valid object with
// no rows.
func CheckCSV(head []byte, eof bool, col count.Column) error {
	if len(head) == 0 {
		return nil
	}
	if i := bytes.IndexByte(head, 0); i >= 0 {
		return fmt.Errorf("not CSV text: NUL byte at offset %d (binary data?)", i)
	}
	line, _, found := bytes.Cut(head, []byte{'\n'})
	if !found && !eof {
		return fmt.Errorf("not CSV: no line end in the first %d bytes", len(head))
	}
	if n := bytes.Count(line, []byte{','}) + 1; col.Name == "" && n < col.Field {
		return fmt.Errorf("not a trip CSV: the header has %d field(s), fewer than %d: %.60q", n, col.Field, line)
	}
	return nil
}

// CSVReader decodes r (whose format is f) and checks that it looks like CSV with col,
// returning a reader of the CSV text.
func CSVReader(f Format, r io.Reader, col count.Column) (io.ReadCloser, error) {
	d, err := Decompress(f, r)
	if err != nil {
		return nil, err
	}
	b := bufio.NewReaderSize(d, SniffSize)
	head, err := b.Peek(SniffSize)
	if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
		d.Close()
		return nil, err
	}
	if err := CheckCSV(head, err == io.EOF, col); err != nil {
		d.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{b, d}, nil
}
