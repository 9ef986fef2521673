package fleet

import (
	"regexp"
	"strings"

	"ec2kit/internal/cli"
)

// Selector kinds: an instance id, a Name tag value, or a key=value tag.
const (
	ByID = iota
	ByName
	ByTag
)

// Selector is one parsed selector; Key is the tag key for ByTag.
type Selector struct {
	Raw        string
	Kind       int
	Key, Value string
}

var (
	idRE   = regexp.MustCompile(`^i-([0-9a-f]{8}|[0-9a-f]{17})$`)
	hexyRE = regexp.MustCompile(`^i-[0-9a-f]+$`)
)

// ParseSelectors classifies selectors: "i-…" is an id, "k=v" a tag, anything else a Name.
// Duplicates are dropped; an empty selector or tag key is a usage error.
func ParseSelectors(raw []string) ([]Selector, error) {
	seen := map[string]bool{}
	var out []Selector
	for _, r := range raw {
		if seen[r] {
			continue
		}
		seen[r] = true
		s := Selector{Raw: r, Value: r}
		switch k, v, ok := strings.Cut(r, "="); {
		case strings.TrimSpace(r) == "":
			return nil, cli.Errorf(cli.ExitUsage, "empty selector")
		case ok && k == "":
			return nil, cli.Errorf(cli.ExitUsage, "selector %q: missing tag key before '='", r)
		case ok:
			s.Kind, s.Key, s.Value = ByTag, k, v
		case idRE.MatchString(r):
			s.Kind = ByID
		case hexyRE.MatchString(r):
			// Most likely a truncated or mistyped id: say so rather than look for a Name.
			return nil, cli.WithHint(cli.Errorf(cli.ExitUsage, "selector %q: not a valid instance id", r),
				"instance ids look like i-0123456789abcdef0; to select by Name tag use Name="+r)
		default:
			s.Kind = ByName
		}
		out = append(out, s)
	}
	return out, nil
}

// Match reports whether inst is selected by s.
func (s Selector) Match(inst Instance) bool {
	switch s.Kind {
	case ByID:
		return inst.ID == s.Value
	case ByName:
		return inst.Name == s.Value
	default:
		v, ok := inst.Tags[s.Key]
		return ok && v == s.Value
	}
}
