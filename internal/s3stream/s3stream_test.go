package s3stream

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
	"golang.org/x/sync/semaphore"

	"ec2kit/internal/awsconf"
	"ec2kit/internal/cloudtest"
)

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(b)
	return b
}

func TestStream(t *testing.T) {
	big := randomBytes(100_003)
	c := newTestBucket(t, map[string][]byte{
		"trip data/yellow a.csv": big, "trip data/green.csv": []byte("g"), "trip data/yellow-empty": nil, "other/yellow": []byte("o"),
	})
	ctx := context.Background()
	objs, err := c.List(ctx, "trip data/", "yellow")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 || objs[0].Key != "trip data/yellow a.csv" || objs[0].Size != 100003 || objs[0].ETag == "" ||
		objs[1].Key != "trip data/yellow-empty" || objs[1].Size != 0 {
		t.Fatalf("list: %v", objs)
	}
	if st, err := c.Stat(ctx, objs[0].Key); err != nil || st != objs[0] {
		t.Fatalf("stat %v %v, listed %v", st, err, objs[0])
	}
	for _, part := range []int64{1000, 99_999, 100_003, 1 << 20} {
		for _, streams := range []int{1, 3} {
			c.PartSize, c.Streams = part, streams
			obj, err := c.Stat(ctx, "trip data/yellow a.csv")
			if err != nil {
				t.Fatal(err)
			}
			r := c.Open(ctx, obj)
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(got, big) {
				t.Fatalf("part %d streams %d: %d bytes, %v", part, streams, len(got), err)
			}
		}
	}
	// A range: its own parts, nothing past its end; an end past the object means its end.
	obj := Object{Key: "trip data/yellow a.csv", Size: int64(len(big)), ETag: objs[0].ETag}
	c.PartSize, c.Streams = 1000, 3
	for _, rg := range [][2]int64{{10, 5_000}, {99_000, 100_003}, {99_000, 1 << 30}, {7, 7}} {
		got, err := io.ReadAll(c.OpenRange(ctx, obj, rg[0], rg[1]))
		if want := big[rg[0]:min(rg[1], obj.Size)]; err != nil || !bytes.Equal(got, want) {
			t.Fatalf("range %v: %d bytes, %v; want %d", rg, len(got), err, len(want))
		}
	}
	// Two objects read at once under one GET in flight in all: both whole, neither waits
	// on the other for good (a GET ends without its data being read).
	c.GETs = semaphore.NewWeighted(1)
	r1, r2 := c.Open(ctx, obj), c.Open(ctx, obj)
	if _, err := io.ReadFull(r2, make([]byte, 3000)); err != nil {
		t.Fatal(err)
	}
	for _, r := range []io.ReadCloser{r1, r2} {
		if _, err := io.ReadAll(r); err != nil {
			t.Fatal(err)
		}
		r.Close()
	}
	c.GETs = nil
	empty, err := c.Stat(ctx, "trip data/yellow-empty")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(c.Open(ctx, empty)); len(got) != 0 || err != nil {
		t.Fatalf("empty: %q %v", got, err)
	}
	// Closing part-way must not hang nor leak the transfers in flight.
	c.PartSize, c.Streams = 1000, 4
	r := c.Open(ctx, Object{Key: "trip data/yellow a.csv", Size: int64(len(big))})
	io.ReadFull(r, make([]byte, 1500))
	r.Close()

	ra := c.ReaderAt(ctx, Object{Key: "trip data/yellow a.csv", Size: int64(len(big))})
	p := make([]byte, 10)
	if n, err := ra.ReadAt(p, int64(len(big))-4); n != 4 || err != io.EOF || !bytes.Equal(p[:4], big[len(big)-4:]) {
		t.Fatalf("ReadAt at the end: %d %v", n, err)
	}
}

