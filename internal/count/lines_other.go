//go:build !amd64

package count

// lines counts every complete line of p, whose keys follow the need-th comma of their
// line, and returns the unfinished tail. Only amd64 has the indexed kernel.
func (c *Counts) lines(p []byte, need int) []byte { return c.linesSWAR(p, need) }
