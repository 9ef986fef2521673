package transfer

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// entry is one tar entry: a directory (name ending in /), a file with body, a symlink
// (link) or a hard link (hard).
type entry struct{ name, body, link, hard string }

func archive(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644}
		switch {
		case strings.HasSuffix(e.name, "/"):
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		case e.link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.link
		case e.hard != "":
			h.Typeflag, h.Linkname = tar.TypeLink, e.hard
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestExtractStaysInside feeds hostile archives to extract: each must fail naming the entry,
// and nothing outside the destination may change.
func TestExtractStaysInside(t *testing.T) {
	// @OUT stands for the absolute path of a directory next to the destination; from inside
	// the destination it is also ../outside.
	for _, tc := range []struct {
		name    string
		earlier []entry // a first pull into the same directory
		entries []entry
		bad     string // the entry to be named
	}{
		{"symlink then a file through it", nil,
			[]entry{{name: "x/link", link: "@OUT"}, {name: "x/link/file", body: "pwned"}}, "x/link/file"},
		{"relative symlink then a file through it", nil,
			[]entry{{name: "x/link", link: "../../outside"}, {name: "x/link/file", body: "pwned"}}, "x/link/file"},
		{"symlink then a directory through it", nil,
			[]entry{{name: "link", link: "@OUT"}, {name: "link/sub/"}}, "link/sub/"},
		{"a second pull through a symlink left by the first",
			[]entry{{name: "link", link: "@OUT"}},
			[]entry{{name: "link/file", body: "pwned"}}, "link/file"},
		{"an absolute symlink as a parent", nil,
			[]entry{{name: "d", link: "/"}, {name: "d@OUT/file", body: "pwned"}}, "d@OUT/file"},
		{"a symlink inside the destination is not followed either", nil,
			[]entry{{name: "real/"}, {name: "a", link: "real"}, {name: "a/file", body: "x"}}, "a/file"},
		{"dot-dot", nil, []entry{{name: "../outside/file", body: "pwned"}}, "../outside/file"},
		{"dot-dot in the middle", nil, []entry{{name: "a/../../outside/file", body: "pwned"}}, "a/../../outside/file"},
		{"absolute path", nil, []entry{{name: "@OUT/file", body: "pwned"}}, "@OUT/file"},
		{"hard link outside", nil, []entry{{name: "h", hard: "../outside/secret"}}, "h"},
		{"hard link to an absolute path", nil, []entry{{name: "h", hard: "@OUT/secret"}}, "h"},
		{"hard link through a symlink", nil,
			[]entry{{name: "link", link: "@OUT"}, {name: "h", hard: "link/secret"}}, "h"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			outside := filepath.Join(base, "outside")
			os.Mkdir(outside, 0o755)
			os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o600)
			dst := filepath.Join(base, "dst")
			fix := func(es []entry) []entry {
				out := make([]entry, len(es))
				for i, e := range es {
					for _, s := range []*string{&e.name, &e.link, &e.hard} {
						*s = strings.ReplaceAll(*s, "@OUT", outside)
					}
					out[i] = e
				}
				return out
			}
			if tc.earlier != nil {
				if err := extract(bytes.NewReader(archive(t, fix(tc.earlier)...)), dst); err != nil {
					t.Fatalf("first pull: %v", err)
				}
			}
			err := extract(bytes.NewReader(archive(t, fix(tc.entries)...)), dst)
			var ee *EntryError
			if !errors.As(err, &ee) || ee.Name != fix([]entry{{name: tc.bad}})[0].name {
				t.Fatalf("got %v, want a refusal naming %q", err, tc.bad)
			}
			if !strings.Contains(err.Error(), ee.Name) {
				t.Errorf("message %q does not name the entry", err)
			}
			ents, _ := os.ReadDir(outside)
			if len(ents) != 1 {
				t.Errorf("outside the destination: %d entries, want only the secret", len(ents))
			}
			if b, _ := os.ReadFile(filepath.Join(outside, "secret")); string(b) != "secret" {
				t.Errorf("secret is now %q", b)
			}
		})
	}
}

// TestExtractReplacesLinks: what a pull writes replaces a link in its place, never writes
// through it, and an archive that turns a symlink into a directory is fine.
func TestExtractReplacesLinks(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	os.Mkdir(outside, 0o755)
	os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o600)
	dst := filepath.Join(base, "dst")
	first := archive(t, entry{name: "f", link: filepath.Join(outside, "secret")}, entry{name: "d", link: outside},
		entry{name: "h", hard: "f"})
	if err := extract(bytes.NewReader(first), dst); err != nil {
		t.Fatal(err)
	}
	second := archive(t, entry{name: "f", body: "new"}, entry{name: "d/"}, entry{name: "d/g", body: "g"},
		entry{name: "h", body: "h"})
	if err := extract(bytes.NewReader(second), dst); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"f": "new", "d/g": "g", "h": "h"} {
		if b, err := os.ReadFile(filepath.Join(dst, name)); err != nil || string(b) != want {
			t.Errorf("%s: %q %v, want %q", name, b, err, want)
		}
	}
	if fi, err := os.Lstat(filepath.Join(dst, "d")); err != nil || !fi.IsDir() {
		t.Errorf("d: %v %v, want a directory", fi, err)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "secret")); string(b) != "secret" {
		t.Errorf("secret is now %q", b)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 1 {
		t.Errorf("outside: %d entries", len(ents))
	}
}
