// Package netmodel shapes the local cloud's loopback like EC2's network between S3 and the
// instances, slowed down so that one machine can hold a fleet: each instance's NIC rate
// (an HTB class), the rate of one S3 connection (an HTB leaf per connection under it: a
// u32 hash on the connection's port spreads them over 256 leaves), S3's time to first byte,
// and the round trip between the operator and each instance's sshd. Instances share the
// cloud's network namespace, so what tells their traffic apart is the address they reach
// S3 at: instance 127.1.X.Y reads S3 at its own alias 127.2.X.Y (Alias), and what is sent
// from that alias is that instance's. The rates are real kernel shaping with tc inside the
// cloud's namespace; the tools see nothing of it but the rates.
// (fq's per-flow maxrate and netem's delay would be the usual tools; this machine's kernel
// has neither: CONFIG_NET_SCH_FQ and CONFIG_NET_SCH_NETEM are unset. So the latencies are
// relays: a reverse proxy on each alias that holds each request back before passing it to
// S3, and a delay line on each instance's SSH port, in front of its sshd.)
package netmodel

import (
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Model is one network: rates and latency as the instances see them.
type Model struct {
	Name    string
	NIC     int64         // bytes/s into one instance
	Conn    int64         // bytes/s on one S3 connection
	Latency time.Duration // S3's time to first byte, on every request
	SSHRTT  time.Duration // round trip between the operator and an instance's sshd; 0: loopback's
	Scale   int           // rates are 1/Scale of EC2's, times Scale times EC2's
	About   string        // what it stands for
}

// EC2 is an i3en.2xlarge reading S3 in its region, slowed down 32 times: up to 25 Gbit/s
// into the instance (3.1 GB/s: 98 MB/s here), about 90 MB/s per S3 connection (2.8 MB/s
// here), so that filling a NIC takes the same 35 connections, and some 30 ms from a request
// to S3's first byte (0.96 s here), so that a part of a given size spends the same share of
// its time waiting. The operator (orchestrate, ec2-ssh) runs on an EC2 instance in the
// fleet's region, about 1 ms of round trip from each instance (0.1-0.5 ms within a zone,
// around 1 ms across zones: 32 ms here), so that a command's round trips weigh against the
// work it starts as they do there. Under the model this two-core machine moves some 310 MB/s
// in all (S3, the shaping, the nodes' counting: bench/RESULTS.md), so at this scale two
// nodes measure the model and four measure the machine; Slower(64) keeps four under it.
var EC2 = Model{
	Name:    "ec2",
	NIC:     25e9 / 8 / 32,
	Conn:    90e6 / 32,
	Latency: 30 * time.Millisecond * 32,
	SSHRTT:  time.Millisecond * 32,
	Scale:   32,
	About:   "i3en.2xlarge + S3, 32 times slower",
}

// Slower returns the model at another scale: n times slower than what it stands for, rates
// divided and latencies multiplied alike, so that every ratio holds.
func (m Model) Slower(n int) Model {
	if n == m.Scale {
		return m
	}
	f := float64(m.Scale) / float64(n)
	m.NIC, m.Conn = int64(float64(m.NIC)*f), int64(float64(m.Conn)*f)
	m.Latency, m.SSHRTT = time.Duration(float64(m.Latency)/f), time.Duration(float64(m.SSHRTT)/f)
	m.About = strings.Replace(m.About, fmt.Sprintf("%d times", m.Scale), fmt.Sprintf("%d times", n), 1)
	m.Scale = n
	return m
}

// Models are the models by name.
var Models = map[string]Model{EC2.Name: EC2}

func (m Model) String() string {
	return fmt.Sprintf("%s (%s): NIC %s/s per instance, %s/s per S3 connection, S3 first byte after %v, SSH round trip %v",
		m.Name, m.About, mb(m.NIC), mb(m.Conn), m.Latency, m.SSHRTT)
}

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }

// Shaper applies a model to one network device (lo inside the namespace).
type Shaper struct {
	Model    Model
	Dev      string
	S3Port   uint16 // the port instances reach S3 at, on their aliases
	Upstream string // the S3 server (host:port, not on an alias): each alias gets a front to it

	mu     sync.Mutex
	have   map[string]int // alias -> its index
	fronts []*front
	lines  map[*delayLine]bool // the instances' SSH delay lines
	closed bool
}

// Alias is the address instance ip reads S3 at: 127.2.X.Y for 127.1.X.Y.
func Alias(ip string) (string, error) { return sibling(ip, 2) }

// SSHD is where instance ip's sshd listens when the model has an SSH round trip: 127.3.X.Y
// for 127.1.X.Y, behind a delay line at ip:22 (RelaySSH).
func SSHD(ip string) (string, error) { return sibling(ip, 3) }

// sibling is instance address 127.1.X.Y's counterpart 127.N.X.Y.
func sibling(ip string, n byte) (string, error) {
	a, err := netip.ParseAddr(ip)
	if b := a.As4(); err != nil || !a.Is4() || b[0] != 127 || b[1] != 1 {
		return "", fmt.Errorf("netmodel: %q is not an instance address (127.1.X.Y)", ip)
	}
	b := a.As4()
	return netip.AddrFrom4([4]byte{127, n, b[2], b[3]}).String(), nil
}

