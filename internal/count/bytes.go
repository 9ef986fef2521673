package count

import (
	"bytes"
	"sync"
)

// Bytes counts column col of the CSV text data (a whole file in memory, typically mapped)
// on workers goroutines: the rows are cut into chunks at line ends and counted where they
// lie, with no copy at all.
func Bytes(data []byte, col Column, workers int) (*Result, error) {
	res := &Result{Bytes: int64(len(data)), col: col}
	if len(data) == 0 {
		return res, nil
	}
	i := bytes.IndexByte(data, '\n')
	if i < 0 {
		i = len(data)
	}
	if i > MaxLine {
		return nil, ErrLongLine
	}
	if err := res.setHeader(data[:i]); err != nil {
		return nil, err
	}
	need := res.need
	rows := data[min(i+1, len(data)):]
	chunks := make(chan []byte, 64)
	var long error // set before chunks is closed
	go func() {
		defer close(chunks)
		for len(rows) > 0 {
			// A chunk is BlockSize (≤ MaxLine) bytes and the rest of the line crossing its
			// end: that line is the only one that can be too long.
			n := min(BlockSize, len(rows))
			start := bytes.LastIndexByte(rows[:n], '\n') + 1
			end := len(rows)
			if j := bytes.IndexByte(rows[n:], '\n'); j >= 0 {
				end = n + j
			}
			if end-start > MaxLine {
				long = ErrLongLine
				return
			}
			n = min(end+1, len(rows))
			chunks <- rows[:n]
			rows = rows[n:]
		}
	}()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &Counts{}
			for chunk := range chunks {
				if rest := c.lines(chunk, need); len(rest) > 0 { // only the file's last line
					c.line(rest, need)
				}
			}
			mu.Lock()
			res.Merge(c)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if long != nil {
		return nil, long
	}
	return res, nil
}
