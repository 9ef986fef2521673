package layers_test

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// The layers, lowest first. A package may import packages of its own layer or below, never
// one above: commands use jobs, jobs use transports, transports use primitives.
const (
	primitives = iota + 1
	transports
	jobs
	commands
)

var layerName = map[int]string{primitives: "primitives", transports: "transports", jobs: "jobs", commands: "commands"}

// ranks places every package by its import path (the longest matching prefix wins). A new
// package must be placed here.
var ranks = map[string]int{
	"ec2kit/cmd":                        commands,
	"ec2kit/bench":                      commands,
	"ec2kit/internal/fleetcmd":          commands,
	"ec2kit/internal/clitest":           commands,
	"ec2kit/internal/taxidata/gen-taxi": commands,

	"ec2kit/internal/orchestrate": jobs,
	"ec2kit/internal/merge":       jobs,
	"ec2kit/internal/launch":      jobs,
	"ec2kit/internal/countpass":   jobs,
	"ec2kit/internal/fanout":      jobs,
	"ec2kit/internal/localcloud":  jobs,

	"ec2kit/internal/sshx":      transports,
	"ec2kit/internal/transfer":  transports,
	"ec2kit/internal/hosts":     transports,
	"ec2kit/internal/fleet":     transports,
	"ec2kit/internal/awsconf":   transports,
	"ec2kit/internal/s3stream":  transports,
	"ec2kit/internal/pricing":   transports,
	"ec2kit/internal/cloudtest": transports,

	"ec2kit/internal/cli":      primitives,
	"ec2kit/internal/paths":    primitives,
	"ec2kit/internal/lines":    primitives,
	"ec2kit/internal/sshkey":   primitives,
	"ec2kit/internal/nodejob":  primitives,
	"ec2kit/internal/schedule": primitives,
	"ec2kit/internal/count":    primitives,
	"ec2kit/internal/decode":   primitives,
	"ec2kit/internal/split":    primitives,
	"ec2kit/internal/taxidata": primitives,
	"ec2kit/internal/layers":   primitives,
}

func rank(pkg string) int {
	best, r := "", 0
	for p, n := range ranks {
		if (pkg == p || strings.HasPrefix(pkg, p+"/")) && len(p) > len(best) {
			best, r = p, n
		}
	}
	return r
}

// TestLayered fails on an import of a package from a higher layer, and on a package with no
// layer. Test files are not checked: they may drive a package from above.
func TestLayered(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	cmd := exec.Command(gobin, "list", "-json=ImportPath,Imports", "ec2kit/...")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(out)
	n := 0
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		n++
		from := rank(p.ImportPath)
		if from == 0 {
			t.Errorf("%s has no layer: place it in the ranks table", p.ImportPath)
			continue
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, "ec2kit/") {
				continue
			}
			if to := rank(imp); to > from {
				t.Errorf("%s (%s) imports %s (%s), a higher layer", p.ImportPath, layerName[from], imp, layerName[to])
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	if n < 20 {
		t.Fatalf("go list found only %d packages", n)
	}
}
