package count

import (
	"bytes"
	"math/bits"

	"golang.org/x/sys/cpu"
)

// useIndex selects the indexed kernel (linesIndexed) where the CPU has AVX2; tests clear
// it to run the pure-Go kernel on the same inputs.
var useIndex = cpu.X86.HasAVX2

// lines counts every complete line of p, whose keys follow the need-th comma of their
// line, and returns the unfinished tail.
func (c *Counts) lines(p []byte, need int) []byte {
	if useIndex {
		return c.linesIndexed(p, need)
	}
	return c.linesSWAR(p, need)
}

// masks sets bit j of commas[i] and of newlines[i] where p[64*i+j] is ',' and '\n', for
// the first chunks 64-byte chunks of p (index_amd64.s). It needs AVX2.
//
//go:noescape
func masks(p *byte, chunks int, commas, newlines *uint64)

const (
	// window is how many 64-byte words of rows one index serves: the lines that start in
	// its 4 KiB. Indexing a window at a time keeps the rows, whose key bytes are read back
	// after indexing, and the bitmaps (1 KiB) in L1, and one call per window makes the call's
	// cost vanish. Measured on taxi rows: 2 and 4 KiB windows count alike, 8 KiB 3% slower,
	// 16 KiB 18% and 32 KiB 42% (the rows no longer stay in a 32 KiB L1).
	window = 64
	// lookahead is how many words past the window are indexed too, so a line starting in
	// the window finds its key (within 64 bytes of its start) and its end (within 192) in
	// the index. A line that does not is handled from the bytes.
	lookahead = 3
)

// linesIndexed is lines built on a structural index, the way simdjson parses JSON: AVX2
// turns each 64 bytes into a bitmap of commas and one of newlines (masks), 64 bytes in 16
// instructions, and each line is then walked with bit arithmetic on those bitmaps
// instead of byte by byte.
//
// For a line starting at s, the 64 bits of each bitmap from s are one shift pair. Clearing
// the lowest comma bit need-1 times and counting trailing zeros gives the need-th comma (the
// key's start) and the next one (its end) with no loop over bytes; a newline bit below
// the key's end means the row is short or the key is its last field, and such rows (rare
// in taxi data) go to the exact per-line code (slowLine). The line's end is the first
// newline bit among the next three words. Lines whose key is further in go to farLine.
func (c *Counts) linesIndexed(p []byte, need int) []byte {
	var x index
	s := 0
	for s < len(p) {
		base := s
		x.build(p[base:])
		lim := min(base+window*64, len(p))
		for s < lim {
			o := uint(s - base)
			w := o / 64
			cw, nw := x.at(o)
			k := -1 // the key follows the comma at s+k; the line start for need 0
			if need > 0 {
				for range need - 1 {
					cw &= cw - 1
				}
				k = bits.TrailingZeros64(cw)
				cw &= cw - 1
			}
			k2 := bits.TrailingZeros64(cw) // the comma after the key (64: none in reach)
			n := bits.TrailingZeros64(nw)  // the line's end (64: not within 64 bytes)
			// Rare in taxi rows: the key does not end at a comma within 64 bytes.
			if n <= k2 {
				if s = c.slowLine(p, &x, base, s, n, need); s < 0 {
					return p[len(p)+s:]
				}
				continue
			}
			// The line's end: the first newline in words w+1..w+3 if not within 64 bytes (no
			// newline in word w after s then). Which word holds it looks like a coin toss, but
			// taxi rows vary little in length, so it follows from where the row starts and the
			// branches are mostly predicted: picking the word with arithmetic instead (no
			// branch, three trailing-zero counts every row) measured 10% slower.
			n1, n2, n3 := x.nl[w+1], x.nl[w+2], x.nl[w+3]
			e := (w+3)*64 + uint(bits.TrailingZeros64(n3))
			if n2 != 0 {
				e = (w+2)*64 + uint(bits.TrailingZeros64(n2))
			}
			if n1 != 0 {
				e = (w+1)*64 + uint(bits.TrailingZeros64(n1))
			}
			if n < 64 {
				e = o + uint(n)
			}
			end := base + int(e)
			if e >= (w+4)*64 { // a line over ~192 bytes
				j := bytes.IndexByte(p[s+k2:], '\n')
				if j < 0 {
					return p[s:]
				}
				end = s + k2 + j
			}
			if k2 == k+2 { // a one-byte key: nearly every taxi row
				c.byByte[p[s+k+1]]++
				c.Rows++
			} else {
				c.Add(p[s+k+1:s+k2], 1)
			}
			s = end + 1
		}
	}
	return p[s:]
}

