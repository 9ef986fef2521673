package orchestrate

import (
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"ec2kit/internal/schedule"
)

// progress shows the job's state on a terminal (one redrawn line) and serialises every
// other line written to stderr meanwhile, so that node messages never tear the bar.
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	live     bool // stderr is a terminal: draw the bar
	drawn    bool
	start    time.Time
	sched    *schedule.Scheduler
	labels   map[string]string           // node id -> label
	inflight map[string]map[string]int64 // node -> key -> bytes read so far
	stop     chan struct{}
	stopped  chan struct{}
}

func newProgress(w io.Writer, live bool, sched *schedule.Scheduler, labels map[string]string) *progress {
	p := &progress{w: w, live: live, start: time.Now(), sched: sched, labels: labels,
		inflight: map[string]map[string]int64{}, stop: make(chan struct{}), stopped: make(chan struct{})}
	go p.loop()
	return p
}

func (p *progress) loop() {
	defer close(p.stopped)
	if !p.live {
		return
	}
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			p.draw()
			p.mu.Unlock()
		}
	}
}

// Close stops drawing and clears the bar.
func (p *progress) Close() {
	close(p.stop)
	<-p.stopped
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
}

// Printf writes a whole line of talk to stderr.
func (p *progress) Printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
	fmt.Fprintf(p.w, format, args...)
}

// Write writes whole lines of talk (a node's stderr) to stderr.
func (p *progress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
	return p.w.Write(b)
}

// Partial records how far a node has read a key (countpass's progress lines).
func (p *progress) Partial(node, key string, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inflight[node] == nil {
		p.inflight[node] = map[string]int64{}
	}
	p.inflight[node][key] = bytes
}

// Settled forgets a key's partial progress (it finished, failed, or its node died).
func (p *progress) Settled(node, key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.inflight[node], key)
}

// Forget drops a dead node's partial progress.
func (p *progress) Forget(node string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.inflight, node)
}

func (p *progress) clear() {
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
}

func (p *progress) draw() {
	o := p.sched.Outcome()
	el := time.Since(p.start).Seconds()
	done := o.DoneBytes
	var nodes []string
	for _, id := range slices.Sorted(maps.Keys(p.labels)) {
		if slices.Contains(o.Dead, id) {
			nodes = append(nodes, id+" dead")
			continue
		}
		b := o.NodeBytes[id]
		for _, part := range p.inflight[id] {
			b += part
		}
		done += b - o.NodeBytes[id]
		nodes = append(nodes, fmt.Sprintf("%s %s/s", id, human(float64(b)/el)))
	}
	total := len(o.Done) + len(o.Failed) + len(o.Unfinished)
	eta := "?"
	if done > 0 {
		eta = time.Duration(float64(o.TotalBytes-done) / (float64(done) / el) * float64(time.Second)).Round(time.Second).String()
	}
	line := fmt.Sprintf("items %d/%d  %s/%s  %s/s  ETA %s  | %s",
		len(o.Done)+len(o.Failed), total, human(float64(done)), human(float64(o.TotalBytes)),
		human(float64(done)/el), eta, strings.Join(nodes, "  "))
	// A line longer than the terminal wraps, and "\r\033[K" then clears only its last row.
	if f, ok := p.w.(*os.File); ok {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 1 && len(line) >= w {
			line = line[:w-1]
		}
	}
	fmt.Fprintf(p.w, "\r\033[K%s", line)
	p.drawn = true
}

// human formats a byte count with a binary unit.
func human(b float64) string {
	const units = "KMGTP"
	if b < 1024 {
		return fmt.Sprintf("%.0fB", b)
	}
	i := -1
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	return fmt.Sprintf("%.1f%ciB", b, units[i])
}
