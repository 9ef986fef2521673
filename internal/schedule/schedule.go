// Package schedule decides which node runs which item of a job. Items go out largest first,
// and only when a node has room (a bounded number of outstanding items each, and no more
// than its share of the bytes left to read, by the nodes' progress), so a node that
// finishes early simply takes more and one slow node never holds a long queue; the last
// items go to the nodes with the least left to read, so that they end together. A node that
// dies gives back every item whose result lived on it — running or finished, since its disk
// is gone (unless results are durable elsewhere) — and the survivors redo them. An attempt
// that fails may be retried on another node, and, once nothing is pending, an item running
// far longer than the median is started again on a node with room: the first copy to finish
// wins and the others are cancelled.
package schedule

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"
)

// Key is one unit of work: its name (the result's) and the bytes it reads.
type Key struct {
	Name string
	Size int64
}

// Policy is how failures and stragglers are handled.
type Policy struct {
	Retries int  // attempts after the first, each on a node that has not failed the item
	Durable bool // results outlive their node (they are in S3): a death gives back only running items
	// Speculate starts a second copy of an item running longer than Factor times the median
	// finished item, and at least Min, when a node has room and nothing is pending.
	Speculate bool
	Factor    float64
	Min       time.Duration
}

// Scheduler hands out items to nodes. It is safe for concurrent use: each node's feeder calls
// Next, its reader calls Done/Fail/Retry, and whoever notices a death calls Dead.
type Scheduler struct {
	mu        sync.Mutex
	changed   chan struct{} // closed (and replaced) on every state change, to wake waiters
	policy    Policy
	keys      map[string]Key
	pending   []Key                           // largest first
	running   map[string]map[string]time.Time // key -> node -> started
	owner     map[string]string               // key -> node holding its result
	failed    map[string]string               // key -> why it failed for good
	tried     map[string]map[string]bool      // key -> nodes whose attempt failed
	pin       map[string]string               // key -> the only node that can do it (its input is local there)
	lost      map[string]bool                 // pinned keys whose node died: nobody can do them now
	nodes     map[string]*node
	durations []time.Duration // of finished items, for the straggler rule
	lastStart time.Time       // when the last pending item went out: the job's tail follows it
	// OnCancel, when set, is called (with the scheduler's lock held: it must not call back
	// into the scheduler) for every copy of an item that another copy made unnecessary: the
	// node should stop it.
	OnCancel func(node, key string)
}

type node struct {
	window      int // how many items it may hold at once
	outstanding int
	held        int64            // the bytes of those items
	read        int64            // of which it has read this many (Progress)
	asking      bool             // its feeder waits in Next
	progress    map[string]int64 // key -> bytes read, for the items it runs
	dead        bool
}

// New returns a scheduler for keys (duplicate names count once) with the default policy:
// no retries, no speculation.
func New(keys []Key) *Scheduler {
	s := &Scheduler{
		changed: make(chan struct{}),
		keys:    make(map[string]Key, len(keys)),
		running: map[string]map[string]time.Time{},
		owner:   map[string]string{},
		failed:  map[string]string{},
		tried:   map[string]map[string]bool{},
		pin:     map[string]string{},
		lost:    map[string]bool{},
		nodes:   map[string]*node{},
	}
	for _, k := range keys {
		if _, dup := s.keys[k.Name]; !dup {
			s.keys[k.Name] = k
			s.pending = append(s.pending, k)
		}
	}
	sortKeys(s.pending)
	return s
}

// SetPolicy sets how failures and stragglers are handled; call it before handing out work.
func (s *Scheduler) SetPolicy(p Policy) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.policy = p
}

// sortKeys orders largest first, then by name so that runs are reproducible.
func sortKeys(ks []Key) {
	sort.Slice(ks, func(i, j int) bool {
		if ks[i].Size != ks[j].Size {
			return ks[i].Size > ks[j].Size
		}
		return ks[i].Name < ks[j].Name
	})
}

// AddNode registers a node that may hold up to window items at a time (at least one).
func (s *Scheduler) AddNode(name string, window int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nodes[name] = &node{window: max(window, 1), progress: map[string]int64{}}
	s.notify()
}

// notify wakes every waiter; the caller holds s.mu.
func (s *Scheduler) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Adopt records that node already holds key's result (from an earlier run), so it is not
// handed out. It reports whether the key was still pending.
func (s *Scheduler) Adopt(nodeName, key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[nodeName]
	if n == nil || n.dead || !s.removePending(key) {
		return false
	}
	s.owner[key] = nodeName
	s.notify()
	return true
}

