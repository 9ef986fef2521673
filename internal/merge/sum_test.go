package merge

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"ec2kit/internal/cli"
	"ec2kit/internal/nodejob"
)

var t0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func job(run string, objs ...nodejob.Object) *nodejob.Manifest {
	return &nodejob.Manifest{Version: nodejob.Version, Job: "combined-x", Run: run, Created: t0, Objects: objs}
}

func obj(key string) nodejob.Object { return nodejob.Object{Key: key, Size: 1, ETag: `"` + key + `"`} }

func node(name string, m *nodejob.Manifest, files map[string]string) Node {
	fs := fstest.MapFS{}
	if m != nil {
		fs[nodejob.ManifestName] = &fstest.MapFile{Data: m.Encode()}
	}
	for k, v := range files {
		fs[k] = &fstest.MapFile{Data: []byte(v)}
	}
	return Load(name, fs)
}

func TestSumCountsEachResultOnce(t *testing.T) {
	m := job("r", obj("trip data/a.csv"), obj("trip data/b c.csv"), obj("x"))
	a := node("a", m, map[string]string{"trip data/a.csv": "1,10\n2,1\n", "trip data/b c.csv": "1,5\n,2\n", ".tmp-x": "garbage"})
	b := node("b", m, map[string]string{"trip data/b c.csv": "1,5\n,2\n", "x": "3,7\n"})
	r := Check([]Node{a, b}, m, false, false)
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	want := nodejob.Counts{"1": 15, "2": 1, "": 2, "3": 7}
	if len(r.Counts) != len(want) || r.Items != 3 {
		t.Fatalf("got %v over %d results", r.Counts, r.Items)
	}
	for k, v := range want {
		if r.Counts[k] != v {
			t.Fatalf("%q: got %d want %d", k, r.Counts[k], v)
		}
	}
}

func TestProblems(t *testing.T) {
	m := job("r", obj("a"), obj("b"), obj("c"))
	all := map[string]string{"a": "1,1\n", "b": "1,1\n", "c": "1,1\n"}
	dead := Node{Name: "n2", Err: errors.New("dial tcp: connection refused")}
	cases := []struct {
		name    string
		nodes   []Node
		code    int
		naming  string
		partial int // exit code with --partial
	}{
		{"missing result", []Node{node("n1", m, map[string]string{"a": "1,1\n", "b": "1,1\n"})},
			cli.ExitData, `"c"`, cli.ExitOK},
		{"disagreeing copies", []Node{node("n1", m, all), node("n2", m, map[string]string{"b": "1,2\n"})},
			cli.ExitData, `"b": the copies on n1 and n2 disagree`, cli.ExitData},
		{"malformed file", []Node{node("n1", m, map[string]string{"a": "1,1\n", "b": "oops\n", "c": "1,1\n"})},
			cli.ExitData, `n1: malformed result "b"`, cli.ExitOK},
		{"unreachable node holding a result", []Node{node("n1", m, map[string]string{"a": "1,1\n", "b": "1,1\n"}), dead},
			cli.ExitUnreachable, "not reachable: n2", cli.ExitOK},
		{"sum past 64 bits", []Node{node("n1", m, map[string]string{"a": "4,9223372036854775807\n", "b": "4,9223372036854775807\n", "c": "1,1\n"})},
			cli.ExitData, "overflows", cli.ExitData},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Check(c.nodes, m, false, false).Err()
			if cli.CodeOf(err) != c.code || err == nil || !strings.Contains(err.Error(), c.naming) {
				t.Fatalf("got exit %d, %v; want %d naming %s", cli.CodeOf(err), err, c.code, c.naming)
			}
			r := Check(c.nodes, m, false, true)
			if cli.CodeOf(r.Err()) != c.partial {
				t.Fatalf("--partial: got %v, want exit %d", r.Err(), c.partial)
			}
			if c.partial == cli.ExitOK && (len(r.Warnings) == 0 || r.Counts["1"] == 0) {
				t.Fatalf("--partial must sum what there is with a warning: %+v", r)
			}
		})
	}
}

// After a failover the dead node is still among the ids: every result is on the others, so
// the merge succeeds with a note.
func TestUnreachableAfterFailover(t *testing.T) {
	m := job("r", obj("a"), obj("b"))
	r := Check([]Node{node("n1", m, map[string]string{"a": "1,1\n", "b": "2,1\n"}), {Name: "dead", Err: errors.New("refused")}}, m, false, false)
	if r.Err() != nil || r.Counts["2"] != 1 || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "dead") {
		t.Fatalf("%+v %v", r, r.Err())
	}
}

// A node that missed the latest run holds results of an older version of an object: they
// must not count.
func TestOlderRunOfChangedObject(t *testing.T) {
	old := job("r1", obj("a"), nodejob.Object{Key: "b", Size: 9, ETag: `"old"`})
	cur := job("r2", obj("a"), obj("b"))
	cur.Created = t0.Add(time.Hour)
	n1 := node("n1", old, map[string]string{"a": "1,1\n", "b": "9,9\n"})
	n2 := node("n2", cur, map[string]string{"a": "1,1\n"})
	err := Check([]Node{n1, n2}, cur, false, false).Err()
	if cli.CodeOf(err) != cli.ExitData || !strings.Contains(err.Error(), `"b"`) {
		t.Fatalf("the old version's result was used: %v", err)
	}
	n2 = node("n2", cur, map[string]string{"a": "1,1\n", "b": "2,2\n"})
	r := Check([]Node{n1, n2}, cur, false, false)
	if r.Err() != nil || r.Counts["9"] != 0 || r.Counts["1"] != 1 || r.Counts["2"] != 2 {
		t.Fatalf("%+v %v", r.Counts, r.Err())
	}
}

func TestCatOrderAndHeader(t *testing.T) {
	m := job("r", nodejob.Object{Key: "big", Size: 10, Parts: 2}, obj("a"))
	n := node("n1", m, map[string]string{"a": "id,c\n1,x\n", "big.part-00000": "id,c\n2,y\n", "big.part-00001": "id,c\n3,z\n"})
	r := Check([]Node{n}, m, true, false)
	if r.Err() != nil || len(r.Order) != 3 {
		t.Fatal(r.Err(), r.Order)
	}
	var sb strings.Builder
	if _, err := writeCat(&sb, r.Order, true); err != nil || sb.String() != "id,c\n1,x\n2,y\n3,z\n" {
		t.Fatalf("%q %v", sb.String(), err)
	}
	missing := node("n1", m, map[string]string{"a": "x\n", "big.part-00001": "y\n"})
	if err := Check([]Node{missing}, m, true, false).Err(); cli.CodeOf(err) != cli.ExitData || !strings.Contains(err.Error(), "big.part-00000") {
		t.Fatalf("a missing piece: %v", err)
	}
}

// An unreachable node comes first among the problems: it is why the results it held are
// missing, and a long list is cut short.
func TestUnreachableFirst(t *testing.T) {
	var objs []nodejob.Object
	for i := range 30 {
		objs = append(objs, obj(fmt.Sprintf("k%02d", i)))
	}
	m := job("r", objs...)
	err := Check([]Node{node("n1", m, nil), {Name: "n2", Err: errors.New("refused")}}, m, false, false).Err()
	lines := strings.Split(fmt.Sprint(err), "\n")
	if len(lines) < 2 || !strings.Contains(lines[1], "not reachable: n2") || !strings.Contains(fmt.Sprint(err), "... and") {
		t.Fatalf("the unreachable node must lead the list: %v", err)
	}
}
