package orchestrate

import (
	"strings"
	"testing"

	"ec2kit/internal/fanout"
)

func TestLineWriter(t *testing.T) {
	var got []string
	w := &lineWriter{emit: func(s string) { got = append(got, s) }}
	w.Write([]byte("a\r\nb"))
	w.Write([]byte("c\nd"))
	w.Flush()
	if strings.Join(got, "|") != "a|bc|d" {
		t.Fatalf("got %q", got)
	}
}

func TestQuoteAndIDs(t *testing.T) {
	// S3 keys hold spaces and quotes, and travel to countpass as one shell word.
	if fanout.Quote("trip data/it's") != `'trip data/it'\''s'` {
		t.Fatal(fanout.Quote("trip data/it's"))
	}
	if !allIDs([]string{"i-1", "i-2"}) || allIDs([]string{"i-1", "web"}) {
		t.Fatal("allIDs")
	}
}
