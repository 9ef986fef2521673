package netmodel

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The shaping test changes lo's qdisc, and the SSH test takes instance addresses' port 22:
// they run only in a network namespace of their own, made for them (scripts/test: ip netns
// exec ec2kit-nettest), never in a cloud's.
func ownNamespace(t *testing.T) {
	if os.Getenv("EC2KIT_NETMODEL_TEST") == "" {
		t.Skip("shapes lo: run with EC2KIT_NETMODEL_TEST=1 inside a network namespace of its own (scripts/test does)")
	}
	ifs, err := net.Interfaces()
	if err != nil || len(ifs) != 1 || ifs[0].Name != "lo" {
		t.Fatalf("not a namespace with only lo: %v %v", ifs, err)
	}
}

func shaper(t *testing.T) *Shaper {
	ownNamespace(t)
	// A server standing in for S3: GET /N sends N bytes.
	l, err := net.Listen("tcp", "127.0.0.1:0") // the aliases get fronts at its port
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(r.URL.Path[1:], 10, 64)
		w.Header().Set("Content-Length", fmt.Sprint(n))
		for ; n > 0; n -= int64(len(chunk)) {
			if _, err := w.Write(chunk[:min(n, int64(len(chunk)))]); err != nil {
				return
			}
		}
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	s := &Shaper{Model: EC2, Dev: "lo", S3Port: uint16(l.Addr().(*net.TCPAddr).Port), Upstream: l.Addr().String()}
	if err := s.Setup(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); tcBatch([]string{"qdisc del dev lo root"}) })
	for _, ip := range []string{"127.1.0.5", "127.1.0.6"} {
		if err := s.AddInstance(ip); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddInstance("127.1.0.5"); err != nil { // again: nothing to do
		t.Fatal(err)
	}
	return s
}

// rate streams from S3 over conns connections for each instance at once and returns the
// bytes per second they receive together once under way (for 2 s, from 1 s after the first
// byte is due).
func rate(t *testing.T, s *Shaper, from []string, conns int) float64 {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var got atomic.Int64
	var wg sync.WaitGroup
	for _, ip := range from {
		alias, err := Alias(ip)
		if err != nil {
			t.Fatal(err)
		}
		c := &http.Client{Transport: &http.Transport{MaxConnsPerHost: conns}}
		for range conns {
			wg.Go(func() {
				req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://%s:%d/%d", alias, s.S3Port, int64(1)<<40), nil)
				resp, err := c.Do(req)
				if err != nil {
					return
				}
				defer resp.Body.Close()
				b := make([]byte, 64<<10)
				for {
					n, err := resp.Body.Read(b)
					got.Add(int64(n))
					if err != nil {
						return
					}
				}
			})
		}
	}
	time.Sleep(s.Model.Latency + time.Second)
	a, t0 := got.Load(), time.Now()
	time.Sleep(2 * time.Second)
	b, t1 := got.Load(), time.Now()
	cancel()
	wg.Wait()
	return float64(b-a) / t1.Sub(t0).Seconds()
}

func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	t.Logf("%s: %.2f MB/s (model %.2f MB/s)", what, got/1e6, want/1e6)
	// Unshaped, loopback moves GB/s: the upper bound is what shows the shaping. The lower
	// one is loose, as a busy machine slows the measuring process itself.
	if got < 0.6*want || got > 1.25*want {
		t.Errorf("%s: %.2f MB/s, want about %.2f MB/s", what, got/1e6, want/1e6)
	}
}

