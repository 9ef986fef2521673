package merge

import (
	"errors"
	"io/fs"

	"ec2kit/internal/nodejob"
)

// Node is what one node holds of the job being merged.
type Node struct {
	Name        string
	Err         error             // the node could not be reached or its results not fetched
	Manifest    *nodejob.Manifest // the node's manifest of the job; nil when there is none
	ManifestErr error             // the manifest exists but cannot be read
	FS          fs.FS             // the job directory's files, as pulled
}

// Load reads a node's copy of a job directory. Dotfiles and dot-directories (the manifest,
// the lock, temporary files of a write in progress) are not results.
func Load(name string, fsys fs.FS) Node {
	n := Node{Name: name, FS: fsys}
	if b, err := fs.ReadFile(fsys, nodejob.ManifestName); err == nil {
		n.Manifest, n.ManifestErr = nodejob.DecodeManifest(b)
	} else if !errors.Is(err, fs.ErrNotExist) {
		n.ManifestErr = err
	}
	return n
}

// result returns the node's file for result name, if it is one of the job's run m: the node's
// own manifest must list the object exactly as m does (a node that missed a later run may
// hold results of an older version of the object).
func (n Node) result(m *nodejob.Manifest, key, name string) ([]byte, bool, error) {
	if n.Err != nil || n.Manifest == nil || n.Manifest.Job != m.Job {
		return nil, false, nil
	}
	want, _ := m.Object(key)
	if have, ok := n.Manifest.Object(key); !ok || have != want {
		return nil, false, nil
	}
	st, err := fs.Stat(n.FS, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err == nil && !st.Mode().IsRegular() {
		return nil, true, errors.New("not a regular file")
	}
	if err != nil {
		return nil, true, err
	}
	b, err := fs.ReadFile(n.FS, name)
	return b, true, err
}
