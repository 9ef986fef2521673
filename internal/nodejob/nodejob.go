// Package nodejob owns the node side of a job and every format of it, in both directions:
// where a job's files live on a node, what names a job and its results, the item protocol
// between orchestrate and the node program, and the job manifest. orchestrate, the node
// program (countpass) and merge all go through it, so no path or protocol is written twice.
//
// # Layout on a node
//
//	/mnt/results/<job>/<key>              the result of a whole object
//	/mnt/results/<job>/<key>.part-NNNNN   the result of piece N of a split object
//	/mnt/results/<job>/.manifest          the job manifest (the newest run's)
//	/mnt/results/<job>/.lock              held while a run of the job is in progress
//	/mnt/data/<job>/<key>                 what a download job wrote (a count job's input)
//	/mnt/work/<job>/                      a map job's working directory (its --put files)
//
// Every job lives in a directory of its own, named by what defines it, so a job never mixes
// with, reuses or wipes another's results.
package nodejob

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
)

// Where jobs live on a node.
const (
	ResultsRoot = "/mnt/results"
	DataRoot    = "/mnt/data"
	WorkRoot    = "/mnt/work"
	LockName    = ".lock"
)

// ResultsDir is job's results directory on a node.
func ResultsDir(job string) string { return path.Join(ResultsRoot, job) }

// DataDir is where download job job keeps its output on a node.
func DataDir(job string) string { return path.Join(DataRoot, job) }

// WorkDir is map job job's working directory on a node.
func WorkDir(job string) string { return path.Join(WorkRoot, job) }

// Steps of a job.
const (
	Download = "download" // S3 -> the CSV layout's first 5 columns -> DataDir
	Count    = "count"    // DataDir of a download job -> counts
	Combined = "combined" // S3 -> counts, never touching local disk
	Map      = "map"      // S3 (whole objects or pieces) -> the user's command -> its stdout
)

// S3Jobs is the least number of objects a node reads from S3 at once in the steps whose
// work is that read (combined, download), whatever its cores: counting keeps up with a
// node's network on one core, its NIC fills only with some 35 S3 connections or more, and
// with more objects open than its GETs in flight need (countpass.DefaultGETs), a GET that
// ends is followed at once by the next object's (bench/RESULTS.md, "network model").
const S3Jobs = 32

// Jobs is how many items a node runs at once by default in step: its cores, and at least
// S3Jobs in the steps that stream from S3 and count.
func Jobs(step string, cores int) int {
	if step == Combined || step == Download {
		return max(cores, S3Jobs)
	}
	return max(cores, 1)
}

// Spec is what defines a job: two runs with the same spec are the same job (a re-run skips
// what the first finished); anything else is another job, in another directory.
type Spec struct {
	Step   string   `json:"step"`
	Src    string   `json:"src"`             // s3://bucket/prefix/
	Match  string   `json:"match,omitempty"` // the key filter
	Column string   `json:"column,omitempty"`
	Field  int      `json:"field,omitempty"`
	Cmd    string   `json:"cmd,omitempty"`   // map: the user's command
	Put    []string `json:"put,omitempty"`   // map: digests of the files put beside it
	Split  int64    `json:"split,omitempty"` // map: piece size; 0 keeps objects whole
	Header bool     `json:"header,omitempty"`
	Input  string   `json:"input,omitempty"` // count: the download job it reads
}

// Name is the job's default name: its step and a digest of its spec.
func (s Spec) Name() string {
	b, _ := json.Marshal(s)
	sum := sha256.Sum256(b)
	return s.Step + "-" + hex.EncodeToString(sum[:5])
}

// ErrName marks a job name that cannot be a directory of its own.
var ErrName = errors.New("bad job name")

// ValidName checks a job name (--job NAME): letters, digits, '.', '_' and '-', not starting
// with '.', at most 64 bytes, so that it is one path segment that readers do not skip.
func ValidName(name string) error {
	if name == "" || len(name) > 64 || name[0] == '.' {
		return fmt.Errorf("%w %q: 1 to 64 characters, not starting with '.'", ErrName, name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-", r)) {
			return fmt.Errorf("%w %q: only letters, digits, '.', '_' and '-'", ErrName, name)
		}
	}
	return nil
}

// PartName is the result name of piece part of key: five digits, so names sort in offset
// order.
func PartName(key string, part int) string { return fmt.Sprintf("%s.part-%05d", key, part) }

// ErrKey marks an S3 key that cannot be a result's name or travel in the item protocol.
var ErrKey = errors.New("unusable key")

// ValidKey refuses keys that would escape the job directory, hide from merge (dotfiles),
// or break the line protocol (tab, line break).
func ValidKey(key string) error {
	if strings.ContainsAny(key, "\t\n\r") {
		return fmt.Errorf("%w %q: it holds a tab or line break", ErrKey, key)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || strings.HasPrefix(seg, ".") {
			return fmt.Errorf("%w %q: a path segment is empty or starts with \".\"", ErrKey, key)
		}
	}
	return nil
}
