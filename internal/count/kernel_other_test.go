//go:build !amd64

package count

// kernels are the kernels this machine can run: only the pure-Go one off amd64.
var kernels = []string{"swar"}

func useKernel(string) (restore func()) { return func() {} }
