// Package s3stream reads S3 objects fast: it lists keys under a prefix, and streams an
// object in order through several ranged GETs in flight at once, because one S3 connection
// delivers ~100 MB/s while a node's network and cores take several times that. Memory stays
// bounded: at most Streams parts are buffered per object.
package s3stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"golang.org/x/sync/semaphore"
)

// ErrBadURL reports an --src that is not an s3://bucket[/prefix] URL with a valid bucket name.
var ErrBadURL = errors.New("not an s3://bucket[/prefix] URL")

// ParseURL splits s3://bucket/prefix into bucket and prefix (which may be empty). The
// bucket must be a valid S3 bucket name, so a typo is a usage error here rather than an
// AWS error from the first request.
func ParseURL(s string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(s, "s3://")
	if !ok {
		return "", "", fmt.Errorf("%q: %w", s, ErrBadURL)
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("%q names no bucket: %w", s, ErrBadURL)
	}
	if !validBucket(bucket) {
		return "", "", fmt.Errorf("%q: bucket %q is not a valid bucket name (3-63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit): %w",
			s, bucket, ErrBadURL)
	}
	return bucket, prefix, nil
}

// validBucket applies S3's bucket naming rules (general purpose buckets): 3-63 characters
// of a-z, 0-9, '.' and '-', a letter or digit at both ends, no "..", not an IPv4 address.
func validBucket(b string) bool {
	if len(b) < 3 || len(b) > 63 || strings.Contains(b, "..") || net.ParseIP(b) != nil {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		alnum := 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
		if !alnum && (c != '.' && c != '-' || i == 0 || i == len(b)-1) {
			return false
		}
	}
	return true
}

// Object is one version of an S3 object: its size, and its ETag, to which every GET of a
// read is pinned (If-Match), so an object replaced while being read fails the read
// (ErrChanged) instead of splicing two versions. List and Stat fill both in; an Object
// with an empty ETag is read unpinned.
type Object struct {
	Key  string
	Size int64
	ETag string
}

// Client reads objects of one bucket.
type Client struct {
	S3       *s3.Client
	Bucket   string
	PartSize int64 // bytes per ranged GET; 0 means DefaultPartSize, less for small objects
	Streams  int   // ranged GETs in flight per object; 0: by its size, DefaultStreams to MaxStreams
	// StallTimeout bounds how long a GET may go without receiving a byte before it is
	// abandoned and tried again; 0 means DefaultStallTimeout.
	StallTimeout time.Duration
	// MaxStreams caps the GETs in flight per object when Streams is 0 (a node short of
	// memory for MaxStreams parts per object); 0 means MaxStreams.
	MaxStreams int
	// GETs, if set, bounds the GETs in flight over every object read at once, handed out
	// first come, first served. An object's GETs end one by one, and its last ones run
	// alone; with more objects open than the bound needs, each GET that ends lets one of
	// the next object's start, so a node keeps the same number in flight from its first
	// object to its last instead of in waves.
	GETs *semaphore.Weighted
}

func (c *Client) maxStreams() int {
	if c.MaxStreams > 0 {
		return c.MaxStreams
	}
	return MaxStreams
}

const (
	// DefaultPartSize: big enough that per-request latency (~10-30 ms on S3) is small next to
	// the transfer, and small because a node's GETs share its link alike: a part takes time
	// in proportion to its size, and an object read in larger parts than the others ends
	// after them, making the job's tail (bench/RESULTS.md, "network model").
	DefaultPartSize = 4 << 20
	// DefaultStreams: S3 gives ~50-100 MB/s per connection; a handful per object fills a
	// node's link when several objects are read at once.
	DefaultStreams = 6
	// MaxStreams: by default an object gets a GET in flight per DefaultPartSize of it, up to
	// this many, so that objects up to MaxStreams parts are read in one round of parts, as
	// fast as a small one, and the largest, which cannot be split (compressed ones), do not
	// make the job's tail with a handful of connections.
	MaxStreams = 32
	// MinPartSize: the smallest part an object of fewer than Streams default-sized parts is
	// cut into, so that it is still read by Streams GETs at once (a node fills its link only
	// with some 35 GETs in flight; an object read by one or two streams makes the tail),
	// while each GET still carries enough to be worth its request.
	MinPartSize = 1 << 20
	// DefaultStallTimeout: a healthy S3 sends a part's first byte within a second or two;
	// a connection silent for this long is stuck (a paused server, a dead path).
	DefaultStallTimeout = 30 * time.Second
)

