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
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"ec2kit/internal/cli"
	"ec2kit/internal/count"
	"ec2kit/internal/decode"
	"ec2kit/internal/nodejob"
	"ec2kit/internal/s3stream"
)

// worker processes one item: it reads the item's source, adding the bytes it reads to
// progress, and writes its output file. It returns the source bytes, rows and skipped rows.
type worker interface {
	// out is the directory of the output files.
	out() string
	do(ctx context.Context, it nodejob.Item, progress *atomic.Int64) (stats, error)
}

// stats is what one item's work amounted to.
type stats struct{ bytes, rows, skipped int64 }

// protocol writes whole event lines on stdout for the orchestrator.
type protocol struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (p *protocol) send(e nodejob.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.w.WriteString(e.Encode())
	p.w.WriteByte('\n')
	p.w.Flush() // the orchestrator acts on each line as it comes
}

// runKeys reads items from stdin as they arrive and runs up to o.Jobs at once. A notice
// (a spot interruption) is passed on as a node event; the work goes on until the
// orchestrator ends it.
func runKeys(ctx context.Context, o Options, w worker, notices <-chan string, stdin io.Reader, stdout io.Writer) error {
	out := &protocol{w: bufio.NewWriter(stdout)}
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case <-finished:
		case n := <-notices:
			out.send(nodejob.Event{Kind: "node", Class: nodejob.Notice, Msg: n})
		case <-ctx.Done():
		}
	}()
	// The queue must not make the reader wait: a cancel line behind a queued item would wait
	// for a worker. orchestrate never sends more than its window (--jobs + 1) at once.
	items := make(chan nodejob.Item, 4096)
	var failed atomic.Bool
	// A cancel stops an item that runs, or one still waiting for a worker.
	var mu sync.Mutex
	cancels := map[string]context.CancelFunc{}
	cancelled := map[string]bool{}
	var wg sync.WaitGroup
	for range o.Jobs {
		wg.Go(func() {
			for it := range items {
				id := it.Result()
				ictx, cancel := context.WithCancel(ctx)
				mu.Lock()
				if cancelled[id] {
					cancel()
				}
				cancels[id] = cancel
				mu.Unlock()
				err := runItem(ictx, o, w, it, out)
				mu.Lock()
				delete(cancels, id)
				delete(cancelled, id)
				mu.Unlock()
				cancel()
				if err != nil {
					failed.Store(true)
					fmt.Fprintf(os.Stderr, "countpass: %s: %v\n", id, err)
					out.send(nodejob.Event{Kind: "err", ID: id, Class: classify(err), Msg: err.Error()})
				}
			}
		})
	}
	sc := bufio.NewScanner(stdin)
	sc.Buffer(nil, 64<<10)
	for sc.Scan() && ctx.Err() == nil {
		if sc.Text() == "" {
			continue
		}
		it, cancel, err := nodejob.ParseInput(sc.Text())
		if cancel != "" {
			mu.Lock()
			if c := cancels[cancel]; c != nil {
				c()
			} else {
				cancelled[cancel] = true
			}
			mu.Unlock()
			continue
		}
		if err != nil {
			failed.Store(true)
			fmt.Fprintf(os.Stderr, "countpass: %v\n", err)
			if id := sc.Text(); !strings.Contains(id, "\t") {
				// A bare key that cannot be a result: it is its own id.
				out.send(nodejob.Event{Kind: "err", ID: id, Class: nodejob.Data, Msg: err.Error()})
			}
			continue
		}
		select {
		case items <- it:
		case <-ctx.Done():
		}
	}
	close(items)
	wg.Wait()
	switch {
	case ctx.Err() != nil:
		return cli.Errorf(cli.ExitInterrupted, "interrupted")
	case sc.Err() != nil:
		return cli.Errorf(cli.ExitUsage, "reading items from stdin: %v", sc.Err())
	case failed.Load():
		return cli.Silent(cli.ExitFailed)
	}
	return nil
}

// classify tells a disk that cannot hold results (the node should leave the job) from a
// failure of the item itself.
func classify(err error) nodejob.Class {
	if errors.As(err, new(retryable)) {
		return nodejob.Retry
	}
	for _, e := range []error{syscall.ENOSPC, syscall.EIO, syscall.EROFS, syscall.EDQUOT} {
		if errors.Is(err, e) {
			return nodejob.Sick
		}
	}
	return nodejob.Data
}

