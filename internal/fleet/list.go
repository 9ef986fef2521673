package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"ec2kit/internal/cli"
)

// ListColumns are ec2-ls's columns. The id comes first so that a listing piped into another
// command (`ec2-ls web | ec2-rm --yes`) passes ids, since cli.Selectors reads the first word.
var ListColumns = []string{"ID", "NAME", "TYPE", "STATE", "LIFECYCLE", "ZONE", "ADDRESS", "LAUNCHED", "TAGS"}

// ParseStates turns --state values (repeatable, comma-separated, "all") into states for
// Resolve; none means the default (all but terminated).
func ParseStates(values []string) []string {
	var out []string
	for _, v := range values {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s == "all" {
				return States
			} else if s != "" && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// ListOptions are ec2-ls's arguments.
type ListOptions struct {
	Selectors []string // as given: cli.Selectors adds ids from stdin
	States    []string // --state values
	JSON      bool
}

// List is ec2-ls: it prints the selected instances on stdout, the header on stderr.
func List(ctx context.Context, o ListOptions) error {
	sels, err := cli.Selectors(o.Selectors)
	if err != nil {
		return err
	}
	c, err := New(ctx)
	if err != nil {
		return err
	}
	return c.List(ctx, sels, ParseStates(o.States), o.JSON, os.Stdout, os.Stderr)
}

// List prints the selected instances on w, as aligned rows (header on hdr) or as JSON, one
// object per line. Nothing selected is an ExitNoMatch error.
func (c *Client) List(ctx context.Context, selectors, states []string, asJSON bool, w, hdr io.Writer) error {
	insts, err := c.Resolve(ctx, selectors, states...)
	if err != nil {
		return err
	}
	if len(insts) == 0 {
		return cli.Errorf(cli.ExitNoMatch, "no instances")
	}
	if err := c.Interruptions(ctx, insts); err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(w)
		for _, in := range insts {
			if err := enc.Encode(in); err != nil {
				return cli.Errorf(cli.ExitLocal, "writing: %v", err)
			}
		}
		return nil
	}
	rows := [][]string{ListColumns}
	for _, in := range insts {
		rows = append(rows, Row(in))
	}
	lines := align(rows)
	fmt.Fprintln(hdr, lines[0])
	if _, err := io.WriteString(w, strings.Join(lines[1:], "\n")+"\n"); err != nil {
		return cli.Errorf(cli.ExitLocal, "writing: %v", err)
	}
	return nil
}

// Row is one instance's listing fields, in ListColumns order; "-" stands for empty so that
// every row has the same number of words.
func Row(in Instance) []string {
	var tags []string
	for _, k := range slices.Sorted(maps.Keys(in.Tags)) {
		if k != "Name" {
			tags = append(tags, k+"="+in.Tags[k])
		}
	}
	lifecycle := in.Lifecycle
	if in.Interruption != NotInterrupted {
		lifecycle += "(" + string(in.Interruption) + ")" // spot(notice), spot(interrupted)
	}
	row := []string{in.ID, in.Name, in.Type, in.State, lifecycle, in.Zone, in.Address(false),
		launched(in.LaunchTime), strings.Join(tags, ",")}
	for i, f := range row {
		if f = strings.Join(strings.Fields(f), "_"); f == "" {
			f = "-"
		}
		row[i] = f
	}
	return row
}

func launched(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// align pads columns with spaces (the last one is not padded).
func align(rows [][]string) []string {
	width := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, f := range r {
			width[i] = max(width[i], len(f))
		}
	}
	out := make([]string, len(rows))
	for j, r := range rows {
		var b strings.Builder
		for i, f := range r {
			if i == len(r)-1 {
				b.WriteString(f)
			} else {
				fmt.Fprintf(&b, "%-*s  ", width[i], f)
			}
		}
		out[j] = b.String()
	}
	return out
}
