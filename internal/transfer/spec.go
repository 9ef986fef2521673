// Package transfer copies files and directory trees to and from hosts over SSH by
// streaming a tar archive through one exec channel (fast for big files and for many small
// ones), and parses the `:remote` notation of ec2-scp and ec2-rsync.
package transfer

import (
	"os"
	"strings"

	"ec2kit/internal/cli"
	"ec2kit/internal/sshx"
)

// Spec is one copy: Push sends Local to Remote on every host; a pull fetches Remote from
// every host into Local/<instance id>/.
type Spec struct {
	Push          bool
	Local, Remote string
}

// Parse reads SRC and DST; exactly one of them is remote, marked by a leading ':'.
func Parse(src, dst string) (Spec, error) {
	rs, rd := strings.HasPrefix(src, ":"), strings.HasPrefix(dst, ":")
	switch {
	case rs && rd:
		return Spec{}, cli.Errorf(cli.ExitUsage, "both %q and %q are remote; exactly one side takes a leading ':'", src, dst)
	case !rs && !rd:
		return Spec{}, cli.WithHint(cli.Errorf(cli.ExitUsage, "neither %q nor %q is remote", src, dst),
			"mark the remote side with a leading ':', e.g. `file :/mnt/` (push) or `:/mnt/results/ ./results/` (pull)")
	case rd:
		s := Spec{Push: true, Local: src, Remote: remotePath(dst)}
		if src == "" {
			return s, cli.Errorf(cli.ExitUsage, "empty source")
		}
		if _, err := os.Lstat(src); err != nil {
			return s, cli.Errorf(cli.ExitUsage, "source: %v", err)
		}
		return s, nil
	}
	s := Spec{Local: dst, Remote: remotePath(src)}
	if dst == "" {
		return s, cli.Errorf(cli.ExitUsage, "empty destination")
	}
	if fi, err := os.Stat(dst); err == nil && !fi.IsDir() {
		return s, cli.WithHint(cli.Errorf(cli.ExitUsage, "destination %s is a file; a pull needs a directory (one subdirectory per instance)", dst),
			"name a directory, e.g. ./results/")
	}
	return s, nil
}

func remotePath(p string) string {
	if p = strings.TrimPrefix(p, ":"); p == "" {
		return "."
	}
	return p
}

// shellPath quotes a remote path for sh, keeping a leading ~/ meaning the home directory.
func shellPath(p string) string {
	if p == "~" {
		return `"$HOME"`
	}
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		return `"$HOME"/` + sshx.Quote(rest)
	}
	return sshx.Quote(p)
}
