package pricing

import "testing"

func TestCostString(t *testing.T) {
	for _, c := range []struct {
		cost Cost
		want string
	}{
		{Cost{USD: 12.345, Hours: 48.5, Sources: []string{"a", "b"}}, "cost $12.35 (48.50 instance-hours at a and b)"},
		{Cost{USD: 0.01234, Hours: 0.0456, Sources: []string{"a"}}, "cost $0.01 (164.2 instance-seconds at a)"},
		{Cost{USD: 0.000234, Hours: 0.001, Sources: []string{"a"}}, "cost $0.00023 (3.6 instance-seconds at a)"},
		{Cost{USD: 0.0091, Hours: 0.1, Sources: []string{"a"}}, "cost $0.0091 (360.0 instance-seconds at a)"},
	} {
		if got := c.cost.String(); got != c.want {
			t.Errorf("%q, want %q", got, c.want)
		}
	}
	c := Cost{USD: 1}
	// Part of a fleet that cannot be priced makes the whole cost unknown, never an
	// undercount.
	c.Unknown = []string{"no spot price for x in y"}
	if got, want := c.String(), "cost unknown: no spot price for x in y"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}