// List returns the objects whose key starts with prefix and contains match, in key order.
func (c *Client) List(ctx context.Context, prefix, match string) ([]Object, error) {
	var out []Object
	p := s3.NewListObjectsV2Paginator(c.S3, &s3.ListObjectsV2Input{Bucket: &c.Bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing s3://%s/%s: %w", c.Bucket, prefix, err)
		}
		for _, o := range page.Contents {
			if k := aws.ToString(o.Key); strings.Contains(k, match) {
				out = append(out, Object{Key: k, Size: aws.ToInt64(o.Size), ETag: aws.ToString(o.ETag)})
			}
		}
	}
	return out, nil
}

var (
	// ErrNoSuchKey reports a key that does not exist.
	ErrNoSuchKey = errors.New("no such key")
	// ErrChanged reports an object whose ETag is no longer the one the read is pinned to.
	ErrChanged = errors.New("the object changed while being read: re-run")
)

// Stat returns the object's current size and ETag.
func (c *Client) Stat(ctx context.Context, key string) (Object, error) {
	h, err := c.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &c.Bucket, Key: &key})
	if err != nil {
		return Object{}, c.err(key, err)
	}
	return Object{Key: key, Size: aws.ToInt64(h.ContentLength), ETag: aws.ToString(h.ETag)}, nil
}

// err names the object in an S3 error and makes a missing key recognisable.
func (c *Client) err(key string, err error) error {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	var ae smithy.APIError
	switch {
	case errors.As(err, &nsk), errors.As(err, &nf):
		return fmt.Errorf("s3://%s/%s: %w", c.Bucket, key, ErrNoSuchKey)
	case errors.As(err, &ae) && ae.ErrorCode() == "PreconditionFailed":
		return fmt.Errorf("s3://%s/%s: %w", c.Bucket, key, ErrChanged)
	case errors.As(err, &ae):
		return fmt.Errorf("s3://%s/%s: %s: %s", c.Bucket, key, ae.ErrorCode(), ae.ErrorMessage())
	}
	return fmt.Errorf("s3://%s/%s: %w", c.Bucket, key, err)
}

// ErrStalled reports a GET that made no progress for the Client's StallTimeout, on every try.
var ErrStalled = errors.New("S3 stalled: no data")

// get reads bytes [off, off+len(p)) of obj into p. A body cut short or a stall is tried
// again (the SDK retries requests, not a body); an error response is final.
func (c *Client) get(ctx context.Context, obj Object, p []byte, off int64) error {
	const tries = 3
	var err error
	for range tries {
		var final bool
		if final, err = c.getOnce(ctx, obj, p, off); err == nil || final || ctx.Err() != nil {
			break
		}
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrStalled):
		err = fmt.Errorf("%w for %v, %d tries", err, c.stallTimeout(), tries)
	}
	return c.err(obj.Key, fmt.Errorf("reading bytes %d-%d: %w", off, off+int64(len(p))-1, err))
}

// getShared is get within the Client's GETs in flight: a GET holds its place only while it
// runs (never while its part waits to be read), so objects read at once never wait on
// each other for good.
func (c *Client) getShared(ctx context.Context, obj Object, p []byte, off int64) error {
	if c.GETs == nil {
		return c.get(ctx, obj, p, off)
	}
	if err := c.GETs.Acquire(ctx, 1); err != nil {
		return c.err(obj.Key, fmt.Errorf("reading bytes %d-%d: %w", off, off+int64(len(p))-1, err))
	}
	defer c.GETs.Release(1)
	return c.get(ctx, obj, p, off)
}

// getOnce is one GET of bytes [off, off+len(p)), abandoned when no byte has come for the
// stall timeout. final reports an error response, which another try would not change.
func (c *Client) getOnce(ctx context.Context, obj Object, p []byte, off int64) (final bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var stalled atomic.Bool
	stall := c.stallTimeout()
	watchdog := time.AfterFunc(stall, func() { stalled.Store(true); cancel() })
	defer watchdog.Stop()
	defer func() {
		if err != nil && stalled.Load() {
			final, err = false, ErrStalled
		}
	}()
	rng := fmt.Sprintf("bytes=%d-%d", off, off+int64(len(p))-1)
	in := &s3.GetObjectInput{Bucket: &c.Bucket, Key: &obj.Key, Range: &rng}
	if obj.ETag != "" {
		in.IfMatch = &obj.ETag
	}
	out, err := c.S3.GetObject(ctx, in)
	if err != nil {
		return true, err
	}
	defer out.Body.Close()
	for n := 0; n < len(p); {
		watchdog.Reset(stall)
		m, err := out.Body.Read(p[n:])
		n += m
		switch {
		case n == len(p):
		case errors.Is(err, io.EOF):
			return false, io.ErrUnexpectedEOF
		case err != nil:
			return false, err
		}
	}
	return false, nil
}

