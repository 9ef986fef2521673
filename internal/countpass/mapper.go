package countpass

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"ec2kit/internal/decode"
	"ec2kit/internal/nodejob"
	"ec2kit/internal/s3stream"
	"ec2kit/internal/split"
)

// mapper handles --map: each item's bytes (decompressed by content; a piece of a split
// object with the object's header line first, with --header) stream into the user's command,
// whose stdout, when it exits 0, is the item's result.
type mapper struct {
	o      Options
	c      *s3stream.Client
	prefix string
	dst    *s3stream.Client // --dst: results also go there
	dstPfx string
}

func (m *mapper) out() string { return m.o.Results }

// retryable marks a failure of one attempt that another node may not repeat (the command's
// exit or signal, a cancel, a transient read error).
type retryable struct{ error }

func (r retryable) Unwrap() error { return r.error }

// stderrLines is how much of a failed command's stderr is shown.
const stderrLines = 5

func (m *mapper) do(ctx context.Context, it nodejob.Item, progress *atomic.Int64) (stats, error) {
	if !strings.HasPrefix(it.Key, m.prefix) {
		return stats{}, fmt.Errorf("key is outside --src prefix %q", m.prefix)
	}
	obj := s3stream.Object{Key: it.Key, Size: it.Size, ETag: it.ETag}
	if it.Size < 0 || it.ETag == "" {
		var err error
		if obj, err = m.c.Stat(ctx, it.Key); err != nil {
			return stats{}, err
		}
	}
	in, err := m.input(ctx, obj, it)
	if err != nil {
		return stats{}, err
	}
	defer in.Close()
	src := &errReader{r: countingReader{in, progress}}
	path := filepath.Join(m.o.Results, filepath.FromSlash(it.Result()))
	var tail tailWriter
	err = writeAtomic(path, func(w io.Writer) error { return m.run(ctx, it, src, w, &tail) })
	if err != nil {
		if src.err != nil && !errors.Is(src.err, context.Canceled) {
			return stats{}, src.err // the input failed, not the command
		}
		for _, l := range tail.lines() {
			fmt.Fprintf(os.Stderr, "%s: %s\n", it.Result(), l)
		}
		return stats{}, err
	}
	if m.dst != nil {
		if err := m.upload(ctx, path, it.Result()); err != nil {
			os.Remove(path) // a result counts only once it is where the job said it would be
			return stats{}, retryable{fmt.Errorf("writing the result to --dst: %w", err)}
		}
	}
	return stats{bytes: progress.Load()}, nil
}

// input opens the item's bytes: a whole object decompressed by its content, or a piece of
// a plain one.
func (m *mapper) input(ctx context.Context, obj s3stream.Object, it nodejob.Item) (io.ReadCloser, error) {
	if it.Whole() {
		stream := m.c.Open(ctx, obj)
		br := bufio.NewReaderSize(stream, 64<<10)
		head, err := br.Peek(decode.HeadSize)
		if err != nil && err != io.EOF {
			stream.Close()
			return nil, err
		}
		f := decode.Detect(head)
		if f == decode.Parquet {
			f = decode.CSV // the command gets the file as it is
		}
		d, err := decode.Decompress(f, br)
		if err != nil {
			stream.Close()
			return nil, err
		}
		return struct {
			io.Reader
			io.Closer
		}{d, closers{d, stream}}, nil
	}
	return pieceOf(ctx, m.c, obj, it, m.o.Header), nil
}

// pieceOf reads the item's piece of obj (see split.Piece).
func pieceOf(ctx context.Context, c *s3stream.Client, obj s3stream.Object, it nodejob.Item, header bool) io.ReadCloser {
	open := func(ctx context.Context, start, end int64) (io.ReadCloser, error) {
		return c.OpenRange(ctx, obj, start, end), nil
	}
	return split.Piece(ctx, open, obj.Size, split.Range{Part: it.Part, Start: it.Start, End: it.End}, header)
}

// run runs the command on one item in the job's working directory, in a process group of
// its own so that a cancel or the end of ctx stops all of it.
func (m *mapper) run(ctx context.Context, it nodejob.Item, stdin io.Reader, stdout io.Writer, stderr *tailWriter) error {
	cmd := exec.CommandContext(ctx, "bash", "-c", m.o.Cmd)
	cmd.Dir = m.o.Work
	rng := fmt.Sprintf("0-%d", it.Size)
	part := 0
	if !it.Whole() {
		rng = split.Range{Start: it.Start, End: it.End}.String()
		part = it.Part
	}
	// The key travels in the environment, never through a shell's parsing.
	cmd.Env = append(os.Environ(), "EC2KIT_KEY="+it.Key, fmt.Sprintf("EC2KIT_PART=%d", part),
		"EC2KIT_RANGE="+rng, "EC2KIT_NODE="+m.o.Node)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	ownGroup(cmd)
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return retryable{errors.New("cancelled")}
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		msg := ee.String() // "exit status N" or "signal: killed"
		if l := stderr.lines(); len(l) > 0 {
			msg += ": " + l[len(l)-1]
		}
		return retryable{errors.New(msg)}
	}
	return err
}

// upload puts the finished result file into --dst under its result name. One PUT is atomic:
// S3 never holds part of a result.
func (m *mapper) upload(ctx context.Context, path, name string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	key := m.dstPfx + name
	size := st.Size()
	_, err = m.dst.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: &m.dst.Bucket, Key: &key, Body: f, ContentLength: &size})
	return err
}

// errReader remembers the error its source returned, to tell a failed input from a failed
// command.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

type closers []io.Closer

func (cs closers) Close() error {
	var errs []error
	for _, c := range cs {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// tailWriter keeps the last lines written to it (a command's stderr), bounded in memory.
type tailWriter struct {
	mu   sync.Mutex
	buf  []byte
	keep [][]byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	for {
		i := bytes.IndexByte(t.buf, '\n')
		if i < 0 {
			break
		}
		t.push(t.buf[:i])
		t.buf = t.buf[i+1:]
	}
	if len(t.buf) > 4096 { // a line without end: keep its start
		t.push(t.buf[:4096])
		t.buf = t.buf[:0]
	}
	return len(p), nil
}

func (t *tailWriter) push(line []byte) {
	t.keep = append(t.keep, bytes.Clone(bytes.TrimRight(line, "\r")))
	if len(t.keep) > stderrLines {
		t.keep = t.keep[1:]
	}
}

func (t *tailWriter) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for _, l := range t.keep {
		out = append(out, string(l))
	}
	if len(t.buf) > 0 {
		out = append(out, string(t.buf))
	}
	return out
}
