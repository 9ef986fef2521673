package nodejob

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// ManifestName is the manifest's file name inside a job directory. It starts with a dot so
// that it never collides with a result, and readers skip dotfiles.
const ManifestName = ".manifest"

// Version is the manifest format written; readers refuse newer ones.
const Version = 2

// Object is one S3 object of the job, as listed when the job was planned. A result is valid
// only for the object it was computed from: a re-run redoes a key whose size or ETag changed.
type Object struct {
	Key   string `json:"key"`
	Size  int64  `json:"size"`
	ETag  string `json:"etag,omitempty"`
	Parts int    `json:"parts,omitempty"` // pieces of a split object; 0: one whole result
}

// Manifest describes one run of a job: everything merge needs to tell a complete result set
// from an incomplete one. It is JSON because S3 keys may hold any character.
type Manifest struct {
	Version int       `json:"version"`
	Job     string    `json:"job"` // the job's name: its directory on the nodes
	Run     string    `json:"run"` // unique per orchestrate run
	Spec    Spec      `json:"spec"`
	Created time.Time `json:"created"`
	Objects []Object  `json:"objects"`
}

// Encode returns the manifest as indented JSON with a final newline.
func (m *Manifest) Encode() []byte {
	b, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		panic(err) // plain strings and numbers always marshal
	}
	return append(b, '\n')
}

// ErrManifest marks a manifest that cannot be read.
var ErrManifest = errors.New("malformed job manifest")

// DecodeManifest parses a manifest.
func DecodeManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrManifest, err)
	}
	if m.Version < 1 || m.Version > Version {
		return nil, fmt.Errorf("%w: version %d not understood (this build reads up to %d)", ErrManifest, m.Version, Version)
	}
	if m.Version < Version {
		return nil, fmt.Errorf("%w: version %d was written by an older ec2kit: re-run the job", ErrManifest, m.Version)
	}
	if err := ValidName(m.Job); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrManifest, err)
	}
	for _, o := range m.Objects {
		if o.Parts < 0 || o.Size < 0 {
			return nil, fmt.Errorf("%w: object %q: negative size or parts", ErrManifest, o.Key)
		}
	}
	return &m, nil
}

// Results returns the names of every result the job makes, in merge order: objects in key
// order, the pieces of a split object in offset order.
func (m *Manifest) Results() []string {
	objs := slices.Clone(m.Objects)
	slices.SortFunc(objs, func(a, b Object) int { return cmpString(a.Key, b.Key) })
	var names []string
	for _, o := range objs {
		if o.Parts == 0 {
			names = append(names, o.Key)
			continue
		}
		for p := range o.Parts {
			names = append(names, PartName(o.Key, p))
		}
	}
	return names
}

// Object returns the manifest's entry for key.
func (m *Manifest) Object(key string) (Object, bool) {
	for _, o := range m.Objects {
		if o.Key == key {
			return o, true
		}
	}
	return Object{}, false
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Newer reports whether m is a later run than o: the newest run is the one merge reads
// when no job is named.
func (m *Manifest) Newer(o *Manifest) bool {
	if o == nil {
		return true
	}
	if !m.Created.Equal(o.Created) {
		return m.Created.After(o.Created)
	}
	return m.Run > o.Run
}

// Newest returns the newest of ms (nil entries are skipped; nil when there is none).
func Newest(ms ...*Manifest) *Manifest {
	var best *Manifest
	for _, m := range ms {
		if m != nil && m.Newer(best) {
			best = m
		}
	}
	return best
}

// ManifestsCmd is the shell command that prints, NUL-terminated, the manifest of every job
// under root (ResultsRoot or DataRoot) on a node; ParseManifests reads its output.
func ManifestsCmd(root string) string {
	return fmt.Sprintf(`for f in %s/*/%s; do [ -f "$f" ] && cat "$f" && printf '\0'; done; true`, root, ManifestName)
}

// ParseManifests parses ManifestsCmd's output; unreadable manifests are left out (no run can
// be based on them).
func ParseManifests(out []byte) []*Manifest {
	var ms []*Manifest
	for _, b := range bytes.Split(out, []byte{0}) {
		if m, err := DecodeManifest(b); err == nil {
			ms = append(ms, m)
		}
	}
	return ms
}
