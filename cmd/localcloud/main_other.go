//go:build !linux

// Command localcloud needs Linux (network, mount and PID namespaces, overlayfs); built
// elsewhere it only says so, so that every command of the toolkit builds everywhere.
package main

import (
	"context"
	"os"

	"ec2kit/internal/cli"
)

func main() {
	os.Exit(cli.Run("localcloud", func(context.Context) error {
		return cli.Errorf(cli.ExitLocal, "the local cloud needs Linux (network, mount and PID namespaces, overlayfs)")
	}))
}
