package netmodel

import (
	"net"
	"sync"
)

// relays is what the S3 front and the SSH delay line share: a listener that hands every
// connection to a handler, and the connections open, which close drops at once (the host
// they lead to is gone).
type relays struct {
	l     net.Listener
	mu    sync.Mutex
	conns map[net.Conn]bool // nil once closed
}

// listenRelays listens on addr; serve then accepts.
func listenRelays(addr string) (*relays, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &relays{l: l, conns: map[net.Conn]bool{}}, nil
}

// serve hands each connection to handle, in a goroutine, until close.
func (r *relays) serve(handle func(net.Conn)) {
	for {
		c, err := r.l.Accept()
		if err != nil {
			return
		}
		go handle(c)
	}
}

// track adds c to the open connections (false once closed).
func (r *relays) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conns == nil {
		return false
	}
	r.conns[c] = true
	return true
}

func (r *relays) untrack(c net.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.conns, c)
}

// close stops listening and drops every connection.
func (r *relays) close() error {
	err := r.l.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.conns {
		c.Close()
	}
	r.conns = nil
	return err
}