// An object replaced part-way through a read fails the read: the parts are never spliced
// from two versions.
func TestReplacedMidRead(t *testing.T) {
	old, replacement := bytes.Repeat([]byte("1"), 100_000), bytes.Repeat([]byte("2"), 100_000)
	c := newTestBucket(t, map[string][]byte{"k": old})
	ctx := context.Background()
	obj, err := c.Stat(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	c.PartSize, c.Streams = 10_000, 1
	r := c.Open(ctx, obj)
	defer r.Close()
	if _, err := io.ReadFull(r, make([]byte, 15_000)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: &c.Bucket, Key: aws.String("k"), Body: bytes.NewReader(replacement)}); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(r)
	if !errors.Is(err, ErrChanged) {
		t.Fatalf("read on after the replacement: %d bytes, %v; want ErrChanged", len(rest), err)
	}
	if bytes.IndexByte(rest, '2') >= 0 {
		t.Fatal("bytes of the new version were delivered")
	}
	// ReaderAt is pinned as well.
	if _, err := c.ReaderAt(ctx, obj).ReadAt(make([]byte, 10), 0); !errors.Is(err, ErrChanged) {
		t.Fatalf("ReadAt of the old version: %v", err)
	}
}

// With the default part size, an object of fewer than Streams default-sized parts is read in
// smaller parts (down to MinPartSize), so that several GETs still read it at once.
func TestSmallObjectParts(t *testing.T) {
	obj := randomBytes(3<<20 + 5)
	c := newTestBucket(t, map[string][]byte{"k": obj})
	var gets atomic.Int64
	c.S3 = s3.New(c.S3.Options(), func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Initialize.Add(middleware.InitializeMiddlewareFunc("count", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				gets.Add(1)
				return next.HandleInitialize(ctx, in)
			}), middleware.After)
		})
	})
	r := c.Open(context.Background(), Object{Key: "k", Size: int64(len(obj))})
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, obj) {
		t.Fatalf("%d bytes, %v", len(got), err)
	}
	if gets.Load() != 4 { // 3 MiB + 5 bytes in parts of MinPartSize
		t.Errorf("%d GETs, want 4", gets.Load())
	}
}

// A read whose context ends part-way fails: it never ends early with io.EOF, which would
// pass a prefix of the object off as all of it.
func TestCancelledMidRead(t *testing.T) {
	big := randomBytes(200_000)
	c := newTestBucket(t, map[string][]byte{"k": big})
	for _, streams := range []int{1, 4} {
		ctx, cancel := context.WithCancel(context.Background())
		c.PartSize, c.Streams = 1000, streams
		r := c.Open(ctx, Object{Key: "k", Size: int64(len(big))})
		if _, err := io.ReadFull(r, make([]byte, 1500)); err != nil {
			t.Fatal(err)
		}
		// The parts in flight arrive, and the producer waits for a free buffer when the
		// cancel comes: the parts it had fetched are still delivered, then the error.
		time.Sleep(200 * time.Millisecond)
		cancel()
		time.Sleep(50 * time.Millisecond)
		rest, err := io.ReadAll(r)
		r.Close()
		if err == nil || !errors.Is(err, context.Canceled) {
			t.Fatalf("streams %d: read on after the cancel: %d more bytes, %v; want context.Canceled", streams, len(rest), err)
		}
	}
}

func TestMissing(t *testing.T) {
	c := newTestBucket(t, nil)
	ctx := context.Background()
	if _, err := c.Stat(ctx, "nope"); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("Stat: %v", err)
	}
	// A key that vanishes between Stat and GET.
	_, err := io.ReadAll(c.Open(ctx, Object{Key: "gone", Size: 10}))
	if !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("Open: %v", err)
	}
}

func TestParseURL(t *testing.T) {
	for in, want := range map[string]string{
		"s3://bkt": "bkt|", "s3://bkt/": "bkt|", "s3://b": "error", "s3://nyc-tlc/trip data/": "nyc-tlc|trip data/", "b/x": "error", "s3:///x": "error",
		"s3://Bad_Bucket!/x": "error", "s3://ab": "error", "s3://a..b": "error", "s3://-ab": "error", "s3://ab-": "error",
		"s3://192.168.1.1/x": "error", "s3://" + strings.Repeat("a", 64): "error", "s3://" + strings.Repeat("a", 63): strings.Repeat("a", 63) + "|",
		"s3://my.bucket-1/p": "my.bucket-1|p",
	} {
		b, p, err := ParseURL(in)
		got := b + "|" + p
		if err != nil {
			got = "error"
		}
		if got != want || err != nil && !errors.Is(err, ErrBadURL) {
			t.Errorf("ParseURL(%q) = %s, want %s", in, got, want)
		}
	}
}

