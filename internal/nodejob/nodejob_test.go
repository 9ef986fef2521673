package nodejob

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestManifestRoundTrip(t *testing.T) {
	m := &Manifest{Version: Version, Job: "combined-0a1b2c3d4e", Run: "r1",
		Spec:    Spec{Step: Combined, Src: "s3://b/trip data/"},
		Created: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
		Objects: []Object{{Key: "trip data/b c.csv", Size: 10, ETag: `"e"`, Parts: 2}, {Key: "a", Size: 0}}}
	got, err := DecodeManifest(m.Encode())
	if err != nil || got.Job != m.Job || len(got.Objects) != 2 || !got.Created.Equal(m.Created) {
		t.Fatalf("got %+v %v", got, err)
	}
	want := []string{"a", "trip data/b c.csv.part-00000", "trip data/b c.csv.part-00001"}
	if r := got.Results(); !slices.Equal(r, want) {
		t.Fatalf("results %q, want %q", r, want)
	}
	for _, bad := range []string{`{"version":99,"job":"x"}`, `{`, `{"version":1,"job":"x"}`, `{"version":2,"job":".x"}`,
		`{"version":2,"job":"x","objects":[{"key":"a","parts":-1}]}`} {
		if _, err := DecodeManifest([]byte(bad)); !errors.Is(err, ErrManifest) {
			t.Errorf("%s: got %v", bad, err)
		}
	}
}

func TestNewest(t *testing.T) {
	t0 := time.Now()
	a := &Manifest{Run: "a", Created: t0}
	b := &Manifest{Run: "b", Created: t0}
	c := &Manifest{Run: "c", Created: t0.Add(-time.Hour)}
	if Newest(nil, c, a, b) != b || Newest() != nil {
		t.Fatal("newest: latest Created, then the larger run id")
	}
}

