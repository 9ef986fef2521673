package countpass

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"ec2kit/internal/cli"
	"ec2kit/internal/count"
	"ec2kit/internal/decode"
	"ec2kit/internal/s3stream"
)

// worker processes one key: it reads the key's source, adding the bytes it reads to
// progress, and writes the output file with write.
type worker interface {
	// out is the directory of the output files.
	out() string
	// do processes item.Key; a caller that knows the object's size and ETag (from a
	// listing) passes them, which spares a HEAD and pins the read to that version.
	do(ctx context.Context, item s3stream.Object, progress *atomic.Int64) (done, error)
}

// done is what a worker did for one key.
type done struct {
	Bytes   int64  // source bytes read
	Rows    int64  // rows counted (--download: lines written)
	Skipped uint64 // rows too short to have the counted field
}

// protocol writes whole lines on stdout for the orchestrator.
type protocol struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (p *protocol) line(fields ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.w.WriteString(strings.Join(fields, "\t"))
	p.w.WriteByte('\n')
	p.w.Flush() // the orchestrator acts on each line as it comes
}

// runKeys reads keys from stdin as they arrive and runs up to o.Jobs at once.
func runKeys(ctx context.Context, o Options, w worker, stdin io.Reader, stdout io.Writer) error {
	out := &protocol{w: bufio.NewWriter(stdout)}
	keys := make(chan string)
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range o.Jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for key := range keys {
				if err := runKey(ctx, o, w, key, out); err != nil {
					failed.Store(true)
					msg := strings.ReplaceAll(err.Error(), "\n", " ")
					fmt.Fprintf(os.Stderr, "countpass: %s: %s\n", key, msg)
					out.line("err", key, msg)
				}
			}
		}()
	}
	sc := bufio.NewScanner(stdin)
	sc.Buffer(nil, 64<<10)
	for sc.Scan() && ctx.Err() == nil {
		key := strings.TrimSuffix(sc.Text(), "\r")
		if key == "" {
			continue
		}
		select {
		case keys <- key:
		case <-ctx.Done():
		}
	}
	close(keys)
	wg.Wait()
	switch {
	case ctx.Err() != nil:
		return cli.Errorf(cli.ExitInterrupted, "interrupted")
	case sc.Err() != nil:
		return cli.Errorf(cli.ExitUsage, "reading keys from stdin: %v", sc.Err())
	case failed.Load():
		return cli.Silent(cli.ExitFailed)
	}
	return nil
}

// runKey processes one key and prints its ok line (the caller prints err lines).
func runKey(ctx context.Context, o Options, w worker, key string, out *protocol) error {
	if err := validKey(key); err != nil {
		return err
	}
	path := filepath.Join(w.out(), filepath.FromSlash(key))
	if o.SkipExisting {
		if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() {
			out.line("ok", key, "0", "0", "cached")
			return nil
		}
	}
	var progress atomic.Int64
	stop := reportProgress(o.Progress, key, &progress, out)
	d, err := w.do(ctx, s3stream.Object{Key: key}, &progress)
	stop() // before the key's ok/err line: no progress line follows it
	if err != nil {
		return err
	}
	reportSkipped(key, d.Skipped, o.column())
	out.line("ok", key, fmt.Sprint(d.Bytes), fmt.Sprint(d.Rows))
	return nil
}

// reportProgress prints the key's progress once a second (when on) until stop is called.
func reportProgress(on bool, key string, progress *atomic.Int64, out *protocol) (stop func()) {
	if !on {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				out.line("progress", key, fmt.Sprint(progress.Load()))
			case <-done:
				return
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

// writeAtomic writes path through a temporary dotfile in the same directory, fsyncs and
// renames it, so a crash leaves either the whole file or none under its name.
func writeAtomic(path string, write func(w io.Writer) error) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	bw := bufio.NewWriterSize(tmp, 1<<20)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil { // make the rename itself durable
		d.Sync()
		d.Close()
	}
	return nil
}

// countingReader adds the bytes read to n.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// writeCounts is the result file's content: the filter's output.
func writeCounts(c *count.Counts) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := c.WriteTo(w)
		return err
	}
}

