package sshkey

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteThenRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	w, err := Write(path, "test")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v: want 0600", fi.Mode(), err)
	}
	r, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(r.PublicKey().Marshal()) != string(w.PublicKey().Marshal()) {
		t.Fatal("read back another key")
	}
	if _, err := Write(path, "again"); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("overwrote an existing key: %v", err)
	}
}

// OpenSSH refuses a private key others can read; so do we.
func TestReadRefusesAnUnprotectedKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	if _, err := Write(path, ""); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := Read(path); !errors.Is(err, ErrUnprotected) {
			t.Errorf("mode %04o: got %v, want ErrUnprotected", mode, err)
		}
	}
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(path); err != nil {
		t.Errorf("mode 0400: %v", err)
	}
}

func TestReadReportsAMissingFile(t *testing.T) {
	if _, err := Read(filepath.Join(t.TempDir(), "none")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("got %v", err)
	}
}