func (s *Scheduler) removePending(key string) bool {
	for i, k := range s.pending {
		if k.Name == key {
			s.pending = append(s.pending[:i], s.pending[i+1:]...)
			return true
		}
	}
	return false
}

// Pin restricts key to nodeName, for work whose input only that node holds (files it
// downloaded). If that node dies, the key is lost rather than redone elsewhere.
func (s *Scheduler) Pin(key, nodeName string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pin[key] = nodeName
	s.notify()
}

// Next blocks until node has room and an item for it, and hands it the largest pending one
// (or, with speculation, a second copy of a straggler). It returns false when there is
// nothing more for this node to do: the node is dead, ctx is done, or nothing is pending
// and nothing runs elsewhere (so no death can bring work back while this node waits).
func (s *Scheduler) Next(ctx context.Context, nodeName string) (Key, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[nodeName]
	if n == nil {
		return Key{}, false
	}
	n.asking = true
	defer func() { n.asking = false }()
	for {
		if n.dead || ctx.Err() != nil {
			return Key{}, false
		}
		i := s.nextFor(nodeName)
		if n.outstanding < n.window && s.fair(n) {
			if i >= 0 && s.least(nodeName, s.pending[i].Name) {
				k := s.pending[i]
				s.pending = append(s.pending[:i], s.pending[i+1:]...)
				s.start(k.Name, nodeName)
				s.lastStart = time.Now()
				return k, true
			}
			if i < 0 {
				if k, ok := s.straggler(nodeName); ok {
					s.start(k.Name, nodeName)
					return k, true
				}
			}
		}
		if i < 0 && !s.runningElsewhere(nodeName) {
			return Key{}, false
		}
		wait := s.changed
		var tick <-chan time.Time
		if s.policy.Speculate {
			tick = time.After(250 * time.Millisecond) // stragglers become so with time alone
		}
		s.mu.Unlock()
		select {
		case <-wait:
		case <-tick:
		case <-ctx.Done():
		}
		s.mu.Lock()
	}
}

// LastStart is when the last item was taken from the pending ones (second copies of
// stragglers aside); zero if none was.
func (s *Scheduler) LastStart() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastStart
}

// fair reports whether n may take more: a node holds at most its share of the bytes left
// to read (pending, and not yet read of what the nodes hold, over the live nodes). When the
// windows together exceed the items, the first node to ask would otherwise take a window of
// the largest ones while the others got few. It cannot stall the job: a node it holds back
// holds an item, whose end (or its node's death) wakes it. The caller holds s.mu.
func (s *Scheduler) fair(n *node) bool {
	if n.outstanding == 0 {
		return true
	}
	pending, held, alive := s.left()
	return n.left()*alive < pending+held
}

// left returns the bytes pending, the bytes the live nodes hold and have not read yet, and
// how many nodes are live. The caller holds s.mu.
func (s *Scheduler) left() (pending, held, alive int64) {
	for _, k := range s.pending {
		pending += k.Size
	}
	for _, m := range s.nodes {
		if !m.dead {
			alive++
			held += m.left()
		}
	}
	return pending, held, alive
}

// left is what the node holds and has not read yet.
func (n *node) left() int64 { return n.held - n.read }

// least reports whether nodeName may take key at the end of the job: once less is pending
// than the nodes hold unread, an item goes to the node with the least left to read (that
// could run it), which finishes first, so that the nodes end together rather than one
// reading on alone. A node with room waits for it; a node that holds nothing is never held
// back, and nodes that hold nothing and do not ask (late to start, or done) hold nobody
// back. The caller holds s.mu.
func (s *Scheduler) least(nodeName, key string) bool {
	n := s.nodes[nodeName]
	if pending, held, _ := s.left(); pending >= held {
		return true
	}
	for name, m := range s.nodes {
		if name != nodeName && !m.dead && (m.outstanding > 0 || m.asking) && s.eligible(key, name) && m.left() < n.left() {
			return false
		}
	}
	return true
}

// Progress records that node has read bytes of key (of its copy running there); reports
// for a copy that is not running are ignored. It wakes no waiter: every node reports once a
// second per item, and the items that end, often enough, wake them.
func (s *Scheduler) Progress(nodeName, key string, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[nodeName]
	if _, ok := s.running[key][nodeName]; !ok || n == nil || n.dead {
		return
	}
	bytes = min(max(bytes, 0), s.keys[key].Size)
	n.read += bytes - n.progress[key]
	n.progress[key] = bytes
}

