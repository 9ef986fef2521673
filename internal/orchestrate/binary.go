package orchestrate

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"ec2kit/internal/cli"
)

// Binary is one countpass build to deploy: read once, named by its hash on the nodes so
// that a node keeps one copy per build and a re-run uploads nothing.
type Binary struct {
	Data       []byte
	RemotePath string // relative to the login user's home

	gzOnce sync.Once
	gz     []byte
}

// Gzipped is the build compressed, made once, when a node first needs it: it goes up a
// third of its size (a fleet's operator may be a laptop far from its nodes), and gzip is
// on every Linux image.
func (b *Binary) Gzipped() []byte {
	b.gzOnce.Do(func() {
		var buf bytes.Buffer
		w, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed) // the level is valid
		_, _ = w.Write(b.Data)                            // a bytes.Buffer takes all
		_ = w.Close()
		b.gz = buf.Bytes()
	})
	return b.gz
}

// Binaries are the countpass builds at hand, by the architecture of the Linux node each
// runs on, as `uname -m` names it.
type Binaries map[string]*Binary

// countpassNames are the builds looked for: the plain name first (the one built with the
// other commands), then the cross-built ones that scripts/setup leaves beside it.
var countpassNames = []string{"countpass", "countpass-linux-amd64", "countpass-linux-arm64"}

// LocalCountpass finds the countpass builds beside this executable, else on PATH, and
// tells their architectures from their ELF headers (a build for this Mac is no use on a
// node, and a Graviton node needs an arm64 one).
func LocalCountpass() (Binaries, error) {
	dir := ""
	if exe, err := os.Executable(); err == nil {
		dir = filepath.Dir(exe)
	}
	bins := Binaries{}
	found := false
	for _, name := range countpassNames {
		path := filepath.Join(dir, name)
		if !fileExists(path) {
			if path, _ = exec.LookPath(name); path == "" {
				continue
			}
		}
		found = true
		f, err := os.Open(path)
		if err != nil {
			return nil, cli.Errorf(cli.ExitLocal, "reading countpass: %v", err)
		}
		// The header says the architecture: a build of no use, or of one already found, is
		// not read whole.
		arch := nodeArch(f)
		var b []byte
		if arch != "" && bins[arch] == nil {
			b, err = io.ReadAll(f)
		}
		f.Close()
		if err != nil {
			return nil, cli.Errorf(cli.ExitLocal, "reading countpass: %v", err)
		}
		if b == nil {
			continue
		}
		sum := sha256.Sum256(b)
		bins[arch] = &Binary{Data: b, RemotePath: ".ec2kit/bin/countpass-" + hex.EncodeToString(sum[:6])}
	}
	if !found {
		return nil, cli.WithHint(cli.Errorf(cli.ExitLocal, "countpass not found beside %s nor on PATH", os.Args[0]),
			"build it: go build -o bin/ ./cmd/... (scripts/setup does)")
	}
	return bins, nil
}

// elfArch names, as `uname -m` does, the machines of the ELF binaries a node can run.
var elfArch = map[elf.Machine]string{elf.EM_X86_64: "x86_64", elf.EM_AARCH64: "aarch64"}

// goArch is Go's name for each node architecture, for the build hint.
var goArch = map[string]string{"x86_64": "amd64", "aarch64": "arm64"}

// nodeArch returns the node architecture a binary runs on, or "" if it is not a 64-bit
// Linux executable of a known machine.
func nodeArch(r io.ReaderAt) string {
	f, err := elf.NewFile(r)
	if err != nil {
		return ""
	}
	if f.Class != elf.ELFCLASS64 || f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN ||
		f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX {
		return ""
	}
	return elfArch[f.Machine]
}

// For returns the build for a node whose `uname -m` is arch.
func (bs Binaries) For(arch string) (*Binary, error) {
	if b := bs[arch]; b != nil {
		return b, nil
	}
	have := "none"
	if len(bs) > 0 {
		have = strings.Join(slices.Sorted(maps.Keys(bs)), ", ")
	}
	err := cli.Errorf(cli.ExitLocal, "the node is %s but no countpass here is built for it (have: %s)", arch, have)
	ga := goArch[arch]
	if ga == "" {
		return nil, err
	}
	return nil, cli.WithHint(err, fmt.Sprintf("build one beside orchestrate: GOOS=linux GOARCH=%s go build -o bin/countpass-linux-%s ./cmd/countpass (scripts/setup does)", ga, ga))
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
