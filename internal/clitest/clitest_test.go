// Package clitest runs the commands' behaviour tests: testscript scripts in testdata/ that
// drive the real binaries, built once per run. Scripts that need the local cloud start with
// `[!cloud] skip`.
package clitest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"ec2kit/internal/cloudtest"

	"github.com/rogpeppe/go-internal/testscript"
)

// binDir holds the built commands (and the test data generator, gen-taxi); scriptsDir is
// the repository's scripts/, last on PATH, for helpers such as taxi-reference.
var binDir, scriptsDir string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "ec2kit-bin-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	_, here, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(here), "..", "..")
	build := exec.Command("go", "build", "-o", dir+"/", "./cmd/...", "./internal/taxidata/gen-taxi")
	build.Dir = root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		panic("building the commands: " + err.Error())
	}
	binDir, scriptsDir = dir, filepath.Join(root, "scripts")
	return m.Run()
}

// passEnv are the variables a script inherits: the local cloud's endpoints and credentials.
var passEnv = []string{"EC2KIT_LOCALCLOUD", "AWS_", "EC2KIT_SUBNET", "EC2KIT_VPC", "EC2KIT_CACHE"}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata",
		Setup: func(env *testscript.Env) error {
			env.Setenv("PATH", binDir+string(os.PathListSeparator)+env.Getenv("PATH")+string(os.PathListSeparator)+scriptsDir)
			env.Setenv("HOME", env.WorkDir)
			env.Setenv("EC2KIT_HOME", filepath.Join(env.WorkDir, ".ec2kit"))
			for _, kv := range os.Environ() {
				k, v, _ := strings.Cut(kv, "=")
				for _, p := range passEnv {
					if strings.HasPrefix(k, p) {
						env.Setenv(k, v)
					}
				}
			}
			return nil
		},
		Condition: func(cond string) (bool, error) {
			if cond == "cloud" {
				return cloudtest.Up(), nil
			}
			return false, nil
		},
		RequireExplicitExec: true,
	})
}
