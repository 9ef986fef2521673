package sshx

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"

	"ec2kit/internal/paths"
)

// hostKeys checks host keys against a known_hosts file whose host field is the instance id
// (so a recycled IP address never inherits an old key), trusting and recording unknown ids.
type hostKeys struct {
	path   string
	record bool
	db     *knownhosts.HostKeyDB
	mu     sync.Mutex
	learnt map[string]ssh.PublicKey // recorded during this run
}

// hostKeyError is a host key that differs from the recorded one: never accepted. path is
// the known_hosts file that holds the recorded key.
type hostKeyError struct {
	path string
	err  error
}

func (e *hostKeyError) Error() string { return e.err.Error() }
func (e *hostKeyError) Unwrap() error { return e.err }

func loadHostKeys(path string, record bool) (*hostKeys, error) {
	if path == "" {
		path = paths.KnownHosts()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("known_hosts: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("known_hosts: %w", err)
	}
	f.Close()
	db, err := knownhosts.NewDB(path)
	if err != nil {
		return nil, fmt.Errorf("known_hosts %s: %w", path, err)
	}
	return &hostKeys{path: path, record: record, db: db, learnt: map[string]ssh.PublicKey{}}, nil
}

// instanceKey is the known_hosts lookup form of an instance id: "id:22", which known_hosts
// normalises to the bare id.
func instanceKey(id string) string { return net.JoinHostPort(id, "22") }

// callback verifies the key of the host known as id ("name:port").
func (h *hostKeys) callback(id string) ssh.HostKeyCallback {
	return func(_ string, remote net.Addr, k ssh.PublicKey) error {
		h.mu.Lock()
		learnt, ok := h.learnt[id]
		h.mu.Unlock()
		if ok {
			if string(learnt.Marshal()) == string(k.Marshal()) {
				return nil
			}
			return &hostKeyError{h.path, fmt.Errorf("host key for %s changed during this run", id)}
		}
		err := h.db.HostKeyCallback()(id, remote, k)
		switch {
		case err == nil:
			return nil
		case knownhosts.IsHostKeyChanged(err):
			return &hostKeyError{h.path, fmt.Errorf("%s offered a %s host key that does not match %s", knownhosts.Normalize(id), k.Type(), h.path)}
		case knownhosts.IsHostUnknown(err):
			return h.trust(id, k)
		}
		return err
	}
}

// trust records the first key seen for id (trust on first use). One write per line with
// O_APPEND keeps concurrent writers, in this process or another, from interleaving.
func (h *hostKeys) trust(id string, k ssh.PublicKey) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if prev, ok := h.learnt[id]; ok && string(prev.Marshal()) != string(k.Marshal()) {
		return &hostKeyError{h.path, fmt.Errorf("host key for %s changed during this run", id)}
	}
	h.learnt[id] = k
	if !h.record {
		return nil
	}
	f, err := os.OpenFile(h.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("recording host key: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(knownhosts.Line([]string{id}, k) + "\n"); err != nil {
		return fmt.Errorf("recording host key: %w", err)
	}
	return nil
}

// algorithms asks the server for the key type already recorded, so a host with several
// key types is not reported as changed.
func (h *hostKeys) algorithms(id string) []string {
	h.mu.Lock()
	k, ok := h.learnt[id]
	h.mu.Unlock()
	if ok {
		return algorithmsFor(k.Type())
	}
	return h.db.HostKeyAlgorithms(id)
}

func algorithmsFor(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}
