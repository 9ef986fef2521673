package merge

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"ec2kit/internal/manifest"
)

// Counts maps a value of the counted field (raw bytes, "" for empty) to its count.
type Counts map[string]int64

// Parse reads one results file: `value,count` lines, as countpass writes them. The value is
// everything before the last comma (the counted field never holds a comma, but splitting at
// the last one keeps any value intact); a value may appear only once.
func Parse(b []byte) (Counts, error) {
	c := Counts{}
	for n, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		if len(b) == 0 {
			break
		}
		i := bytes.LastIndexByte(line, ',')
		if i < 0 {
			return nil, fmt.Errorf("line %d: no comma in %q", n+1, line)
		}
		v, num := string(line[:i]), string(line[i+1:])
		cnt, err := strconv.ParseInt(num, 10, 64)
		if err != nil || cnt < 0 || strings.HasPrefix(num, "+") {
			return nil, fmt.Errorf("line %d: bad count %q", n+1, num)
		}
		if _, dup := c[v]; dup {
			return nil, fmt.Errorf("line %d: value %q appears twice", n+1, v)
		}
		c[v] = cnt
	}
	return c, nil
}

// Node is what one node's results directory holds.
type Node struct {
	Name        string
	Err         error              // the node could not be reached or its results not fetched
	Manifest    *manifest.Manifest // nil when there is none
	ManifestErr error              // the manifest exists but cannot be read
	Results     map[string]Counts  // S3 key -> its counts
	Malformed   map[string]error   // S3 key -> why its results file is unreadable
}

// Load reads a node's results tree: every regular file is the result of the S3 key that is
// its path. Dotfiles and dot-directories (the manifest, temporary files of a write in
// progress) are not results.
func Load(name string, fsys fs.FS) Node {
	n := Node{Name: name, Results: map[string]Counts{}, Malformed: map[string]error{}}
	if b, err := fs.ReadFile(fsys, manifest.Name); err == nil {
		n.Manifest, n.ManifestErr = manifest.Decode(b)
	} else if !errors.Is(err, fs.ErrNotExist) {
		n.ManifestErr = err
	}
	n.Err = fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != "." && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		if c, err := Parse(b); err != nil {
			n.Malformed[path] = err
		} else {
			n.Results[path] = c
		}
		return nil
	})
	return n
}
