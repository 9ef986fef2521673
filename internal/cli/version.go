package cli

import (
	"os"
	"path/filepath"
)

// VersionFlag, embedded in a command's argument struct, gives it --version (go-arg adds the
// flag only when Version returns a non-empty string).
type VersionFlag struct{}

// Version satisfies go-arg's Versioned interface.
func (VersionFlag) Version() string { return versionString(filepath.Base(os.Args[0])) }