// Classes: the root HTB is 1:, unshaped traffic goes to 1:fffe. The i-th instance shaped
// (from 1) has its NIC class 1:i<<9 and the leaves 1:(i<<9)+1... for its S3 connections,
// picked by u32 hash table i: from bits 1-8 of the connection's port on the instance's side
// (Linux hands those out even and a few apart, so successive connections mostly get leaves
// of their own; two that share one share its rate).
const (
	defaultClass = "fffe"
	buckets      = 256
	maxInstances = 0x7e
)

// Setup installs the root qdisc and the unshaped default class.
func (s *Shaper) Setup() error {
	return tcBatch([]string{
		fmt.Sprintf("qdisc replace dev %s root handle 1: htb default %s", s.Dev, defaultClass),
		fmt.Sprintf("class replace dev %s parent 1: classid 1:%s htb rate 100gbit", s.Dev, defaultClass),
	})
}

// AddInstance shapes what S3 sends to an instance (at its alias); a second call for the same
// address does nothing.
func (s *Shaper) AddInstance(ip string) error {
	alias, err := Alias(ip)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.have[alias] != 0 {
		return nil
	}
	i := len(s.have) + 1
	if i > maxInstances {
		return fmt.Errorf("netmodel: more than %d instances", maxInstances)
	}
	conn := fmt.Sprintf("%dbit", s.Model.Conn*8)
	cmds := []string{
		s.nicClass("replace", i, s.Model.NIC),
		fmt.Sprintf("filter add dev %s parent 1: prio 5 handle %x: protocol ip u32 divisor %d", s.Dev, i, buckets),
	}
	for b := range buckets {
		cmds = append(cmds,
			fmt.Sprintf("class replace dev %s parent 1:%x classid 1:%x htb rate %dbit ceil %s burst 64k cburst 64k", s.Dev, i<<9, i<<9+b+1, s.Model.NIC*8/buckets, conn),
			fmt.Sprintf("filter add dev %s parent 1: prio 5 protocol ip u32 ht %x:%x: match u32 0 0 flowid 1:%x", s.Dev, i, b, i<<9+b+1))
	}
	cmds = append(cmds, fmt.Sprintf("filter add dev %s parent 1: prio 5 protocol ip u32 ht 800:: match ip src %s/32 match ip sport %d 0xffff hashkey mask 0x000001fe at 20 link %x:",
		s.Dev, alias, s.S3Port, i))
	if err := tcBatch(cmds); err != nil {
		return err
	}
	f, err := startFront(net.JoinHostPort(alias, strconv.Itoa(int(s.S3Port))), s.Upstream, s.Model.Latency)
	if err != nil {
		return fmt.Errorf("netmodel: S3 at %s: %w", alias, err)
	}
	s.fronts = append(s.fronts, f)
	if s.have == nil {
		s.have = map[string]int{}
	}
	s.have[alias] = i
	return nil
}

// RelaySSH puts the sshd of the instance at ip, which listens at SSHD(ip), behind a delay
// line of the model's SSH round trip at ip:22, from when that sshd answers until done is
// closed (the host ended). Before and after, ip:22 refuses connections, as it does without
// the model while a host boots or once it is gone; the connections relayed end with sshd's.
func (s *Shaper) RelaySSH(ip string, done <-chan struct{}) error {
	sshd, err := SSHD(ip)
	if err != nil {
		return err
	}
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		var d *delayLine
		for d == nil {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if c, err := net.DialTimeout("tcp", sshd+":22", time.Second); err == nil {
				c.Close()
				// This fails while the line of the host's previous boot is closing: the
				// next tick tries again.
				d, _ = listenDelay(ip+":22", sshd+":22", s.Model.SSHRTT)
			}
		}
		defer d.close()
		if !s.addLine(d, true) {
			return
		}
		<-done
		s.addLine(d, false)
	}()
	return nil
}

// addLine records (or, with false, forgets) delay line d; false when the shaper is closed.
func (s *Shaper) addLine(d *delayLine, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.lines == nil {
		s.lines = map[*delayLine]bool{}
	}
	if add {
		s.lines[d] = true
	} else {
		delete(s.lines, d)
	}
	return true
}

// Close stops the instances' S3 fronts and SSH delay lines.
func (s *Shaper) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.fronts {
		f.close()
	}
	s.fronts = nil
	for d := range s.lines {
		d.close()
	}
	s.lines, s.closed = nil, true
}

// SetNIC sets the NIC rate of the instance at ip to frac of the model's (1 restores it).
// Its connections keep their own cap: only what they share is slowed.
func (s *Shaper) SetNIC(ip string, frac float64) error {
	alias, err := Alias(ip)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.have[alias]
	if i == 0 {
		return fmt.Errorf("netmodel: %s is not shaped", ip)
	}
	return tcBatch([]string{s.nicClass("change", i, int64(float64(s.Model.NIC)*frac))})
}

// nicClass is the tc command for instance i's NIC class at rate bytes/s.
func (s *Shaper) nicClass(verb string, i int, rate int64) string {
	// HTB needs a burst of a few of lo's 64 KiB packets to reach its rate.
	burst := max(rate/100, 256<<10)
	return fmt.Sprintf("class %s dev %s parent 1: classid 1:%x htb rate %dbit ceil %dbit burst %d cburst %d", verb, s.Dev, i<<9, rate*8, rate*8, burst, burst)
}

// tcBatch runs tc commands in one tc process (an instance takes a few hundred).
func tcBatch(cmds []string) error {
	c := exec.Command("tc", "-batch", "-")
	c.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("tc: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
