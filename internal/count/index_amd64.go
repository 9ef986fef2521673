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
	// its 8 KiB. Indexing a window at a time keeps the bitmaps (2 KiB) and the rows whose key
	// bytes are read back in L1; one call per window makes the call's cost vanish.
	window = 128
	// lookahead is how many words past the window are indexed too, so a line starting in
	// the window finds its key (within 64 bytes of its start) and its end (within 192) in
	// the index. A line that does not is handled from the bytes.
	lookahead = 3
)

// linesIndexed is lines built on a structural index, the way simdjson parses JSON: AVX2
// turns each 64 bytes into a bitmap of commas and one of newlines (masks), 64 bytes in a
// dozen instructions, and each line is then walked with bit arithmetic on those bitmaps
// instead of byte by byte.
//
// For a line starting at s, the 64 bits of each bitmap from s are one shift pair. Clearing
// the lowest comma bit need-1 times and counting trailing zeros gives the need-th comma (the
// key's start) and the next one (its end) with no loop over bytes; a newline bit below
// the key's end means the row is short or the key is its last field, and such rows (rare
// in taxi data) go to the exact per-line code. The line's end is the first newline bit
// among the next three words, picked with conditional moves rather than branches: rows
// are ~150 bytes, so whether it is in the 1st, 2nd or 3rd word is a coin toss a branch
// predictor would lose about once a row.
func (c *Counts) linesIndexed(p []byte, need int) []byte {
	var cm, nl [window + lookahead]uint64
	s := 0
	for s < len(p) {
		base := s
		index(p[base:], &cm, &nl)
		lim := min(base+window*64, len(p))
		for s < lim {
			o := uint(s - base)
			w, sh := o/64, o%64
			// The 64 bits from s. (x<<1)<<(63-sh) is x<<(64-sh) with a shift count below 64,
			// which the compiler emits as one instruction, and 0 for sh = 0 as needed.
			cw := cm[w]>>sh | cm[w+1]<<1<<(63-sh)
			nw := nl[w]>>sh | nl[w+1]<<1<<(63-sh)
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
			if k2 >= n {
				// The line ends before the key does, or neither is in reach: count the
				// line with the exact per-line code.
				e := s + n
				if n == 64 {
					from := min(e, len(p))
					j := bytes.IndexByte(p[from:], '\n')
					if j < 0 {
						return p[s:]
					}
					e = from + j
				}
				c.line(p[s:e], need)
				s = e + 1
				continue
			}
			// The first newline in words w+1..w+3 (none in word w after s, or n < 64).
			e := (w+3)*64 + uint(bits.TrailingZeros64(nl[w+3]))
			if nl[w+2] != 0 {
				e = (w+2)*64 + uint(bits.TrailingZeros64(nl[w+2]))
			}
			if nl[w+1] != 0 {
				e = (w+1)*64 + uint(bits.TrailingZeros64(nl[w+1]))
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

// index fills cm and nl with the bitmaps of the start of p; words past the end of p are 0.
// The last partial 64 bytes are indexed from a zero-padded copy, so the vector loads never
// read past p.
func index(p []byte, cm, nl *[window + lookahead]uint64) {
	full := min(len(p)/64, len(cm))
	if full > 0 {
		masks(&p[0], full, &cm[0], &nl[0])
	}
	if full == len(cm) {
		return
	}
	var pad [64]byte
	copy(pad[:], p[full*64:])
	masks(&pad[0], 1, &cm[full], &nl[full])
	clear(cm[full+1:])
	clear(nl[full+1:])
}
