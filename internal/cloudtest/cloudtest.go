// Package cloudtest lets a test declare that it needs the local cloud, and skips it with a
// clear message when the cloud is not up (so `go test ./...` alone runs anywhere).
package cloudtest

import (
	"os"
	"testing"
)

// EnvVar is set by `localcloud run` (and `localcloud env`) inside the cloud's namespace.
const EnvVar = "EC2KIT_LOCALCLOUD"

// Up reports whether this process runs inside the local cloud.
func Up() bool { return os.Getenv(EnvVar) != "" }

// Require skips t unless the local cloud is up.
func Require(t testing.TB) {
	t.Helper()
	if !Up() {
		t.Skip("needs the local cloud: run scripts/test, or `localcloud up && localcloud run -- go test ./...`")
	}
}
