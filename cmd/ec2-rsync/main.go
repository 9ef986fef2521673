// Command ec2-rsync runs rsync to or from every selected instance over ec2kit's own SSH
// transport (the same keys, known_hosts and bastions as ec2-ssh).
package main

import "ec2kit/internal/fleetcmd"

const examples = `  ec2-rsync ./site/ :/var/www/ web --yes
  ec2-rsync :/mnt/results/ ./results/ web            # ./results/<instance id>/...
  ec2-rsync ./data/ :/mnt/data/ web --yes -- -z --exclude '*.tmp'

A leading ':' marks the remote side. rsync runs with -a plus the flags after "--" (never
--delete unless you pass it). A pull writes one subdirectory per instance. rsync must be
installed locally and on the instances.`

func main() {
	var a fleetcmd.RsyncArgs
	fleetcmd.RsyncMain(&a, "ec2-rsync: rsync to or from many instances over SSH", examples)
}
