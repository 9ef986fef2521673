package netmodel

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"
)

// front is S3 as one instance reaches it (at its alias): a reverse proxy to the S3 server
// that holds every request for the model's first-byte latency before passing it on. It
// stands in for netem's delay, which this machine's kernel lacks; the rates stay the
// kernel's (tc shapes what the front sends from the alias like any S3 answer).
type front struct {
	srv *http.Server
}

// startFront serves S3 (at upstream, host:port) on addr, each request delayed by latency.
func startFront(addr, upstream string, latency time.Duration) (*front, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	target := &url.URL{Scheme: "http", Host: upstream}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host // the Host header is signed (SigV4): S3 must see the client's
		},
		// The transport must not ask for gzip: it would change the bodies and lengths S3 sends.
		Transport: delay{latency, &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 1024}},
		// A body is passed on as it arrives, not held back in a buffer.
		FlushInterval: -1,
		// Large copy buffers: a few syscalls per MB rather than 32 (the default's 32 KiB), as
		// the front moves every byte instances read from S3.
		BufferPool: &bufferPool{sync.Pool{New: func() any { return make([]byte, 256<<10) }}},
		ErrorLog:   discardLog,
	}
	f := &front{srv: &http.Server{Handler: proxy, ReadHeaderTimeout: time.Minute}}
	go f.srv.Serve(l)
	return f, nil
}

func (f *front) close() error { return f.srv.Close() }

// delay is a RoundTripper that waits before each request: S3's time to first byte.
type delay struct {
	d    time.Duration
	base http.RoundTripper
}

func (d delay) RoundTrip(r *http.Request) (*http.Response, error) {
	t := time.NewTimer(d.d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
		return nil, context.Cause(r.Context())
	}
	return d.base.RoundTrip(r)
}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte  { return b.p.Get().([]byte) }
func (b *bufferPool) Put(x []byte) { b.p.Put(x) }

var discardLog = log.New(io.Discard, "", 0) // a client that goes away mid-body is no news
