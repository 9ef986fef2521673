// Package manifest is the job manifest orchestrate leaves on every node beside the results:
// the full key list of the job, so that merge can tell a complete result set from an
// incomplete one. It is JSON because S3 keys may hold any character, spaces and tabs included.
package manifest

import (
	"encoding/json"
	"fmt"
	"time"
)

// Name is the manifest's file name inside a node's results (or data) directory. It starts
// with a dot so that it never collides with a key's result, and readers skip dotfiles.
const Name = ".manifest"

// Version is the format version written; readers refuse newer ones.
const Version = 1

// Key is one S3 object of the job.
type Key struct {
	Key  string `json:"key"`
	Size int64  `json:"size"`
}

// Manifest describes one job.
type Manifest struct {
	Version int       `json:"version"`
	Job     string    `json:"job"`   // unique per orchestrate run
	Step    string    `json:"step"`  // download, count or combined
	Src     string    `json:"src"`   // s3://bucket/prefix/
	Match   string    `json:"match"` // the key filter
	Created time.Time `json:"created"`
	Keys    []Key     `json:"keys"`
}

// Encode returns the manifest as indented JSON with a final newline.
func (m *Manifest) Encode() []byte {
	b, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		panic(err) // plain strings and numbers always marshal
	}
	return append(b, '\n')
}

// Decode parses a manifest.
func Decode(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("malformed job manifest: %v", err)
	}
	if m.Version < 1 || m.Version > Version {
		return nil, fmt.Errorf("job manifest version %d not understood (this build reads up to %d)", m.Version, Version)
	}
	return &m, nil
}

// Names returns the manifest's keys as a set.
func (m *Manifest) Names() map[string]bool {
	s := make(map[string]bool, len(m.Keys))
	for _, k := range m.Keys {
		s[k.Key] = true
	}
	return s
}
