package netmodel

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// delayLine is a TCP relay that gives a loopback path the round trip of a longer one: each
// direction passes every chunk on half a round trip after it arrived. It stands in for
// netem's delay, which this machine's kernel lacks. Each direction reads as fast as its
// sender sends and writes on its own schedule, so what is in flight is not held to a chunk
// per round trip: a bulk copy keeps its rate and only its latency grows, as on a long link.
type delayLine struct {
	*relays // both ends of every relayed connection
	up      string
	oneWay  time.Duration
}

const (
	chunkSize = 64 << 10
	// smallChunk and less is copied out of the read buffer, so that what waits in a
	// direction's queue is about its size (interactive traffic is many small chunks).
	smallChunk = 4 << 10
	// maxQueued bounds what one direction holds (its sender then waits, as on a full
	// window): far more than SSH keeps in flight (a channel's window is 2 MiB), so only a
	// receiver that stops reading meets it.
	maxQueued = 16 << 20
)

var bufs = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// listenDelay relays connections to addr to upstream (host:port), with round trip rtt.
func listenDelay(addr, upstream string, rtt time.Duration) (*delayLine, error) {
	d := &delayLine{up: upstream, oneWay: rtt / 2}
	r, err := listenRelays(addr)
	if err != nil {
		return nil, err
	}
	d.relays = r
	go r.serve(d.relay)
	return d, nil
}

func (d *delayLine) relay(c net.Conn) {
	defer c.Close()
	if !d.track(c) {
		return
	}
	defer d.untrack(c)
	toUp := newQueue()
	go toUp.fill(c, d.oneWay)
	// The kernel completed the client's handshake at once; the upstream end opens when,
	// on the longer link, the handshake's last packet would have reached it (one and a half
	// round trips), so the server's first words come back when they would.
	time.Sleep(3 * d.oneWay)
	up, err := net.Dial("tcp", d.up)
	if err != nil || !d.track(up) {
		if up != nil {
			up.Close()
		}
		toUp.halt()
		reset(c) // as a refused connection would have been, had the handshake waited
		return
	}
	defer d.untrack(up)
	defer up.Close()
	toClient := newQueue()
	go toClient.fill(up, d.oneWay)
	done := make(chan struct{})
	go func() {
		toClient.drain(up, c)
		close(done)
	}()
	toUp.drain(c, up)
	<-done
}

// reset closes c with a reset rather than a FIN, as a host that vanished would.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// chunk is what one read brought, due at the other end at due; the last one carries how
// the sender ended instead (io.EOF, or the read's error).
type chunk struct {
	b   []byte
	buf *[]byte // the pooled buffer b is in, if it is
	due time.Time
	err error
}

// queue is one direction: chunks read, waiting for their time.
type queue struct {
	mu      sync.Mutex
	cond    sync.Cond
	chunks  []chunk
	bytes   int
	stopped bool // the writer gave up: the reader stops too
}

func newQueue() *queue {
	q := &queue{}
	q.cond.L = &q.mu
	return q
}

// fill reads src into q until src ends, stamping each chunk with the time it is due.
func (q *queue) fill(src net.Conn, oneWay time.Duration) {
	buf := bufs.Get().(*[]byte)
	defer func() { bufs.Put(buf) }()
	for {
		n, err := src.Read(*buf)
		if n > 0 {
			ch := chunk{due: time.Now().Add(oneWay)}
			if n <= smallChunk {
				ch.b = append([]byte(nil), (*buf)[:n]...)
			} else {
				ch.b, ch.buf = (*buf)[:n], buf
				buf = bufs.Get().(*[]byte)
			}
			if !q.put(ch) {
				return
			}
		}
		if err != nil {
			q.put(chunk{due: time.Now().Add(oneWay), err: err})
			return
		}
	}
}

// put queues ch, waiting while q is full; false when the writer is gone.
func (q *queue) put(ch chunk) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.bytes >= maxQueued && !q.stopped {
		q.cond.Wait()
	}
	if q.stopped {
		release(ch)
		return false
	}
	q.chunks = append(q.chunks, ch)
	q.bytes += len(ch.b)
	q.cond.Broadcast()
	return true
}

func (q *queue) take() chunk {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.chunks) == 0 {
		q.cond.Wait()
	}
	ch := q.chunks[0]
	q.chunks[0] = chunk{}
	q.chunks = q.chunks[1:]
	q.bytes -= len(ch.b)
	q.cond.Broadcast()
	return ch
}

// halt stops the reader (for good) and drops what is queued.
func (q *queue) halt() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.stopped = true
	for _, ch := range q.chunks {
		release(ch)
	}
	q.chunks, q.bytes = nil, 0
	q.cond.Broadcast()
}

func release(ch chunk) {
	if ch.buf != nil {
		bufs.Put(ch.buf)
	}
}

// drain writes q's chunks to dst, each at its time, and then passes on how src ended: a
// FIN as a FIN (the other direction goes on), anything else by resetting dst and closing
// src, which ends the other direction too.
func (q *queue) drain(src, dst net.Conn) {
	defer q.halt()
	for {
		ch := q.take()
		time.Sleep(time.Until(ch.due))
		if ch.err != nil {
			if errors.Is(ch.err, io.EOF) {
				if tc, ok := dst.(*net.TCPConn); ok && tc.CloseWrite() == nil {
					return
				}
			}
			reset(dst)
			src.Close()
			return
		}
		_, err := dst.Write(ch.b)
		release(ch)
		if err != nil {
			reset(dst)
			src.Close()
			return
		}
	}
}
