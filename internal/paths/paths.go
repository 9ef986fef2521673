// Package paths says where ec2kit keeps its local state: the key pairs it created and the
// host keys it recorded, shared by every command.
package paths

import (
	"os"
	"path/filepath"
)

// Dir is ec2kit's state directory: $EC2KIT_HOME, else $XDG_CONFIG_HOME/ec2kit, else
// ~/.config/ec2kit. Tests point EC2KIT_HOME at a temporary directory.
func Dir() string {
	if d := os.Getenv("EC2KIT_HOME"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "ec2kit")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = "."
	}
	return filepath.Join(home, ".config", "ec2kit")
}

// KeyFile is the private key of the EC2 key pair called name (mode 0600).
func KeyFile(name string) string { return filepath.Join(Dir(), "keys", name+".pem") }

// KnownHosts is the known_hosts file keyed by instance id (not address, so that a reused IP
// address never collides with an old host key).
func KnownHosts() string { return filepath.Join(Dir(), "known_hosts") }
