package netmodel

import (
	"bufio"
	"net"
	"net/http"
	"time"
)

// front is S3 as one instance reaches it (at its alias): a TCP relay to the S3 server that
// holds every request for the model's first-byte latency before passing it on. It stands
// in for netem's delay, which this machine's kernel lacks; the rates stay the kernel's (tc
// shapes what the front sends from the alias like any S3 answer).
//
// Only requests are parsed (to know where each begins): they are small, and S3's clients
// send one at a time per connection (no pipelining). Answers are relayed unparsed, by
// splice(2) between the sockets, so the bytes
// instances read cost this machine's cores little more than without the front.
type front struct {
	*relays
	latency time.Duration
	up      string
}

// startFront serves S3 (at upstream, host:port) on addr, each request delayed by latency.
func startFront(addr, upstream string, latency time.Duration) (*front, error) {
	f := &front{latency: latency, up: upstream}
	r, err := listenRelays(addr)
	if err != nil {
		return nil, err
	}
	f.relays = r
	go r.serve(f.relay)
	return f, nil
}

func (f *front) relay(c net.Conn) {
	defer c.Close()
	up, err := net.Dial("tcp", f.up)
	if err != nil {
		return
	}
	defer up.Close()
	if !f.track(c) {
		return
	}
	defer f.untrack(c)
	go func() {
		// S3's answers. TCPConn.ReadFrom from another TCPConn splices; io.Copy would try
		// up's WriteTo first, which copies through a buffer here.
		c.(*net.TCPConn).ReadFrom(up)
		c.Close() // S3 closed: so does the front, and the request loop below ends
	}()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		time.Sleep(f.latency)
		// Write sends the head, flushed, before it reads a body from the client, so a
		// client waiting for "100 Continue" gets it from S3 as usual.
		if err := req.Write(up); err != nil {
			return
		}
	}
}
