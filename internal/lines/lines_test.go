package lines_test

import (
	"bytes"
	"strings"
	"testing"

	"ec2kit/internal/lines"
)

// countingWriter records each Write as one batch.
type countingWriter struct{ batches []string }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.batches = append(c.batches, string(p))
	return len(p), nil
}

func TestWriter(t *testing.T) {
	dst := &countingWriter{}
	w := &lines.Writer{Dst: dst, Format: func(out, line []byte) []byte {
		out = append(out, '<')
		out = append(out, bytes.TrimSuffix(line, []byte("\r"))...)
		return append(out, ">\n"...)
	}}
	for _, s := range []string{"ab", "c\r\nd", "e\n\nf\ng\n", strings.Repeat("x", lines.MaxLine), "yz"} {
		w.Write([]byte(s))
	}
	w.Close()
	want := []string{"<abc>\n", "<de>\n<>\n<f>\n<g>\n", "<" + strings.Repeat("x", lines.MaxLine) + ">\n", "<yz>\n"}
	if len(dst.batches) != len(want) {
		t.Fatalf("%d batches, want %d", len(dst.batches), len(want))
	}
	for i := range want {
		if dst.batches[i] != want[i] {
			t.Errorf("batch %d: %.40q, want %.40q", i, dst.batches[i], want[i])
		}
	}
}