// start records that nodeName runs key; the caller holds s.mu.
func (s *Scheduler) start(key, nodeName string) {
	if s.running[key] == nil {
		s.running[key] = map[string]time.Time{}
	}
	s.running[key][nodeName] = time.Now()
	s.nodes[nodeName].outstanding++
	s.nodes[nodeName].held += s.keys[key].Size
	s.notify()
}

// nextFor returns the index of the largest pending key nodeName may take, or -1.
func (s *Scheduler) nextFor(nodeName string) int {
	for i, k := range s.pending {
		if s.eligible(k.Name, nodeName) {
			return i
		}
	}
	return -1
}

// eligible reports whether nodeName may run key: not pinned elsewhere, and not a node whose
// attempt at it failed.
func (s *Scheduler) eligible(key, nodeName string) bool {
	if on, pinned := s.pin[key]; pinned && on != nodeName {
		return false
	}
	return !s.tried[key][nodeName]
}

// straggler picks the item running longest on one other node, if it has run past the
// policy's bound; the caller holds s.mu.
func (s *Scheduler) straggler(nodeName string) (Key, bool) {
	if !s.policy.Speculate || len(s.durations) == 0 {
		return Key{}, false
	}
	d := slices.Clone(s.durations)
	slices.Sort(d)
	bound := max(time.Duration(float64(d[len(d)/2])*s.policy.Factor), s.policy.Min)
	var best string
	var oldest time.Time
	for key, copies := range s.running {
		if len(copies) != 1 || !s.eligible(key, nodeName) {
			continue
		}
		for on, started := range copies {
			if on != nodeName && time.Since(started) > bound && (best == "" || started.Before(oldest)) {
				best, oldest = key, started
			}
		}
	}
	return s.keys[best], best != ""
}

func (s *Scheduler) runningElsewhere(nodeName string) bool {
	for _, copies := range s.running {
		for on := range copies {
			if on != nodeName && !s.nodes[on].dead {
				return true
			}
		}
	}
	return false
}

// stop removes nodeName's copy of key; the caller holds s.mu.
func (s *Scheduler) stop(key, nodeName string) {
	delete(s.running[key], nodeName)
	if len(s.running[key]) == 0 {
		delete(s.running, key)
	}
	if n := s.nodes[nodeName]; !n.dead {
		n.outstanding--
		n.held -= s.keys[key].Size
		n.read -= n.progress[key]
		delete(n.progress, key)
	}
}

// Done records that node finished key and holds its result; any other copy is cancelled.
// Reports from a node that does not run the key (a dead node's late lines, a cancelled copy,
// a duplicate) are ignored and return false.
func (s *Scheduler) Done(nodeName, key string) bool {
	return s.settle(nodeName, key, func() {
		s.owner[key] = nodeName
		s.durations = append(s.durations, time.Since(s.running[key][nodeName]))
	})
}

// Fail records that key failed on node for a reason that retrying elsewhere would not cure
// (bad data, missing object); it is reported, not redone.
func (s *Scheduler) Fail(nodeName, key, why string) bool {
	return s.settle(nodeName, key, func() { s.failed[key] = why })
}

// settle ends every copy of key after nodeName's copy settled it, and cancels the others.
func (s *Scheduler) settle(nodeName, key string, record func()) bool {
	s.mu.Lock()
	if _, ok := s.running[key][nodeName]; !ok {
		s.mu.Unlock()
		return false
	}
	record()
	var others []string
	for on := range s.running[key] {
		if on != nodeName {
			others = append(others, on)
		}
		s.stop(key, on)
	}
	// The cancels go out before anyone sees the new state: a node's feeder that learns it has
	// nothing left closes that node's input, and a cancel sent after it would be lost.
	if s.OnCancel != nil {
		for _, on := range others {
			s.OnCancel(on, key)
		}
	}
	s.notify()
	s.mu.Unlock()
	return true
}

