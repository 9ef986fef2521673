// Package merge gathers the results every node of a job holds, checks them against the job
// manifest, and sums them: each S3 key counts once, even when re-executed work left copies
// on two nodes, and only after the copies are found to agree.
package merge

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"ec2kit/internal/cli"
	"ec2kit/internal/manifest"
)

// Problem is one reason the total could be wrong, with the exit code it calls for.
type Problem struct {
	Code    int
	Msg     string
	Partial bool // --partial may skip it: it leaves the total short, not wrong
}

// Report is the outcome of Sum.
type Report struct {
	Counts   Counts
	Keys     int       // keys summed
	Problems []Problem // errors; with partial they were skipped instead
	Warnings []string
}

// Sum adds up the nodes' results. The key set is the newest manifest's (several jobs' results
// may linger); without any manifest it is every result found, with a warning, since then
// nothing says whether the set is complete. With partial, problems that only leave the total
// short (unreachable node, missing or malformed result) are skipped; copies that disagree are
// always an error, since no choice between them is right.
func Sum(nodes []Node, partial bool) Report {
	r := Report{Counts: Counts{}}
	problem := func(code int, format string, args ...any) {
		r.Problems = append(r.Problems, Problem{code, fmt.Sprintf(format, args...), true})
	}
	// A key missing while some node is out of reach may well be on that node.
	missing := cli.ExitData
	var m *manifest.Manifest
	for _, n := range nodes {
		switch {
		case n.Err != nil:
			missing = cli.ExitUnreachable
			problem(cli.ExitUnreachable, "%s: results not fetched: %v", n.Name, n.Err)
		case n.ManifestErr != nil:
			problem(cli.ExitData, "%s: %s: %v", n.Name, manifest.Name, n.ManifestErr)
		case n.Manifest != nil && (m == nil || n.Manifest.Created.After(m.Created)):
			m = n.Manifest
		}
	}
	var want map[string]bool
	if m != nil {
		want = m.Names()
		for _, n := range nodes {
			if n.Manifest != nil && n.Manifest.Job != m.Job {
				r.Warnings = append(r.Warnings, fmt.Sprintf("%s holds the manifest of an older job (%s); using job %s's key list", n.Name, n.Manifest.Job, m.Job))
			}
		}
	} else {
		want = map[string]bool{}
		for _, n := range nodes {
			for k := range n.Results {
				want[k] = true
			}
			for k := range n.Malformed {
				want[k] = true
			}
		}
		r.Warnings = append(r.Warnings, "no job manifest on any node: cannot tell whether the results are complete")
	}

	ignored := 0
	for _, n := range nodes {
		for k := range n.Results {
			if !want[k] {
				ignored++
			}
		}
	}
	if ignored > 0 {
		r.Warnings = append(r.Warnings, fmt.Sprintf("ignored %d result file(s) of keys not in job %s", ignored, m.Job))
	}

	for _, key := range slices.Sorted(maps.Keys(want)) {
		var first Counts
		var firstNode string
		malformed := false
		for _, n := range nodes {
			if err, bad := n.Malformed[key]; bad {
				malformed = true
				problem(cli.ExitData, "%s: malformed result for key %q: %v", n.Name, key, err)
				continue
			}
			c, ok := n.Results[key]
			if !ok {
				continue
			}
			if first == nil {
				first, firstNode = c, n.Name
			} else if !maps.Equal(first, c) {
				r.Problems = append(r.Problems, Problem{Code: cli.ExitData,
					Msg: fmt.Sprintf("key %q: the copies on %s and %s disagree", key, firstNode, n.Name)})
			}
		}
		if first == nil {
			if !malformed {
				problem(missing, "key %q: no reachable node holds its result", key)
			}
			continue
		}
		r.Keys++
		for v, c := range first {
			r.Counts[v] += c
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
	return cli.WithHint(cli.Errorf(cli.Worst(codes...), "the total would be wrong or short: %d problem(s):\n%s",
		len(r.Problems), strings.Join(msgs, "\n")),
		"re-run orchestrate to redo missing keys, or pass --partial to sum what there is")
}
