package nodejob

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Counts is a count job's result: a value of the counted column (raw bytes, "" for empty)
// and how many rows hold it. Its file form is one `value,count` line per value.
type Counts map[string]int64

// ErrOverflow marks a sum that does not fit in 64 bits: a total is exact or an error.
var ErrOverflow = errors.New("count overflows 64 bits")

// ParseCounts reads one result file. The value is everything before the last comma (the
// counted field never holds a comma, but splitting at the last one keeps any value intact);
// a value may appear only once.
func ParseCounts(b []byte) (Counts, error) {
	c := Counts{}
	if len(b) == 0 {
		return c, nil
	}
	for n, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		i := bytes.LastIndexByte(line, ',')
		if i < 0 {
			return nil, fmt.Errorf("line %d: no comma in %q", n+1, line)
		}
		v, num := string(line[:i]), string(line[i+1:])
		cnt, err := strconv.ParseInt(num, 10, 64)
		if err != nil || cnt < 0 || strings.HasPrefix(num, "+") {
			return nil, fmt.Errorf("line %d: bad count %q", n+1, num)
		}
		if _, dup := c[v]; dup {
			return nil, fmt.Errorf("line %d: value %q appears twice", n+1, v)
		}
		c[v] = cnt
	}
	return c, nil
}

// Add adds o to c, refusing (and leaving c unchanged) a sum past 64 bits.
func (c Counts) Add(o Counts) error {
	for v, n := range o {
		if c[v] > math.MaxInt64-n {
			return fmt.Errorf("%w: value %q", ErrOverflow, v)
		}
	}
	for v, n := range o {
		c[v] += n
	}
	return nil
}
