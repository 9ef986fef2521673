package count

import (
	"bytes"
	"io"
	"sync"
	"sync/atomic"
)

// ReaderAt counts column col of the CSV file ra of size bytes on workers goroutines that each read their
// own blocks with ReadAt. Unlike Reader's one reader feeding workers, a block is read and
// counted on the same core, so it is still in that core's cache when counted, and no core
// waits on another. A line belongs to the block its first byte is in; each block reads a
// little past its end to finish its last line. blockSize 0 means BlockSize.
func ReaderAt(ra io.ReaderAt, size int64, col Column, workers, blockSize int) (*Result, error) {
	if blockSize <= 0 {
		blockSize = BlockSize
	}
	bs := int64(min(blockSize, MaxLine)) // so only a line crossing a block's end can be long
	res := &Result{Bytes: size, col: col}
	// The header is the first line; block 0 starts after it.
	head := make([]byte, min(size, MaxLine+1))
	if _, err := ra.ReadAt(head, 0); err != nil && err != io.EOF {
		return nil, err
	}
	i := bytes.IndexByte(head, '\n')
	switch {
	case i < 0 && int64(len(head)) < size:
		return nil, ErrLongLine
	case i < 0:
		i = len(head)
	}
	if i > MaxLine {
		return nil, ErrLongLine
	}
	if size > 0 {
		if err := res.setHeader(head[:i]); err != nil {
			return nil, err
		}
	}
	first := int64(i + 1)

	var next atomic.Int64
	next.Store(first)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &Counts{}
			buf := make([]byte, 1+bs+tailSize)
			for {
				off := next.Add(bs) - bs
				if off >= size {
					break
				}
				if err := c.block(ra, size, off, bs, first, res.need, buf); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					break
				}
			}
			mu.Lock()
			res.Merge(c)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return res, firstErr
}

// tailSize is how far past its end a block reads at first to finish its last line.
const tailSize = 64 << 10

// block counts the lines that start in [off, off+bs) of ra, keys after their need-th comma.
func (c *Counts) block(ra io.ReaderAt, size, off, bs, first int64, need int, buf []byte) error {
	from := max(off-1, 0) // the byte before the block tells whether a line starts at off
	for tail := int64(tailSize); ; tail = MaxLine {
		n := min(off+bs+tail, size) - from
		if int64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		b := buf[:n]
		if _, err := ra.ReadAt(b, from); err != nil && err != io.EOF {
			return err
		}
		a := int(off - from)
		if off > first { // skip the end of a line that started in the previous block
			nl := bytes.IndexByte(b, '\n')
			if nl < 0 || int64(nl)+1 >= bs+(off-from) {
				return nil // no line starts in this block
			}
			a = nl + 1
		}
		// The last line to count is the one holding byte off+bs-1; it ends at the first
		// newline from there.
		endOff := off + bs - 1 - from
		if endOff >= n {
			endOff = n - 1
		}
		e := bytes.IndexByte(b[endOff:], '\n')
		switch {
		case e >= 0:
			e += int(endOff) + 1
		case from+n == size: // the last line of the file, maybe without a newline
			e = int(n)
		case tail < MaxLine:
			continue // a long line: read further
		default:
			return ErrLongLine
		}
		if a >= e {
			return nil
		}
		// That last line is the one that may be too long.
		ls, le := bytes.LastIndexByte(b[:endOff], '\n')+1, e
		if b[le-1] == '\n' {
			le--
		}
		if le-ls > MaxLine {
			return ErrLongLine
		}
		if rest := c.lines(b[a:e], need); len(rest) > 0 {
			c.line(rest, need)
		}
		return nil
	}
}