// The model holds: S3's first byte comes after the model's latency; one connection gets
// about the per-connection rate; many connections into one instance get about its NIC rate;
// two instances get twice that.
func TestShaping(t *testing.T) {
	s := shaper(t)
	m := s.Model
	alias, _ := Alias("127.1.0.5")
	for i := range 2 { // a new connection, then one kept alive: each request waits
		start := time.Now()
		resp, err := http.Get(fmt.Sprintf("http://%s:%d/%d", alias, s.S3Port, 100))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		t.Logf("request %d: %d bytes after %v (model %v)", i+1, len(b), took, m.Latency)
		if err != nil || len(b) != 100 || took < m.Latency || took > m.Latency+time.Second {
			t.Errorf("request %d: %d bytes, %v after %v: want 100 after about %v", i+1, len(b), err, took, m.Latency)
		}
	}
	near(t, "one connection", rate(t, s, []string{"127.1.0.5"}, 1), float64(m.Conn))
	conns := int(2 * m.NIC / m.Conn) // twice what fills the NIC
	near(t, fmt.Sprintf("%d connections into one instance", conns), rate(t, s, []string{"127.1.0.5"}, conns), float64(m.NIC))
	near(t, fmt.Sprintf("%d connections into each of two instances", conns), rate(t, s, []string{"127.1.0.5", "127.1.0.6"}, conns), 2*float64(m.NIC))
	// localcloud fault ID slow: one instance's NIC at half rate, the other's unchanged.
	if err := s.SetNIC("127.1.0.5", 0.5); err != nil {
		t.Fatal(err)
	}
	near(t, "the instance slowed to half its NIC", rate(t, s, []string{"127.1.0.5"}, conns), float64(m.NIC)/2)
	near(t, "the other instance", rate(t, s, []string{"127.1.0.6"}, conns), float64(m.NIC))
	if err := s.SetNIC("127.1.0.5", 1); err != nil {
		t.Fatal(err)
	}
	near(t, "the slowed instance restored", rate(t, s, []string{"127.1.0.5"}, conns), float64(m.NIC))
	if err := s.SetNIC("127.1.0.9", 0.5); err == nil {
		t.Error("SetNIC of an instance never shaped succeeded")
	}
}

// An instance's SSH port is a delay line once its sshd (at SSHD) answers, and refuses again
// once the host ends; a second boot gets a line again. (Here an echo server stands in for
// sshd: the cloud's tests go through a real one.)
func TestRelaySSH(t *testing.T) {
	ownNamespace(t)
	const ip = "127.1.0.7"
	m := EC2
	m.SSHRTT = 100 * time.Millisecond
	s := &Shaper{Model: m}
	defer s.Close()
	refuses := func(within time.Duration) bool {
		for end := time.Now().Add(within); ; time.Sleep(10 * time.Millisecond) {
			c, err := net.Dial("tcp", ip+":22")
			if err != nil {
				return true
			}
			c.Close()
			if time.Now().After(end) {
				return false
			}
		}
	}
	for boot := range 2 {
		done := make(chan struct{})
		if err := s.RelaySSH(ip, done); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		if !refuses(0) {
			t.Fatalf("boot %d: %s:22 accepts before sshd is up", boot, ip)
		}
		sshd, _ := SSHD(ip)
		l, err := net.Listen("tcp", sshd+":22")
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var conns []net.Conn // the line's probes, and what it relays
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
				go io.Copy(c, c)
			}
		}()
		var c net.Conn
		for end := time.Now().Add(2 * time.Second); c == nil; time.Sleep(10 * time.Millisecond) {
			if c, err = net.Dial("tcp", ip+":22"); err != nil && time.Now().After(end) {
				t.Fatalf("boot %d: no line on %s:22 2s after sshd came up: %v", boot, ip, err)
			}
		}
		for i := range 3 {
			start := time.Now()
			c.Write([]byte("x"))
			if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			t.Logf("boot %d, exchange %d: %v (round trip %v)", boot, i, took, m.SSHRTT)
			if i > 0 && (took < m.SSHRTT*8/10 || took > 2*m.SSHRTT) {
				t.Errorf("boot %d: exchange took %v: want about %v", boot, took, m.SSHRTT)
			}
		}
		// The host ends: its sshd's connections end, so do the relayed ones, and the address
		// refuses.
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("boot %d: the relayed connection read %v after sshd ended: want EOF", boot, err)
		}
		c.Close()
		close(done)
		if !refuses(time.Second) {
			t.Errorf("boot %d: %s:22 still accepts a second after the host ended", boot, ip)
		}
	}
}

func TestSlower(t *testing.T) {
	m := EC2.Slower(64)
	if m.NIC != EC2.NIC/2 || m.Conn != EC2.Conn/2 || m.Latency != 2*EC2.Latency || m.SSHRTT != 2*EC2.SSHRTT || m.Scale != 64 {
		t.Errorf("EC2.Slower(64) = %+v", m)
	}
	if !strings.Contains(m.String(), "64 times slower") {
		t.Errorf("EC2.Slower(64) says %q", m)
	}
	if EC2.Slower(32) != EC2 {
		t.Error("EC2.Slower(32) is not EC2")
	}
}