// fromS3 handles --keys and --download.
type fromS3 struct {
	o      Options
	c      *s3stream.Client
	prefix string
}

func (s *fromS3) out() string {
	if s.o.Download {
		return s.o.Data
	}
	return s.o.Results
}

func (s *fromS3) do(ctx context.Context, obj s3stream.Object, progress *atomic.Int64) (done, error) {
	key := obj.Key
	if !strings.HasPrefix(key, s.prefix) {
		return done{}, fmt.Errorf("key is outside --src prefix %q", s.prefix)
	}
	if obj.ETag == "" {
		var err error
		if obj, err = s.c.Stat(ctx, key); err != nil {
			return done{}, err
		}
	}
	stream := s.c.Open(ctx, obj)
	defer stream.Close()
	br := bufio.NewReaderSize(countingReader{stream, progress}, 64<<10)
	head, err := br.Peek(decode.HeadSize)
	if err != nil && err != io.EOF {
		return done{}, err
	}
	format := decode.Detect(head)
	path := filepath.Join(s.out(), filepath.FromSlash(key))
	if format == decode.Parquet {
		stream.Close() // Parquet reads the footer, then only the columns it needs
		ra := s.c.ReaderAt(ctx, obj)
		if s.o.Download {
			var rows int64
			err := writeAtomic(path, func(w io.Writer) (err error) {
				rows, err = decode.ParquetCSV(ra, obj.Size, w)
				return err
			})
			progress.Store(obj.Size)
			return done{Bytes: obj.Size, Rows: rows}, err
		}
		c, err := decode.ParquetCounts(ra, obj.Size, s.o.column())
		progress.Store(obj.Size)
		if err != nil {
			return done{}, err
		}
		return done{Bytes: obj.Size, Rows: int64(c.Rows)}, writeAtomic(path, writeCounts(c))
	}
	if s.o.Download {
		rows, err := download(format, br, path)
		return done{Bytes: progress.Load(), Rows: rows}, err
	}
	c, err := countCSV(format, br, s.o.column(), 1)
	if err != nil {
		return done{}, err
	}
	return done{Bytes: progress.Load(), Rows: int64(c.Rows), Skipped: c.Skipped}, writeAtomic(path, writeCounts(c))
}

// download writes the first 5 fields of every line of the decoded stream r to path.
func download(format decode.Format, r io.Reader, path string) (int64, error) {
	d, err := decode.CSVReader(format, r, count.Passengers) // the layout's 4 fields at least
	if err != nil {
		return 0, err
	}
	defer d.Close()
	var lines int64
	err = writeAtomic(path, func(w io.Writer) error {
		s := count.NewSplitter(d, count.BlockSize)
		buf := make([]byte, count.BlockSize+count.MaxLine)
		var out []byte
		for {
			blk, final, err := s.Next(buf)
			if err != nil {
				return err
			}
			out = count.AppendFields(out[:0], blk, 5)
			lines += int64(bytes.Count(out, []byte{'\n'}))
			if _, err := w.Write(out); err != nil {
				return err
			}
			if final {
				return nil
			}
		}
	})
	return lines, err
}

// countFiles handles --count-files: keys are paths under Data.
type countFiles struct{ o Options }

func (c *countFiles) out() string { return c.o.Results }

func (c *countFiles) do(ctx context.Context, item s3stream.Object, progress *atomic.Int64) (done, error) {
	key := item.Key
	f, err := os.Open(filepath.Join(c.o.Data, filepath.FromSlash(key)))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return done{}, fmt.Errorf("no such file under %s", c.o.Data)
		}
		return done{}, err
	}
	defer f.Close()
	counts, err := countReaderAt(f, c.o.column())
	if err != nil {
		return done{}, err
	}
	st, _ := f.Stat()
	progress.Store(st.Size())
	return done{Bytes: st.Size(), Rows: int64(counts.Rows), Skipped: counts.Skipped}, writeAtomic(filepath.Join(c.o.Results, filepath.FromSlash(key)), writeCounts(counts))
}
