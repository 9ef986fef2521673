// Package schedule decides which node runs which key of a job. Keys go out largest first,
// and only when a node has room (a bounded number of outstanding keys each), so a node that
// finishes early simply takes more and one slow node never holds a long queue. A node that
// dies gives back every key whose result lived on it — running or finished, since its disk
// is gone — and the survivors redo them.
package schedule

import (
	"context"
	"sort"
	"sync"
)

// Key is one unit of work: an S3 object and its size in bytes.
type Key struct {
	Name string
	Size int64
}

// Scheduler hands out keys to nodes. It is safe for concurrent use: each node's feeder calls
// Next, its reader calls Done/Fail, and whoever notices a death calls Dead.
type Scheduler struct {
	mu      sync.Mutex
	changed chan struct{} // closed (and replaced) on every state change, to wake waiters
	keys    map[string]Key
	pending []Key             // largest first
	running map[string]string // key -> node working on it
	owner   map[string]string // key -> node holding its result
	failed  map[string]string // key -> why it failed (a data error: not retried)
	pin     map[string]string // key -> the only node that can do it (its input is local there)
	lost    map[string]bool   // pinned keys whose node died: nobody can do them now
	nodes   map[string]*node
}

type node struct {
	window      int // how many keys it may hold at once
	outstanding int
	dead        bool
}

// New returns a scheduler for keys (duplicate names count once).
func New(keys []Key) *Scheduler {
	s := &Scheduler{
		changed: make(chan struct{}),
		keys:    make(map[string]Key, len(keys)),
		running: map[string]string{},
		owner:   map[string]string{},
		failed:  map[string]string{},
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

// sortKeys orders largest first, then by name so that runs are reproducible.
func sortKeys(ks []Key) {
	sort.Slice(ks, func(i, j int) bool {
		if ks[i].Size != ks[j].Size {
			return ks[i].Size > ks[j].Size
		}
		return ks[i].Name < ks[j].Name
	})
}

// AddNode registers a node that may hold up to window keys at a time (at least one).
func (s *Scheduler) AddNode(name string, window int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nodes[name] = &node{window: max(window, 1)}
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

// Next blocks until node has room and a key is pending, and hands it the largest one. It
// returns false when there is nothing more for this node to do: the node is dead, ctx is
// done, or no key is pending and none runs elsewhere (so no death can bring one back while
// this node waits).
func (s *Scheduler) Next(ctx context.Context, nodeName string) (Key, bool) {
	for {
		s.mu.Lock()
		n := s.nodes[nodeName]
		if n == nil || n.dead || ctx.Err() != nil {
			s.mu.Unlock()
			return Key{}, false
		}
		i := s.nextFor(nodeName)
		if i >= 0 && n.outstanding < n.window {
			k := s.pending[i]
			s.pending = append(s.pending[:i], s.pending[i+1:]...)
			s.running[k.Name] = nodeName
			n.outstanding++
			s.notify()
			s.mu.Unlock()
			return k, true
		}
		if i < 0 && !s.runningElsewhere(nodeName) {
			s.mu.Unlock()
			return Key{}, false
		}
		wait := s.changed
		s.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
		}
	}
}

// nextFor returns the index of the largest pending key nodeName may take, or -1.
func (s *Scheduler) nextFor(nodeName string) int {
	for i, k := range s.pending {
		if on, pinned := s.pin[k.Name]; !pinned || on == nodeName {
			return i
		}
	}
	return -1
}

func (s *Scheduler) runningElsewhere(nodeName string) bool {
	for _, on := range s.running {
		if on != nodeName && !s.nodes[on].dead {
			return true
		}
	}
	return false
}

// Done records that node finished key and holds its result. Reports from a node that does
// not hold the key (a dead node's late lines, a duplicate) are ignored and return false.
func (s *Scheduler) Done(nodeName, key string) bool {
	return s.finish(nodeName, key, func() { s.owner[key] = nodeName })
}

// Fail records that key failed on node for a reason that retrying elsewhere would not cure
// (bad data, missing object); it is reported, not redone.
func (s *Scheduler) Fail(nodeName, key, why string) bool {
	return s.finish(nodeName, key, func() { s.failed[key] = why })
}

func (s *Scheduler) finish(nodeName, key string, record func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running[key] != nodeName {
		return false
	}
	delete(s.running, key)
	s.nodes[nodeName].outstanding--
	record()
	s.notify()
	return true
}

// Dead marks node dead and puts back every key whose result lived only there — the ones it
// was running and the ones it had finished — for the survivors to redo (pinned keys are lost
// instead). It returns those keys (nil when the node was already dead).
func (s *Scheduler) Dead(nodeName string) []Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[nodeName]
	if n == nil || n.dead {
		return nil
	}
	n.dead = true
	n.outstanding = 0
	var back []Key
	for k, on := range s.running {
		if on == nodeName {
			delete(s.running, k)
			back = append(back, s.keys[k])
		}
	}
	for k, on := range s.owner {
		if on == nodeName {
			delete(s.owner, k)
			back = append(back, s.keys[k])
		}
	}
	// Pending keys pinned here are lost too: nobody else holds their input.
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

// Complete reports whether nothing is left to hand out or wait for: every key is done on a
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
