// Package sshkey reads and writes SSH private keys: one writer for the ed25519 keys ec2kit
// makes (key pairs, host keys), one reader that refuses what OpenSSH refuses.
package sshkey

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"golang.org/x/crypto/ssh"
)

var (
	// ErrUnprotected is a private key file that others may read: OpenSSH refuses it
	// ("UNPROTECTED PRIVATE KEY FILE"), since the key may already be someone else's.
	ErrUnprotected = errors.New("UNPROTECTED PRIVATE KEY FILE")
	// ErrEncrypted is a key that needs a passphrase.
	ErrEncrypted = errors.New("private key is encrypted")
)

// Read parses the private key in path. A file that group or others may access is refused
// with ErrUnprotected, as OpenSSH refuses it; on Windows, where modes say nothing about
// that, it is not checked.
func Read(path string) (ssh.Signer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("%w: permissions %04o for %s are too open: a private key must not be accessible by others", ErrUnprotected, perm, path)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	s, err := ssh.ParsePrivateKey(b)
	var pe *ssh.PassphraseMissingError
	if errors.As(err, &pe) {
		return nil, fmt.Errorf("%s: %w", path, ErrEncrypted)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Write makes an ed25519 key and writes it to path in OpenSSH format, mode 0600. It never
// replaces a file: an existing path is an error (fs.ErrExist).
func Write(path, comment string) (ssh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	if err := errors.Join(pem.Encode(f, block), f.Close()); err != nil {
		os.Remove(path)
		return nil, err
	}
	return ssh.NewSignerFromKey(priv)
}