// newTestBucket is a Client on a fresh bucket of the local cloud holding objs.
func newTestBucket(t *testing.T, objs map[string][]byte) *Client {
	s3c, b := cloudtest.Bucket(t, "s3stream", objs)
	return &Client{S3: s3c, Bucket: b}
}

// stallProxy forwards requests to the local cloud's S3; while stalled, it sends no byte of
// a response (holding the connection open, as a paused server does).
type stallProxy struct {
	*httptest.Server
	stalled atomic.Bool
}

func newStallProxy(t *testing.T) *stallProxy {
	target := os.Getenv("AWS_ENDPOINT_URL_S3")
	if target == "" {
		target = os.Getenv("AWS_ENDPOINT_URL")
	}
	u, err := url.Parse(target)
	if err != nil || target == "" {
		t.Fatalf("S3 endpoint %q: %v", target, err)
	}
	p := &stallProxy{}
	rp := httputil.NewSingleHostReverseProxy(u) // keeps the Host header, which is signed
	rp.ModifyResponse = func(r *http.Response) error {
		r.Body = stallBody{r.Body, p, r.Request.Context()}
		return nil
	}
	p.Server = httptest.NewServer(rp)
	t.Cleanup(p.Close)
	return p
}

type stallBody struct {
	io.ReadCloser
	p   *stallProxy
	ctx context.Context
}

func (b stallBody) Read(buf []byte) (int, error) {
	if b.p.stalled.Load() {
		<-b.ctx.Done() // until the client gives up
		return 0, b.ctx.Err()
	}
	return b.ReadCloser.Read(buf[:min(len(buf), 4096)])
}

// client is c reaching S3 through the proxy.
func (p *stallProxy) client(t *testing.T, c *Client) *Client {
	cfg, err := awsconf.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s3c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.BaseEndpoint, o.UsePathStyle = aws.String(p.URL), true })
	return &Client{S3: s3c, Bucket: c.Bucket, PartSize: c.PartSize, Streams: c.Streams, StallTimeout: c.StallTimeout}
}

// A part that stops arriving is tried again, and after a few tries fails the read with
// ErrStalled; a cancelled context ends a stalled read at once.
func TestStall(t *testing.T) {
	data := randomBytes(200_000)
	direct := newTestBucket(t, map[string][]byte{"k": data})
	direct.PartSize, direct.Streams, direct.StallTimeout = 50_000, 2, 500*time.Millisecond
	p := newStallProxy(t)
	c := p.client(t, direct)
	ctx := context.Background()
	obj, err := c.Stat(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}

	// Stalled for a while mid-read: the stuck parts are fetched again.
	r := c.Open(ctx, obj)
	head := make([]byte, 10)
	if _, err := io.ReadFull(r, head); err != nil {
		t.Fatal(err)
	}
	// A GET that began in the stall waits for its timeout; the next try begins after the
	// stall with a timeout's margin (timers fire late on a loaded machine), the last with two.
	p.stalled.Store(true)
	time.AfterFunc(250*time.Millisecond, func() { p.stalled.Store(false) })
	rest, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(append(head, rest...), data) {
		t.Fatalf("after a passing stall: %d bytes, %v", len(rest)+len(head), err)
	}

	// Stalled for good: the read fails, within a few stall timeouts.
	p.stalled.Store(true)
	start := time.Now()
	r = c.Open(ctx, obj)
	_, err = io.ReadAll(r)
	r.Close()
	if !errors.Is(err, ErrStalled) || time.Since(start) > 10*time.Second {
		t.Fatalf("stalled read: %v after %v", err, time.Since(start))
	}
	t.Logf("stalled read failed after %v: %v", time.Since(start).Round(time.Millisecond), err)

	// Cancelled while stalled, with the default 30 s bound: it ends promptly.
	c.StallTimeout = 0
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(200*time.Millisecond, cancel)
	start = time.Now()
	r = c.Open(cctx, obj)
	_, err = io.ReadAll(r)
	r.Close()
	if !errors.Is(err, context.Canceled) || time.Since(start) > 3*time.Second {
		t.Fatalf("cancelled stalled read: %v after %v", err, time.Since(start))
	}
	_, err = c.ReaderAt(cctx, obj).ReadAt(make([]byte, 10), 0)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("ReadAt after cancel: %v", err)
	}
}
