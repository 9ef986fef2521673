package nodejob

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestHold surveys a job directory, removes stale results and writes the manifest, as the
// lock holder does for the orchestrator, through the wire format.
func TestHold(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"a.csv", "trip data/b.csv", "trip data/b.csv.part-00001", ".lock", ".manifest.tmp", ".x/hidden"} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := SurveyDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadSurvey(bufio.NewReader(bytes.NewReader(s.Encode())))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a.csv", "trip data/b.csv", "trip data/b.csv.part-00001"}; got.Manifest != nil || !slices.Equal(got.Files, want) {
		t.Fatalf("survey %q with manifest %q, want %q and none", got.Files, got.Manifest, want)
	}

	w := Write{Stale: []string{"trip data/b.csv", "gone.csv"}, Manifest: []byte(`{"job":"j"}`)}
	r := bufio.NewReader(bytes.NewReader(append(w.Encode(), w.Encode()...)))
	for range 2 {
		req, err := ReadWrite(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := ReadWritten(bufio.NewReader(bytes.NewReader([]byte(EncodeWritten(req.Apply(dir)))))); err != nil {
			t.Fatalf("a stale file removed twice, or one already gone, is no error: %v", err)
		}
	}
	if _, err := ReadWrite(r); !errors.Is(err, io.EOF) {
		t.Fatalf("the end of the requests: %v", err)
	}
	s, err = SurveyDir(dir)
	if err != nil || string(s.Manifest) != `{"job":"j"}` || !slices.Equal(s.Files, []string{"a.csv", "trip data/b.csv.part-00001"}) {
		t.Fatalf("after the write: %q %q %v", s.Files, s.Manifest, err)
	}

	// Names come over the wire: none may reach outside the job directory.
	outside := filepath.Join(filepath.Dir(dir), filepath.Base(dir)+"-outside")
	if err := os.WriteFile(outside, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(outside)
	for _, bad := range []string{"../" + filepath.Base(outside), outside} {
		err := Write{Stale: []string{bad}, Manifest: []byte("{}")}.Apply(dir)
		if err == nil {
			t.Errorf("removing %q was not refused", bad)
		}
		if _, serr := os.Stat(outside); serr != nil {
			t.Fatalf("%q removed a file outside the job directory", bad)
		}
		if werr := ReadWritten(bufio.NewReader(bytes.NewReader([]byte(EncodeWritten(err))))); werr == nil {
			t.Errorf("a failed write reads as done")
		}
	}
}

func FuzzHold(f *testing.F) {
	f.Add(Survey{Manifest: []byte("{}"), Files: []string{"a", "b c"}}.Encode())
	f.Add(Write{Stale: []string{"x"}, Manifest: []byte("m")}.Encode())
	f.Add([]byte("survey 99999999999 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if s, err := ReadSurvey(bufio.NewReader(bytes.NewReader(b))); err == nil {
			again, err := ReadSurvey(bufio.NewReader(bytes.NewReader(s.Encode())))
			if err != nil || !bytes.Equal(again.Manifest, s.Manifest) || !slices.Equal(again.Files, s.Files) {
				t.Fatalf("%+v does not round-trip: %+v %v", s, again, err)
			}
		}
		if w, err := ReadWrite(bufio.NewReader(bytes.NewReader(b))); err == nil {
			again, err := ReadWrite(bufio.NewReader(bytes.NewReader(w.Encode())))
			if err != nil || !bytes.Equal(again.Manifest, w.Manifest) || !slices.Equal(again.Stale, w.Stale) {
				t.Fatalf("%+v does not round-trip: %+v %v", w, again, err)
			}
		}
		_ = ReadWritten(bufio.NewReader(bytes.NewReader(b)))
	})
}
