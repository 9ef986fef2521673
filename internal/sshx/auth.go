package sshx

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"ec2kit/internal/cli"
	"ec2kit/internal/sshkey"
)

// keyring holds every key parsed once per run: parsing (and for RSA, precomputation) per
// connection would dominate a fan-out to hundreds of hosts.
type keyring struct {
	base  []ssh.Signer // --key files, then the agent's keys
	mu    sync.Mutex
	extra map[string]ssh.Signer // ssh_config IdentityFile entries, nil when unusable
	warn  io.Writer
}

func newKeyring(files []string, useAgent bool, warn io.Writer) (*keyring, error) {
	k := &keyring{extra: map[string]ssh.Signer{}, warn: warn}
	for _, f := range files {
		s, err := parseKeyFile(f)
		if err != nil {
			return nil, err
		}
		k.base = append(k.base, s)
	}
	if useAgent {
		k.base = append(k.base, agentSigners()...)
	}
	return k, nil
}

// parseKeyFile parses one private key file, with an ExitLocal error a user can act on.
func parseKeyFile(path string) (ssh.Signer, error) {
	s, err := sshkey.Read(path)
	switch {
	case errors.Is(err, sshkey.ErrEncrypted):
		return nil, cli.WithHint(cli.Errorf(cli.ExitLocal, "key %w", err), "add it to ssh-agent (ssh-add "+path+")")
	case errors.Is(err, sshkey.ErrUnprotected):
		return nil, cli.WithHint(cli.Errorf(cli.ExitLocal, "key: %w", err), "chmod 600 "+path)
	case err != nil:
		return nil, cli.Errorf(cli.ExitLocal, "reading key: %w", err)
	}
	return s, nil
}

// signers returns the keys to offer to one host: its ssh_config IdentityFile entries first
// (as ssh does), then the shared ones. Unusable IdentityFile entries are skipped, as ssh
// skips them: silently when missing, else with a warning (once).
func (k *keyring) signers(extra []string) ([]ssh.Signer, error) {
	if len(extra) == 0 {
		return k.base, nil
	}
	var out []ssh.Signer
	k.mu.Lock()
	for _, f := range extra {
		s, ok := k.extra[f]
		if !ok {
			var err error
			if s, err = parseKeyFile(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
				fmt.Fprintf(k.warn, "%s: warning: ssh config: IdentityFile skipped: %v\n", filepath.Base(os.Args[0]), err)
			}
			k.extra[f] = s
		}
		if s != nil {
			out = append(out, s)
		}
	}
	k.mu.Unlock()
	return append(out, k.base...), nil
}

// agentSigners lists ssh-agent's keys. All signatures go through one agent connection,
// which serialises them: hundreds of simultaneous handshakes never flood the agent.
func agentSigners() []ssh.Signer {
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return nil
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return nil
	}
	signers, err := agent.NewClient(conn).Signers()
	if err != nil {
		conn.Close()
		return nil
	}
	return signers
}

// expandHome turns a leading ~ into the home directory, as ssh_config paths allow.
func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[1:])
		}
	}
	return p
}
