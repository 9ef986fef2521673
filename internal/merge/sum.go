// Package merge gathers the results every node of a job holds, checks them against the job
// manifest, and sums them (or concatenates them in order): each result counts once, even
// when re-executed work left copies on two nodes, and only after the copies are found to
// agree.
package merge

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"ec2kit/internal/cli"
	"ec2kit/internal/nodejob"
)

// Problem is one reason the total could be wrong, with the exit code it calls for.
type Problem struct {
	Code    int
	Msg     string
	Partial bool // --partial may skip it: it leaves the total short, not wrong
}

// Report is the outcome of Check.
type Report struct {
	Job      *nodejob.Manifest
	Counts   nodejob.Counts // Sum mode: the total
	Order    []Piece        // Cat mode: where each result's bytes are, in order
	Items    int            // results used
	Problems []Problem      // errors; with partial they were skipped instead
	Warnings []string
}

// Piece is one result to concatenate: its name and the node holding an agreed copy.
type Piece struct {
	Name string
	Node Node
}

// Check verifies the nodes' results of the job run m (every result the manifest lists must
// be on a reachable node, copies must agree) and sums them, or with cat lists them in
// order. With partial, problems that only leave the total short (unreachable node, missing
// or malformed result) are skipped with a warning; copies that disagree and a sum past 64
// bits are always errors, since no answer would be right.
func Check(nodes []Node, m *nodejob.Manifest, cat, partial bool) Report {
	r := Report{Job: m, Counts: nodejob.Counts{}}
	problem := func(code int, format string, args ...any) {
		r.Problems = append(r.Problems, Problem{code, fmt.Sprintf(format, args...), true})
	}
	var unreachable []string
	for _, n := range nodes {
		switch {
		case n.Err != nil:
			unreachable = append(unreachable, n.Name)
		case n.ManifestErr != nil:
			problem(cli.ExitData, "%s: %s: %v", n.Name, nodejob.ManifestName, n.ManifestErr)
		case n.Manifest != nil && n.Manifest.Run != m.Run:
			r.Warnings = append(r.Warnings, fmt.Sprintf("%s holds an earlier run of job %s (%s): only its results of unchanged objects count", n.Name, m.Job, n.Manifest.Run))
		}
	}
	// A result missing while some node is out of reach may well be on that node.
	missing := cli.ExitData
	if len(unreachable) > 0 {
		missing = cli.ExitUnreachable
	}
	objs := slices.Clone(m.Objects)
	slices.SortFunc(objs, func(a, b nodejob.Object) int { return strings.Compare(a.Key, b.Key) })
	for _, o := range objs {
		names := []string{o.Key}
		if o.Parts > 0 {
			names = names[:0]
			for p := range o.Parts {
				names = append(names, nodejob.PartName(o.Key, p))
			}
		}
		for _, name := range names {
			var first []byte
			var firstNode *Node
			var firstCounts nodejob.Counts
			bad := false
			for i := range nodes {
				n := &nodes[i]
				b, found, err := n.result(m, o.Key, name)
				if !found {
					continue
				}
				var c nodejob.Counts
				if err == nil && !cat {
					c, err = nodejob.ParseCounts(b)
				}
				if err != nil {
					bad = true
					problem(cli.ExitData, "%s: malformed result %q: %v", n.Name, name, err)
					continue
				}
				switch {
				case firstNode == nil:
					first, firstNode, firstCounts = b, n, c
				case cat && !bytes.Equal(first, b), !cat && !maps.Equal(firstCounts, c):
					r.Problems = append(r.Problems, Problem{Code: cli.ExitData,
						Msg: fmt.Sprintf("result %q: the copies on %s and %s disagree", name, firstNode.Name, n.Name)})
				}
			}
			if firstNode == nil {
				if !bad {
					problem(missing, "result %q: no reachable node holds it", name)
				}
				continue
			}
			r.Items++
			if cat {
				r.Order = append(r.Order, Piece{name, *firstNode})
			} else if err := r.Counts.Add(firstCounts); err != nil {
				r.Problems = append(r.Problems, Problem{Code: cli.ExitData, Msg: fmt.Sprintf("result %q: %v", name, err)})
			}
		}
	}
	if len(unreachable) > 0 {
		if len(r.Problems) == 0 {
			r.Warnings = append(r.Warnings, fmt.Sprintf("not reachable: %s (every result was on the others)", strings.Join(unreachable, ", ")))
		} else {
			// First: it is why the results it held are missing, and the list may be cut short.
			r.Problems = append([]Problem{{cli.ExitUnreachable, "not reachable: " + strings.Join(unreachable, ", "), true}}, r.Problems...)
		}
	}
	if partial {
		kept := r.Problems[:0]
		for _, p := range r.Problems {
			if p.Partial {
				r.Warnings = append(r.Warnings, "skipped: "+p.Msg)
			} else {
				kept = append(kept, p)
			}
		}
		r.Problems = kept
	}
	return r
}

// Err turns the report's problems into one error naming them (nil when there are none).
func (r Report) Err() error {
	if len(r.Problems) == 0 {
		return nil
	}
	const show = 20
	var codes []int
	var msgs []string
	for i, p := range r.Problems {
		codes = append(codes, p.Code)
		if i < show {
			msgs = append(msgs, "  "+p.Msg)
		}
	}
	if len(r.Problems) > show {
		msgs = append(msgs, fmt.Sprintf("  ... and %d more", len(r.Problems)-show))
	}
	return cli.WithHint(cli.Errorf(cli.Worst(codes...), "the result would be wrong or short: %d problem(s):\n%s",
		len(r.Problems), strings.Join(msgs, "\n")),
		"re-run orchestrate to redo missing items, or pass --partial to use what there is")
}

// ErrNoJob reports nodes that hold no job's results at all.
var ErrNoJob = errors.New("no job results")