// runItem processes one item and sends its ok event (the caller sends err events).
func runItem(ctx context.Context, o Options, w worker, it nodejob.Item, out *protocol) error {
	var progress atomic.Int64
	stop := reportProgress(o.Progress, it.Result(), &progress, out)
	st, err := w.do(ctx, it, &progress)
	stop() // before the item's ok/err line: no progress line follows it
	if err != nil {
		return err
	}
	out.send(nodejob.Event{Kind: "ok", ID: it.Result(), Bytes: st.bytes, Rows: st.rows, Skipped: st.skipped})
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
				out.send(nodejob.Event{Kind: "progress", ID: key, Bytes: progress.Load()})
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

func (s *fromS3) do(ctx context.Context, it nodejob.Item, progress *atomic.Int64) (stats, error) {
	key := it.Key
	if !strings.HasPrefix(key, s.prefix) {
		return stats{}, fmt.Errorf("key is outside --src prefix %q", s.prefix)
	}
	// The orchestrator sends the size and ETag it listed: no HEAD, and the read is pinned to
	// exactly that version.
	obj := s3stream.Object{Key: key, Size: it.Size, ETag: it.ETag}
	if it.Size < 0 || it.ETag == "" {
		var err error
		if obj, err = s.c.Stat(ctx, key); err != nil {
			return stats{}, err
		}
	}
	if !it.Whole() {
		return s.countPiece(ctx, obj, it, progress)
	}
	// The format comes from a GET of the first bytes alone, beside the stream's first
	// parts: a part is delivered whole, and one that waits its turn behind a node's other
	// GETs would hold up a Parquet object, which reads other bytes.
	stream := s.c.Open(ctx, obj)
	defer stream.Close()
	head, tail, err := s.probe(ctx, obj)
	if err != nil {
		return stats{}, err
	}
	br := bufio.NewReaderSize(countingReader{stream, progress}, 64<<10)
	format := decode.Detect(head.B)
	path := filepath.Join(s.out(), filepath.FromSlash(key))
	if format == decode.Parquet {
		stream.Close() // Parquet reads the footer, then only the columns it needs
		ra := decode.Known(s.c.ReaderAt(ctx, obj), head, tail)
		if s.o.Download {
			var rows int64
			err := writeAtomic(path, func(w io.Writer) (err error) {
				rows, err = decode.ParquetCSV(ra, obj.Size, w)
				return err
			})
			progress.Store(obj.Size)
			return stats{bytes: obj.Size, rows: rows}, err
		}
		c, err := decode.ParquetCounts(ra, obj.Size, s.o.column())
		progress.Store(obj.Size)
		if err != nil {
			return stats{}, err
		}
		return stats{bytes: obj.Size, rows: int64(c.Rows)}, writeAtomic(path, writeCounts(c))
	}
	if s.o.Download {
		rows, err := download(format, br, path)
		return stats{bytes: progress.Load(), rows: rows}, err
	}
	c, err := countCSV(format, br, s.o.column(), 1)
	if err != nil {
		return stats{}, err
	}
	return stats{bytes: progress.Load(), rows: int64(c.Rows), skipped: int64(c.Skipped)}, writeAtomic(path, writeCounts(c))
}

// probe reads an object's first bytes, which tell its format, and for a key named like a
// Parquet file its tail with the footer too, beside them: a Parquet object is read in
// rounds (footer, then column chunks), and each round waits for S3's first byte. The
// content decides the format; the name only saves a round.
func (s *fromS3) probe(ctx context.Context, obj s3stream.Object) (head, tail decode.Span, err error) {
	ra := s.c.ReaderAt(ctx, obj)
	head.B = make([]byte, min(decode.HeadSize, obj.Size))
	var g errgroup.Group
	g.Go(func() error {
		if _, err := ra.ReadAt(head.B, 0); err != nil && err != io.EOF {
			return err
		}
		return nil
	})
	if strings.HasSuffix(strings.ToLower(obj.Key), ".parquet") {
		tail.Off = max(0, obj.Size-decode.FooterGuess)
		tail.B = make([]byte, obj.Size-tail.Off)
		g.Go(func() error {
			if _, err := ra.ReadAt(tail.B, tail.Off); err != nil && err != io.EOF {
				return err
			}
			return nil
		})
	}
	return head, tail, g.Wait()
}

// countPiece counts the rows of one piece of a plain CSV object (orchestrate splits only
// those). Every piece starts with the object's header, which names the column and is not
// counted, so the pieces' counts add up to the whole object's.
func (s *fromS3) countPiece(ctx context.Context, obj s3stream.Object, it nodejob.Item, progress *atomic.Int64) (stats, error) {
	if s.o.Download {
		return stats{}, fmt.Errorf("download takes whole objects, not pieces")
	}
	r := pieceOf(ctx, s.c, obj, it, true)
	defer r.Close()
	br := bufio.NewReaderSize(countingReader{r, progress}, 64<<10)
	head, err := br.Peek(decode.HeadSize)
	if err != nil && err != io.EOF {
		return stats{}, err
	}
	if f := decode.Detect(head); f != decode.CSV {
		return stats{}, fmt.Errorf("piece %d: only plain CSV objects can be counted in pieces, this one is %v", it.Part, f)
	}
	c, err := countCSV(decode.CSV, br, s.o.column(), 1)
	if err != nil {
		return stats{}, err
	}
	return stats{bytes: it.End - it.Start, rows: int64(c.Rows), skipped: int64(c.Skipped)},
		writeAtomic(filepath.Join(s.out(), filepath.FromSlash(it.Result())), writeCounts(c))
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

func (c *countFiles) do(ctx context.Context, it nodejob.Item, progress *atomic.Int64) (stats, error) {
	f, err := os.Open(filepath.Join(c.o.Data, filepath.FromSlash(it.Key)))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return stats{}, fmt.Errorf("no such file under %s", c.o.Data)
		}
		return stats{}, err
	}
	defer f.Close()
	counts, err := countReaderAt(f, c.o.column())
	if err != nil {
		return stats{}, err
	}
	st, _ := f.Stat()
	progress.Store(st.Size())
	return stats{bytes: st.Size(), rows: int64(counts.Rows), skipped: int64(counts.Skipped)},
		writeAtomic(filepath.Join(c.o.Results, filepath.FromSlash(it.Key)), writeCounts(counts))
}