// Retry records that node's attempt at key failed in a way another node may not (the
// command's exit, a signal). The item goes back for a node that has not failed it, while the
// policy's retries last; then it fails for good with why.
func (s *Scheduler) Retry(nodeName, key, why string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.running[key][nodeName]; !ok {
		return false
	}
	s.stop(key, nodeName)
	if s.tried[key] == nil {
		s.tried[key] = map[string]bool{}
	}
	s.tried[key][nodeName] = true
	if len(s.running[key]) > 0 {
		return true // another copy still runs
	}
	switch {
	case len(s.tried[key]) > s.policy.Retries:
		s.failed[key] = fmt.Sprintf("%s (after %d attempt(s))", why, len(s.tried[key]))
	case !s.anyEligible(key):
		s.failed[key] = fmt.Sprintf("%s (no other node left to try)", why)
	default:
		s.pending = append(s.pending, s.keys[key])
		sortKeys(s.pending)
	}
	s.notify()
	return true
}

// anyEligible reports whether some live node may run key; the caller holds s.mu.
func (s *Scheduler) anyEligible(key string) bool {
	for name, n := range s.nodes {
		if !n.dead && s.eligible(key, name) {
			return true
		}
	}
	return false
}

// Dead marks node dead and puts back every item whose result lived only there — the ones it
// was running and (unless results are durable) the ones it had finished — for the survivors
// to redo (pinned items are lost instead). It returns those items (nil when the node was
// already dead).
func (s *Scheduler) Dead(nodeName string) []Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[nodeName]
	if n == nil || n.dead {
		return nil
	}
	n.dead = true
	n.outstanding, n.held, n.read = 0, 0, 0
	clear(n.progress)
	var back []Key
	for k, copies := range s.running {
		if _, ok := copies[nodeName]; ok {
			s.stop(k, nodeName)
			if len(s.running[k]) == 0 {
				back = append(back, s.keys[k])
			}
		}
	}
	if !s.policy.Durable {
		for k, on := range s.owner {
			if on == nodeName {
				delete(s.owner, k)
				back = append(back, s.keys[k])
			}
		}
	}
	// Pending items pinned here are lost too: nobody else holds their input.
	var keep []Key
	for _, k := range s.pending {
		if s.pin[k.Name] == nodeName {
			back = append(back, k)
		} else {
			keep = append(keep, k)
		}
	}
	s.pending = keep
	for _, k := range back {
		if s.pin[k.Name] == nodeName {
			s.lost[k.Name] = true
		} else {
			s.pending = append(s.pending, k)
		}
	}
	// An item that every survivor already failed has no node left to try.
	keep = s.pending[:0]
	for _, k := range s.pending {
		if len(s.tried[k.Name]) > 0 && !s.anyEligible(k.Name) {
			s.failed[k.Name] = "failed on every node that is left"
			continue
		}
		keep = append(keep, k)
	}
	s.pending = keep
	sortKeys(s.pending)
	sortKeys(back)
	s.notify()
	return back
}

// Alive reports how many nodes are not dead.
func (s *Scheduler) Alive() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := 0
	for _, n := range s.nodes {
		if !n.dead {
			a++
		}
	}
	return a
}

// Complete reports whether nothing is left to hand out or wait for: every item is done on a
// live node, failed, or lost.
func (s *Scheduler) Complete() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending) == 0 && len(s.running) == 0
}

// Outcome is the state of the job at one moment.
type Outcome struct {
	Done       map[string]string // key -> node holding its result
	Failed     map[string]string // key -> why
	Unfinished []Key             // pending, running or lost, largest first
	Dead       []string          // nodes that died, sorted
	TotalBytes int64
	DoneBytes  int64
	NodeBytes  map[string]int64 // bytes of the results each live node holds
}

// Outcome returns a copy of the job's state.
func (s *Scheduler) Outcome() Outcome {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := Outcome{
		Done:      make(map[string]string, len(s.owner)),
		Failed:    make(map[string]string, len(s.failed)),
		NodeBytes: map[string]int64{},
	}
	for _, k := range s.keys {
		o.TotalBytes += k.Size
	}
	for k, on := range s.owner {
		o.Done[k] = on
		o.DoneBytes += s.keys[k].Size
		o.NodeBytes[on] += s.keys[k].Size
	}
	for k, why := range s.failed {
		o.Failed[k] = why
		o.DoneBytes += s.keys[k].Size
	}
	o.Unfinished = append(o.Unfinished, s.pending...)
	for k := range s.running {
		o.Unfinished = append(o.Unfinished, s.keys[k])
	}
	for k := range s.lost {
		o.Unfinished = append(o.Unfinished, s.keys[k])
	}
	sortKeys(o.Unfinished)
	for name, n := range s.nodes {
		if n.dead {
			o.Dead = append(o.Dead, name)
		}
	}
	sort.Strings(o.Dead)
	return o
}
