package orchestrate

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"ec2kit/internal/cli"
)

// withMachine returns a copy of an ELF binary claiming another machine and OS ABI.
func withMachine(t *testing.T, b []byte, m elf.Machine, abi elf.OSABI) []byte {
	t.Helper()
	c := slices.Clone(b)
	binary.LittleEndian.PutUint16(c[18:], uint16(m)) // e_machine
	c[elf.EI_OSABI] = byte(abi)
	return c
}

func TestNodeArch(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skip("reads this test's own Linux binary")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := nodeArch(bytes.NewReader(self)), map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH]; got != want {
		t.Fatalf("this binary: %q, want %q", got, want)
	}
	for _, c := range []struct {
		b    []byte
		want string
	}{
		{withMachine(t, self, elf.EM_AARCH64, elf.ELFOSABI_NONE), "aarch64"},
		{withMachine(t, self, elf.EM_X86_64, elf.ELFOSABI_LINUX), "x86_64"},
		{withMachine(t, self, elf.EM_RISCV, elf.ELFOSABI_NONE), ""},     // no such nodes
		{withMachine(t, self, elf.EM_X86_64, elf.ELFOSABI_FREEBSD), ""}, // not Linux
		{[]byte("\xcf\xfa\xed\xfe\x0c\x00\x00\x01 a Mach-O build for a Mac"), ""},
		{nil, ""},
	} {
		if got := nodeArch(bytes.NewReader(c.b)); got != c.want {
			t.Errorf("%q...: %q, want %q", c.b[:min(len(c.b), 20)], got, c.want)
		}
	}
}

func TestBinariesFor(t *testing.T) {
	amd := &Binary{RemotePath: "a"}
	bs := Binaries{"x86_64": amd}
	if b, err := bs.For("x86_64"); b != amd || err != nil {
		t.Fatal(b, err)
	}
	_, err := bs.For("aarch64")
	if cli.CodeOf(err) != cli.ExitLocal || !strings.Contains(err.Error(), "aarch64") || !strings.Contains(err.Error(), "have: x86_64") ||
		!strings.Contains(cli.HintOf(err), "GOARCH=arm64") {
		t.Fatalf("%v (hint %q)", err, cli.HintOf(err))
	}
	if _, err := (Binaries{}).For("x86_64"); err == nil || !strings.Contains(err.Error(), "have: none") {
		t.Fatal(err)
	}
}