// slowLine counts the line starting at p[s] whose key does not end at a comma within its
// first 64 bytes, n of which are before its end (64: all). It returns where the next line
// starts, or -(length of the line) if the line is unfinished. It is kept out of the main
// loop, so that the loop's registers are not spilled around its calls.
func (c *Counts) slowLine(p []byte, x *index, base, s, n, need int) int {
	if n < 64 { // a short line, or the key is its last field
		c.line(p[s:s+n], need)
		return s + n + 1
	}
	return c.farLine(p, x, base, s, need)
}

// farLine counts the line starting at p[s] (x indexes p from base) whose first 64 bytes
// hold neither its end nor its key's end: the key is a far field, or long. It walks the
// index 64 bytes at a time, counting the commas of each step with one popcount, and returns
// where the next line starts, or -(length of the line) if the line is unfinished. Past the
// index, the line is counted from its bytes.
func (c *Counts) farLine(p []byte, x *index, base, s, need int) int {
	t := uint(s - base)
	ks := s // the key's start
	// Pass the need commas before the key, counting only those before the line's end.
	for left := need; left > 0; t += 64 {
		if !x.reaches(t) {
			return c.lineAt(p, s, need)
		}
		cw, nw := x.at(t)
		if nw != 0 {
			cw &= nw&-nw - 1 // the commas before the line's end
		}
		if pc := bits.OnesCount64(cw); pc < left {
			if nw != 0 { // a short row
				c.Skipped++
				return base + int(t) + bits.TrailingZeros64(nw) + 1
			}
			left -= pc
			continue
		}
		for range left - 1 {
			cw &= cw - 1
		}
		ks = base + int(t) + bits.TrailingZeros64(cw) + 1
		break
	}
	// The key ends at the first comma or newline from ks.
	for t = uint(ks - base); ; t += 64 {
		if !x.reaches(t) {
			return c.lineAt(p, s, need)
		}
		cw, nw := x.at(t)
		if cw|nw == 0 {
			continue
		}
		ke := base + int(t) + bits.TrailingZeros64(cw|nw)
		e := ke
		if p[ke] == ',' {
			j := bytes.IndexByte(p[ke:], '\n')
			if j < 0 {
				return s - len(p)
			}
			e = ke + j
		} else {
			if ke > ks && p[ke-1] == '\r' { // the line's trailing "\r"
				ke--
			}
			if need == 0 && ke == ks { // a blank line
				c.Skipped++
				return e + 1
			}
		}
		c.Add(p[ks:ke], 1)
		return e + 1
	}
}

// lineAt counts the line starting at p[s] from its bytes and returns where the next line
// starts, or -(length of the line) if it is unfinished.
func (c *Counts) lineAt(p []byte, s, need int) int {
	e := bytes.IndexByte(p[s:], '\n')
	if e < 0 {
		return s - len(p)
	}
	c.line(p[s:s+e], need)
	return s + e + 1
}

// index is the structural index of up to window+lookahead 64-byte words of rows: bit j of
// cm[i] (nl[i]) is set where byte 64*i+j is a comma (newline).
type index struct {
	cm, nl [window + lookahead]uint64
}

// build indexes the start of p; words past the end of p are 0. The last partial 64 bytes
// are indexed from a zero-padded copy, so the vector loads never read past p.
func (x *index) build(p []byte) {
	full := min(len(p)/64, len(x.cm))
	if full > 0 {
		masks(&p[0], full, &x.cm[0], &x.nl[0])
	}
	if full == len(x.cm) {
		return
	}
	var pad [64]byte
	copy(pad[:], p[full*64:])
	masks(&pad[0], 1, &x.cm[full], &x.nl[full])
	clear(x.cm[full+1:])
	clear(x.nl[full+1:])
}

// reaches reports whether the 64 bits from offset t are in the index.
func (x *index) reaches(t uint) bool { return t/64+1 < uint(len(x.cm)) }

// at returns the commas and the newlines of the 64 bytes from offset t, which the index
// must reach. (v<<1)<<(63-sh) is v<<(64-sh), 0 for sh = 0 as needed, with a count the
// compiler knows is below 64: a shift by a count that may reach 64 costs a compare and a
// mask more in Go, where it must give 0.
func (x *index) at(t uint) (cw, nw uint64) {
	w, sh := t/64, t%64
	return x.cm[w]>>sh | x.cm[w+1]<<1<<(63-sh), x.nl[w]>>sh | x.nl[w+1]<<1<<(63-sh)
}
