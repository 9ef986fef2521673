// Command gen writes taxi-like CSV (2015 header generation) of about -size bytes to stdout
// for the countpass benchmark. It generates 64 MiB of rows once and repeats them: the
// tools under test see realistic rows, and generating a gigabyte takes seconds.
package main

import (
	"bufio"
	"flag"
	"os"

	"ec2kit/internal/count/taxigen"
)

func main() {
	size := flag.Int64("size", 1<<30, "bytes to write (at least)")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	g := taxigen.New(taxigen.Era2015, *seed)
	var rows []byte
	for len(rows) < 64<<20 {
		rows = g.AppendRow(rows)
	}
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	n, _ := w.WriteString(taxigen.Era2015.Header() + "\n")
	for written := int64(n); written < *size; written += int64(len(rows)) {
		if _, err := w.Write(rows); err != nil {
			os.Exit(1)
		}
	}
	if w.Flush() != nil {
		os.Exit(1)
	}
}
