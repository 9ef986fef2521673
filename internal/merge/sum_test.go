package merge

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"ec2kit/internal/cli"
	"ec2kit/internal/manifest"
)

func manifestFile(job string, created time.Time, keys ...string) *fstest.MapFile {
	m := &manifest.Manifest{Version: manifest.Version, Job: job, Created: created}
	for _, k := range keys {
		m.Keys = append(m.Keys, manifest.Key{Key: k})
	}
	return &fstest.MapFile{Data: m.Encode()}
}

func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }

var t0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func TestParse(t *testing.T) {
	c, err := Parse([]byte("1,10\n,3\n2,5"))
	if err != nil || c["1"] != 10 || c[""] != 3 || c["2"] != 5 || len(c) != 3 {
		t.Fatalf("got %v %v", c, err)
	}
	if c, err := Parse(nil); err != nil || len(c) != 0 {
		t.Fatalf("an empty file is an empty result: %v %v", c, err)
	}
	for _, bad := range []string{"1\n", "1,x\n", "1,-2\n", "1,2\n1,3\n", "\n", "1,+2\n"} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestSumCountsEachKeyOnce(t *testing.T) {
	keys := []string{"trip data/a.csv", "trip data/b c.csv", "x"}
	a := Load("a", fstest.MapFS{
		".manifest":         manifestFile("j", t0, keys...),
		"trip data/a.csv":   file("1,10\n2,1\n"),
		"trip data/b c.csv": file("1,5\n,2\n"),
		".tmp-x":            file("garbage"),
		".partial/x":        file("garbage"),
	})
	b := Load("b", fstest.MapFS{
		".manifest":         manifestFile("j", t0, keys...),
		"trip data/b c.csv": file("1,5\n,2\n"), // re-executed work: counts once
		"x":                 file("3,7\n"),
	})
	r := Sum([]Node{a, b}, false)
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	want := Counts{"1": 15, "2": 1, "": 2, "3": 7}
	if len(r.Counts) != len(want) || r.Keys != 3 {
		t.Fatalf("got %v over %d keys", r.Counts, r.Keys)
	}
	for k, v := range want {
		if r.Counts[k] != v {
			t.Fatalf("%q: got %d want %d", k, r.Counts[k], v)
		}
	}
}

func TestSumProblems(t *testing.T) {
	m := manifestFile("j", t0, "a", "b", "c")
	cases := []struct {
		name    string
		nodes   []Node
		code    int
		naming  string
		partial int // exit code with --partial
	}{
		{"missing key", []Node{Load("n1", fstest.MapFS{".manifest": m, "a": file("1,1\n"), "b": file("1,1\n")})},
			cli.ExitData, `"c"`, cli.ExitOK},
		{"disagreeing copies", []Node{
			Load("n1", fstest.MapFS{".manifest": m, "a": file("1,1\n"), "b": file("1,1\n"), "c": file("1,1\n")}),
			Load("n2", fstest.MapFS{"b": file("1,2\n")})},
			cli.ExitData, `"b": the copies on n1 and n2 disagree`, cli.ExitData},
		{"malformed file", []Node{Load("n1", fstest.MapFS{".manifest": m, "a": file("1,1\n"), "b": file("oops\n"), "c": file("1,1\n")})},
			cli.ExitData, `n1: malformed result for key "b"`, cli.ExitOK},
		{"unreachable node", []Node{
			Load("n1", fstest.MapFS{".manifest": m, "a": file("1,1\n"), "b": file("1,1\n")}),
			{Name: "n2", Err: errors.New("dial tcp: connection refused")}},
			cli.ExitUnreachable, "n2: results not fetched", cli.ExitOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Sum(c.nodes, false).Err()
			if cli.CodeOf(err) != c.code || err == nil || !strings.Contains(err.Error(), c.naming) {
				t.Fatalf("got exit %d, %v; want %d naming %s", cli.CodeOf(err), err, c.code, c.naming)
			}
			r := Sum(c.nodes, true)
			if cli.CodeOf(r.Err()) != c.partial {
				t.Fatalf("--partial: got %v, want exit %d", r.Err(), c.partial)
			}
			if c.partial == cli.ExitOK && (len(r.Warnings) == 0 || r.Counts["1"] == 0) {
				t.Fatalf("--partial must sum what there is with a warning: %+v", r)
			}
		})
	}
}

func TestSumNewestManifestAndNoManifest(t *testing.T) {
	old := Load("n1", fstest.MapFS{".manifest": manifestFile("old", t0, "a", "z"), "a": file("1,1\n"), "z": file("9,9\n")})
	cur := Load("n2", fstest.MapFS{".manifest": manifestFile("new", t0.Add(time.Hour), "a"), "a": file("1,1\n")})
	r := Sum([]Node{old, cur}, false)
	if r.Err() != nil || r.Counts["9"] != 0 || r.Counts["1"] != 1 || len(r.Warnings) != 2 {
		t.Fatalf("want only the newest job's keys, with warnings: %+v", r)
	}
	bare := Load("n1", fstest.MapFS{"a": file("1,1\n")})
	r = Sum([]Node{bare}, false)
	if r.Err() != nil || r.Counts["1"] != 1 || len(r.Warnings) != 1 {
		t.Fatalf("no manifest: sum with a warning: %+v", r)
	}
	broken := Load("n1", fstest.MapFS{".manifest": file("{"), "a": file("1,1\n")})
	if cli.CodeOf(Sum([]Node{broken}, false).Err()) != cli.ExitData {
		t.Fatal("a broken manifest is a data error")
	}
}
