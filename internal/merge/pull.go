package merge

import (
	"context"
	"errors"
	"path/filepath"

	"golang.org/x/crypto/ssh"

	"ec2kit/internal/nodejob"
	"ec2kit/internal/sshx"
	"ec2kit/internal/transfer"
)

// pull copies the contents of a node's results directory into dir as one tar stream (one
// round trip however many files; sftp would pay one per file). A node that never ran a job
// has no results directory: that is an empty result set, which the manifest check then
// judges.
func pull(ctx context.Context, c *sshx.Conn, remote, dir string) error {
	s, err := c.NewSession()
	if err != nil {
		return err
	}
	err = s.Run("test -d " + sshx.Quote(remote))
	s.Close()
	var ee *ssh.ExitError
	if errors.As(err, &ee) && ee.ExitStatus() == 1 {
		return nil
	}
	if err != nil {
		return err
	}
	return transfer.Pull(ctx, c.Client, remote+"/", dir)
}

// readManifests returns the manifests of every job on the node.
func readManifests(c *sshx.Conn) ([]*nodejob.Manifest, error) {
	s, err := c.NewSession()
	if err != nil {
		return nil, err
	}
	defer s.Close()
	out, err := s.Output(nodejob.ManifestsCmd(nodejob.ResultsRoot))
	return nodejob.ParseManifests(out), err
}

// hostDir is where one node's results go: one directory per node, so that nodes holding the
// same key never overwrite each other.
func hostDir(root string, h sshx.Host) string { return filepath.Join(root, h.Target.ID) }
