package fleet_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"strings"
	"testing"

	"ec2kit/internal/cli"
	"ec2kit/internal/fleet"
	"ec2kit/internal/fleet/fleettest"
)

func TestParseSelectors(t *testing.T) {
	sels, err := fleet.ParseSelectors([]string{"i-0123456789abcdef0", "web", "role=db", "web", "i-am-web", "k="})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range sels {
		got = append(got, []string{"id", "name", "tag"}[s.Kind]+":"+s.Key+":"+s.Value)
	}
	want := "id::i-0123456789abcdef0 name::web tag:role:db name::i-am-web tag:k:"
	if strings.Join(got, " ") != want {
		t.Fatalf("got %q", got)
	}
	for _, bad := range []string{"", "=x", "i-0123", " "} {
		if _, err := fleet.ParseSelectors([]string{bad}); cli.CodeOf(err) != cli.ExitUsage {
			t.Errorf("%q: want usage error, got %v", bad, err)
		}
	}
}

func TestMatch(t *testing.T) {
	in := fleet.Instance{ID: "i-0123456789abcdef0", Name: "web", Tags: map[string]string{"Name": "web", "role": "db", "empty": ""}}
	sels, _ := fleet.ParseSelectors([]string{"i-0123456789abcdef0", "web", "role=db", "empty=", "Name=web"})
	for _, s := range sels {
		if !s.Match(in) {
			t.Errorf("%s should match", s.Raw)
		}
	}
	sels, _ = fleet.ParseSelectors([]string{"i-0123456789abcdef1", "db", "role=web", "missing="})
	for _, s := range sels {
		if s.Match(in) {
			t.Errorf("%s should not match", s.Raw)
		}
	}
}

func TestResolve(t *testing.T) {
	c, calls := fleettest.Client(t)
	ctx := context.Background()
	sn := fleettest.Subnet(t, c)
	run := strings.ReplaceAll(t.Name(), "/", "-") + "-" + randHex(t)
	web := fleettest.Launch(t, c, sn, 3, map[string]string{"Name": "web-" + run, "role": "web", "run": run})
	db := fleettest.Launch(t, c, sn, 2, map[string]string{"Name": "db-" + run, "run": run, "ec2kit:user": "ubuntu"})

	calls.Reset()
	got, err := c.Resolve(ctx, []string{"web-" + run, db[1], "run=" + run})
	if err != nil {
		t.Fatal(err)
	}
	if n := calls.Total(); n != 1 {
		t.Errorf("%d API calls for mixed selectors, want 1: %v", n, calls.Counts())
	}
	ids := fleet.IDs(got)
	if len(ids) != 5 || !slices.IsSortedFunc(got, func(a, b fleet.Instance) int { return a.LaunchTime.Compare(b.LaunchTime) }) {
		t.Fatalf("union of selectors: got %v", ids)
	}
	for _, id := range append(slices.Clone(web), db...) {
		if !slices.Contains(ids, id) {
			t.Errorf("%s missing from %v", id, ids)
		}
	}
	for _, in := range got {
		want := "ec2-user"
		if slices.Contains(db, in.ID) {
			want = "ubuntu"
		}
		if in.User != want || in.PrivateIP == "" || !strings.HasPrefix(in.PrivateIP, "127.") || in.Lifecycle != "on-demand" {
			t.Errorf("%+v: user/address/lifecycle", in)
		}
	}

	// Ids alone, and a repeat, keep order and union semantics.
	again, err := c.Resolve(ctx, []string{db[1], db[0], db[1]})
	if err != nil || len(again) != 2 {
		t.Fatalf("by ids: %v %v", fleet.IDs(again), err)
	}

	_, err = c.Resolve(ctx, []string{"web-" + run, "nosuch-" + run, "i-0000000000000000f"})
	if cli.CodeOf(err) != cli.ExitNoMatch || !strings.Contains(err.Error(), "nosuch-"+run) || !strings.Contains(err.Error(), "i-0000000000000000f") {
		t.Fatalf("unknown selectors must be named with ExitNoMatch: %v", err)
	}

	if err := c.Terminate(ctx, got[:1]); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitTerminated(ctx, fleet.IDs(got[:1])); err != nil {
		t.Fatal(err)
	}
	live, err := c.Resolve(ctx, []string{"run=" + run})
	if err != nil || len(live) != 4 {
		t.Fatalf("terminated instances are not live: %v %v", fleet.IDs(live), err)
	}
	dead, err := c.Resolve(ctx, []string{"run=" + run}, "terminated")
	if err != nil || len(dead) != 1 || dead[0].ID != got[0].ID {
		t.Fatalf("states filter: %v %v", fleet.IDs(dead), err)
	}
	if _, err := c.Resolve(ctx, nil, "dead"); cli.CodeOf(err) != cli.ExitUsage {
		t.Fatalf("bad state: %v", err)
	}
}
func randHex(t testing.TB) string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}