func (c *Client) stallTimeout() time.Duration {
	if c.StallTimeout > 0 {
		return c.StallTimeout
	}
	return DefaultStallTimeout
}

// ReaderAt returns random access to obj (for Parquet, which reads its footer first and
// then only the column chunks it needs).
func (c *Client) ReaderAt(ctx context.Context, obj Object) io.ReaderAt {
	return readerAt{ctx, c, obj}
}

type readerAt struct {
	ctx context.Context
	c   *Client
	obj Object
}

func (r readerAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 { // never a negative Range header
		return 0, fmt.Errorf("s3://%s/%s: read at negative offset %d", r.c.Bucket, r.obj.Key, off)
	}
	if off >= r.obj.Size {
		return 0, io.EOF
	}
	n := min(int64(len(p)), r.obj.Size-off)
	if err := r.c.get(r.ctx, r.obj, p[:n], off); err != nil {
		return 0, err
	}
	if n < int64(len(p)) {
		return int(n), io.EOF
	}
	return int(n), nil
}

// Open streams obj from the start. Objects of one part are read with one GET; larger ones
// with Streams ranged GETs in flight, delivered in order. Close stops the transfers.
func (c *Client) Open(ctx context.Context, obj Object) io.ReadCloser {
	return c.OpenRange(ctx, obj, 0, obj.Size)
}

// OpenRange streams bytes [start, end) of obj (end at most its size), as Open does: a piece
// of an object gets as many GETs in flight as an object of the piece's size, and none past
// its end.
func (c *Client) OpenRange(ctx context.Context, obj Object, start, end int64) io.ReadCloser {
	end = min(end, obj.Size)
	rest := end - start
	streams := c.Streams
	if streams <= 0 {
		streams = int(min(max((rest+DefaultPartSize-1)/DefaultPartSize, DefaultStreams), int64(c.maxStreams())))
	}
	part := c.PartSize
	if part <= 0 {
		part = DefaultPartSize
		if rest < int64(streams)*part {
			part = max(MinPartSize, (rest+int64(streams)-1)/int64(streams))
		}
	}
	nparts := int((rest + part - 1) / part)
	streams = max(min(streams, nparts), 1)
	ctx, cancel := context.WithCancel(ctx)
	r := &partReader{cancel: cancel, queue: make(chan chan result, streams), free: make(chan []byte, streams+1)}
	for range streams + 1 { // one part being read by the consumer, streams in flight
		r.free <- nil
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(r.queue)
		for off := start; off < end; off += part {
			var buf []byte
			select {
			case buf = <-r.free: // blocks while streams parts wait to be read: bounded memory
			case <-ctx.Done():
				// The end of the queue must not read as the end of the object: a reader
				// that is cancelled gets an error, never a short stream that looks whole.
				r.cut = c.err(obj.Key, fmt.Errorf("reading from byte %d: %w", off, ctx.Err()))
				return
			}
			n := min(part, end-off)
			if int64(cap(buf)) < n {
				buf = make([]byte, n)
			}
			buf = buf[:n]
			ch := make(chan result, 1)
			r.queue <- ch
			r.wg.Add(1)
			go func(off int64) {
				defer r.wg.Done()
				ch <- result{buf, c.getShared(ctx, obj, buf, off)}
			}(off)
		}
	}()
	return r
}

type result struct {
	buf []byte
	err error
}

type partReader struct {
	cancel context.CancelFunc
	queue  chan chan result
	free   chan []byte
	wg     sync.WaitGroup
	cur    []byte // unread rest of the current part
	whole  []byte // the current part's buffer, to recycle
	err    error
	cut    error // why the producer stopped before the end (written before the queue closes)
}

func (r *partReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.whole != nil {
			r.free <- r.whole
			r.whole = nil
		}
		ch, ok := <-r.queue
		if !ok {
			r.err = io.EOF
			if r.cut != nil {
				r.err = r.cut
			}
			return 0, r.err
		}
		res := <-ch
		if res.err != nil {
			r.err = res.err
			return 0, r.err
		}
		r.cur, r.whole = res.buf, res.buf
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// Close cancels the transfers in flight and waits for them.
func (r *partReader) Close() error {
	r.cancel()
	go func() { // unblock the producer if it waits for a queue slot
		for range r.queue {
		}
	}()
	r.wg.Wait()
	return nil
}
