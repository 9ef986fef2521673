// Command ec2-scp copies files and directories to or from every selected instance.
package main

import (
	"context"

	"ec2kit/internal/cli"
	"ec2kit/internal/fleetcmd"
)

const examples = `  ec2-scp job.tar.gz :/mnt/ web --yes          # push to every 'web' instance
  ec2-scp ./conf/ :/etc/app i-0abc i-0def --yes  # the contents of conf into /etc/app
  ec2-scp :/mnt/results/ ./results/ web          # pull: ./results/<instance id>/...

A leading ':' marks the remote side. Like cp: a source "dir" lands as DST/dir when DST is a
directory or ends in '/', else as DST; "dir/" copies the contents. Directories recurse, modes
and times are kept. A pull always writes one subdirectory per instance; pulling into an
existing file is a usage error (2). Pushing to more than one host asks first unless --yes.
A pull never writes outside its directory nor through a symbolic link (one the instance
sent, or one an earlier pull left): such an entry fails that instance's pull, named.`

func main() {
	var a fleetcmd.CopyArgs
	cli.Main(&a, "ec2-scp: copy files to or from many instances over SSH", examples, func(ctx context.Context) error {
		return fleetcmd.Copy(ctx, &a)
	})
}
