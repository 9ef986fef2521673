package pricing

import "testing"

func TestCostString(t *testing.T) {
	c := Cost{USD: 0.01234, Hours: 0.0456, Sources: []string{"a", "b"}}
	if got, want := c.String(), "cost $0.0123 (0.046 instance-hours at a and b)"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
	// Part of a fleet that cannot be priced makes the whole cost unknown, never an
	// undercount.
	c.Unknown = []string{"no spot price for x in y"}
	if got, want := c.String(), "cost unknown: no spot price for x in y"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}
