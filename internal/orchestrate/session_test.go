package orchestrate

import (
	"strings"
	"testing"

	"ec2kit/internal/sshx"
)

func TestParseLine(t *testing.T) {
	for _, c := range []struct{ line, kind, key, detail string }{
		{"ok\ttrip data/a b.csv\t123\t45", "ok", "trip data/a b.csv", "123"},
		{"ok\tk\t0\t0\tcached", "ok", "k", "0"},
		{"err\tk\ttruncated gzip\tat byte 5", "err", "k", "truncated gzip\tat byte 5"},
		{"progress\tk\t999", "progress", "k", "999"},
	} {
		kind, key, detail, ok := parseLine(c.line)
		if !ok || kind != c.kind || key != c.key || detail != c.detail {
			t.Errorf("%q: got %q %q %q %v", c.line, kind, key, detail, ok)
		}
	}
	for _, bad := range []string{"", "ok", "ok\tk", "hello\tk\tx"} {
		if _, _, _, ok := parseLine(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

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
	if sshx.Quote("trip data/it's") != `'trip data/it'\''s'` {
		t.Fatal(sshx.Quote("trip data/it's"))
	}
	if !allIDs([]string{"i-1", "i-2"}) || allIDs([]string{"i-1", "web"}) {
		t.Fatal("allIDs")
	}
}