func TestSpecName(t *testing.T) {
	a := Spec{Step: Combined, Src: "s3://a/", Match: "yellow"}
	b := a
	b.Src = "s3://b/"
	if a.Name() == b.Name() || a.Name() != (Spec{Step: Combined, Src: "s3://a/", Match: "yellow"}).Name() {
		t.Fatal("the name must follow the spec exactly")
	}
	if !strings.HasPrefix(a.Name(), "combined-") || ValidName(a.Name()) != nil {
		t.Fatal(a.Name())
	}
	for _, bad := range []string{"", ".x", "a/b", "a b", strings.Repeat("x", 65), ".."} {
		if ValidName(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestItemRoundTrip(t *testing.T) {
	for _, it := range []Item{
		{Key: "trip data/it's $(x) ü.csv", Part: -1, Size: 5, ETag: `"abc"`},
		{Key: "k", Part: 3, Start: 100, End: 200, Size: 1000},
	} {
		got, cancel, err := ParseInput(it.Encode())
		if err != nil || cancel != "" || got != it {
			t.Fatalf("%+v: got %+v %q %v", it, got, cancel, err)
		}
	}
	if it, _, err := ParseInput("trip data/a.csv\r"); err != nil || it.Key != "trip data/a.csv" || !it.Whole() {
		t.Fatalf("a bare key: %+v %v", it, err)
	}
	if _, c, err := ParseInput(EncodeCancel("k.part-00001")); err != nil || c != "k.part-00001" {
		t.Fatal(c, err)
	}
	if r := (Item{Key: "k", Part: 7}).Result(); r != "k.part-00007" {
		t.Fatal(r)
	}
	for _, bad := range []string{"item\t0\t1", "item\tx\t0\t0\t0\t\tk", "item\t-2\t0\t0\t0\t\tk", "item\t0\t5\t1\t9\t\tk",
		"a/../b", ".hidden", "a//b", "item\t-1\t0\t0\t0\t\t"} {
		if _, _, err := ParseInput(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestEventRoundTrip(t *testing.T) {
	for _, e := range []Event{
		{Kind: "ok", ID: "a b", Bytes: 1, Rows: 2, Skipped: 3},
		{Kind: "ok", ID: "k", Cached: true},
		{Kind: "err", ID: "k", Class: Retry, Msg: "exit status 1: boom"},
		{Kind: "progress", ID: "k", Bytes: 99},
		{Kind: "node", Class: Notice, Msg: "spot interruption at 12:00"},
	} {
		got, ok := ParseEvent(e.Encode())
		if !ok || got != e {
			t.Fatalf("%+v: got %+v %v", e, got, ok)
		}
	}
	e, _ := ParseEvent(Event{Kind: "err", ID: "k", Class: Data, Msg: "a\tb\nc"}.Encode())
	if e.Msg != "a b c" {
		t.Fatalf("a message stays one line: %q", e.Msg)
	}
	for _, bad := range []string{"", "ok", "ok\tk", "ok\tk\tx\t1\t1", "hello\tk\tx", "progress\tk", "err\tk\tdata"} {
		if _, ok := ParseEvent(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestCounts(t *testing.T) {
	c, err := ParseCounts([]byte("1,10\n,3\n2,5"))
	if err != nil || c["1"] != 10 || c[""] != 3 || c["2"] != 5 || len(c) != 3 {
		t.Fatalf("got %v %v", c, err)
	}
	for _, bad := range []string{"1\n", "1,x\n", "1,-2\n", "1,2\n1,3\n", "\n", "1,+2\n", "1,9223372036854775808\n"} {
		if _, err := ParseCounts([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	sum := Counts{"4": math.MaxInt64, "1": 1}
	if err := sum.Add(Counts{"4": 1, "1": 1}); !errors.Is(err, ErrOverflow) || sum["1"] != 1 {
		t.Fatalf("overflow must be an error and leave the sum alone: %v %v", err, sum)
	}
}

func FuzzParseInput(f *testing.F) {
	f.Add(Item{Key: "a b", Part: 2, Start: 1, End: 9, Size: 10, ETag: `"x"`}.Encode())
	f.Add("cancel\tk")
	f.Add("plain key")
	f.Fuzz(func(t *testing.T, line string) {
		it, cancel, err := ParseInput(line)
		if err != nil || cancel != "" {
			return
		}
		again, _, err := ParseInput(it.Encode())
		if err != nil || again != it {
			t.Fatalf("%q: %+v does not round-trip: %+v %v", line, it, again, err)
		}
	})
}

func FuzzParseEvent(f *testing.F) {
	f.Add("ok\tk\t1\t2\t3\tcached")
	f.Add("err\tk\tretry\tmsg")
	f.Add("progress\tk\t5")
	f.Add("node\tnotice\tsoon")
	f.Fuzz(func(t *testing.T, line string) {
		e, ok := ParseEvent(line)
		if !ok || strings.ContainsAny(e.Msg, "\n\r") || strings.ContainsAny(e.ID, "\t\n") {
			return
		}
		again, ok := ParseEvent(e.Encode())
		if !ok || again != e {
			t.Fatalf("%q: %+v does not round-trip: %+v", line, e, again)
		}
	})
}

func FuzzDecodeManifest(f *testing.F) {
	f.Add((&Manifest{Version: Version, Job: "j", Objects: []Object{{Key: "a", Parts: 2}}}).Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeManifest(b)
		if err != nil {
			return
		}
		if _, err := DecodeManifest(m.Encode()); err != nil {
			t.Fatalf("re-encoded manifest refused: %v", err)
		}
		_ = m.Results()
	})
}

func TestLock(t *testing.T) {
	dir := t.TempDir() + "/job"
	release, err := Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Lock(dir); !errors.Is(err, ErrBusy) {
		t.Fatalf("a second run must be refused: %v", err)
	}
	release()
	again, err := Lock(dir)
	if err != nil {
		t.Fatalf("the lock goes with its holder: %v", err)
	}
	again()
}

func TestJobs(t *testing.T) {
	for _, c := range []struct {
		step        string
		cores, want int
	}{{Combined, 2, S3Jobs}, {Download, 2, S3Jobs}, {Combined, 64, 64}, {Map, 2, 2}, {Count, 4, 4}, {Map, 0, 1}} {
		if got := Jobs(c.step, c.cores); got != c.want {
			t.Errorf("Jobs(%s, %d) = %d, want %d", c.step, c.cores, got, c.want)
		}
	}
}
