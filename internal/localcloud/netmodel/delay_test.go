package netmodel

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// echoServer answers every connection with what it sends, until the client closes.
func echoServer(t *testing.T) net.Listener {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	return l
}

func delayTo(t *testing.T, upstream string, rtt time.Duration) *delayLine {
	d, err := listenDelay("127.0.0.1:0", upstream, rtt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.close() })
	return d
}

// Each exchange over a connection takes the round trip; the connection's first answer
// comes after two (the handshake's, then the exchange's).
func TestDelayRoundTrip(t *testing.T) {
	const rtt = 100 * time.Millisecond
	d := delayTo(t, echoServer(t).Addr().String(), rtt)
	start := time.Now()
	c, err := net.Dial("tcp", d.l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	var took []time.Duration
	for i := range 6 {
		if i > 0 {
			start = time.Now()
		}
		if _, err := c.Write([]byte("ping\n")); err != nil {
			t.Fatal(err)
		}
		if line, err := r.ReadString('\n'); err != nil || line != "ping\n" {
			t.Fatalf("exchange %d: %q, %v", i, line, err)
		}
		took = append(took, time.Since(start))
	}
	t.Logf("round trips (%v): first %v, then %v", rtt, took[0], took[1:])
	// The lower bounds are what shows the delay (unrelayed loopback takes microseconds);
	// the upper ones are loose, for a busy machine.
	if took[0] < 2*rtt || took[0] > 4*rtt {
		t.Errorf("first exchange took %v: want about %v", took[0], 2*rtt)
	}
	for i, d := range took[1:] {
		if d < rtt*8/10 || d > 2*rtt {
			t.Errorf("exchange %d took %v: want about %v", i+1, d, rtt)
		}
	}
}

// A bulk copy keeps its rate: the line does not wait for a chunk's way back before it sends
// the next; and every byte arrives, in order, then the end of the stream.
func TestDelayBulk(t *testing.T) {
	const rtt = 200 * time.Millisecond
	d := delayTo(t, echoServer(t).Addr().String(), rtt)
	c, err := net.Dial("tcp", d.l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data := make([]byte, 50<<20)
	for i := range data {
		data[i] = byte(i * 7 / 5)
	}
	start := time.Now()
	go func() {
		c.Write(data)
		c.(*net.TCPConn).CloseWrite()
	}()
	h := sha256.New()
	n, err := io.Copy(h, c)
	took := time.Since(start)
	t.Logf("50 MiB there and back through a %v line: %v (%.0f MB/s)", rtt, took, float64(n)/took.Seconds()/1e6)
	if err != nil || n != int64(len(data)) || !bytes.Equal(h.Sum(nil), sha256Sum(data)) {
		t.Fatalf("got %d bytes (%v): want the %d sent, unchanged", n, err, len(data))
	}
	// Held to a 64 KiB chunk per round trip, it would take 800 round trips (160 s); with
	// everything in flight, the delay counts once each way.
	if took < rtt || took > 20*rtt {
		t.Errorf("took %v: want about %v plus the copy's time", took, rtt)
	}
}

func sha256Sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// When the server ends, so does the relayed connection (after the delay), and a closed line
// refuses new connections.
func TestDelayEnds(t *testing.T) {
	const rtt = 50 * time.Millisecond
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	d := delayTo(t, l.Addr().String(), rtt)
	for _, how := range []string{"close", "reset"} {
		c, err := net.Dial("tcp", d.l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // the line's connect must see the connection up first
		s.Write([]byte("bye"))
		start := time.Now()
		if how == "reset" {
			reset(s)
		} else {
			s.Close()
		}
		b, err := io.ReadAll(c)
		took := time.Since(start)
		c.Close()
		// The last bytes come first; a reset may overtake them, as TCP lets it.
		if took < rtt/2 || (how == "close" && (err != nil || string(b) != "bye")) || (how == "reset" && !errors.Is(err, syscall.ECONNRESET)) {
			t.Errorf("server %s: client read %q, %v after %v: want the last bytes and the end after %v", how, b, err, took, rtt/2)
		}
	}
	d.close()
	if c, err := net.Dial("tcp", d.l.Addr().String()); err == nil {
		c.Close()
		t.Error("a closed line accepted a connection")
	}
}
