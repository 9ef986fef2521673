package count

import "golang.org/x/sys/cpu"

// kernels are the kernels this machine can run: the indexed one where the CPU has AVX2,
// and always the pure-Go one.
var kernels = func() []string {
	if cpu.X86.HasAVX2 {
		return []string{"index", "swar"}
	}
	return []string{"swar"}
}()

// useKernel makes lines run the named kernel, until the returned function restores the
// default.
func useKernel(name string) (restore func()) {
	old := useIndex
	useIndex = name == "index"
	return func() { useIndex = old }
}
