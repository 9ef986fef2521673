package schedule

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func keys(sizes ...int64) []Key {
	var ks []Key
	for i, sz := range sizes {
		ks = append(ks, Key{Name: fmt.Sprintf("k%02d", i), Size: sz})
	}
	return ks
}

func TestLargestFirstAndWindow(t *testing.T) {
	s := New(keys(10, 50, 30, 50, 20))
	s.AddNode("a", 2)
	ctx := context.Background()
	var got []string
	for range 2 {
		k, ok := s.Next(ctx, "a")
		if !ok {
			t.Fatal("Next refused with room left")
		}
		got = append(got, k.Name)
	}
	if got[0] != "k01" || got[1] != "k03" {
		t.Fatalf("want the two 50-byte keys first, got %v", got)
	}
	// The window is full: Next must wait until a key finishes.
	ctx2, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, ok := s.Next(ctx2, "a"); ok {
		t.Fatal("Next handed out a key beyond the window")
	}
	s.Done("a", "k01")
	if k, _ := s.Next(ctx, "a"); k.Name != "k02" {
		t.Fatalf("want k02 (30) next, got %v", k)
	}
}

func TestDeadNodeGivesBackFinishedAndRunning(t *testing.T) {
	s := New(keys(1, 2, 3, 4))
	s.AddNode("a", 2)
	s.AddNode("b", 2)
	ctx := context.Background()
	ka, _ := s.Next(ctx, "a") // k03
	kb, _ := s.Next(ctx, "b") // k02
	s.Done("a", ka.Name)
	ka2, _ := s.Next(ctx, "a") // k01, still running when a dies
	back := s.Dead("a")
	if len(back) != 2 || back[0] != ka || back[1] != ka2 {
		t.Fatalf("dead a gave back %v, want %v and %v", back, ka, ka2)
	}
	if s.Done("a", ka2.Name) {
		t.Fatal("a late report from a dead node was accepted")
	}
	if s.Dead("a") != nil {
		t.Fatal("dying twice gave keys back twice")
	}
	s.Done("b", kb.Name)
	for !s.Complete() {
		k, ok := s.Next(ctx, "b")
		if !ok {
			t.Fatalf("b stopped with work left: %+v", s.Outcome())
		}
		s.Done("b", k.Name)
	}
	o := s.Outcome()
	if len(o.Done) != 4 || o.DoneBytes != 10 || len(o.Dead) != 1 {
		t.Fatalf("outcome %+v", o)
	}
	for k, on := range o.Done {
		if on != "b" {
			t.Fatalf("%s done on %s, want the survivor b", k, on)
		}
	}
}

func TestAdoptAndFail(t *testing.T) {
	s := New(keys(5, 6, 7))
	s.AddNode("a", 1)
	if !s.Adopt("a", "k02") || s.Adopt("a", "k02") || s.Adopt("a", "nope") {
		t.Fatal("Adopt must take each pending key once")
	}
	ctx := context.Background()
	k, _ := s.Next(ctx, "a")
	if k.Name != "k01" {
		t.Fatalf("adopted key handed out again: %v", k)
	}
	s.Fail("a", k.Name, "truncated gzip")
	k, _ = s.Next(ctx, "a")
	s.Done("a", k.Name)
	if _, ok := s.Next(ctx, "a"); ok || !s.Complete() {
		t.Fatal("job should be complete")
	}
	o := s.Outcome()
	if o.Failed["k01"] != "truncated gzip" || o.Done["k02"] != "a" || o.Done["k00"] != "a" {
		t.Fatalf("outcome %+v", o)
	}
	// The node holding the adopted result dies: the key comes back.
	if back := s.Dead("a"); len(back) != 2 {
		t.Fatalf("gave back %v", back)
	}
}

// TestNextWaitsForRunningElsewhere: an idle node must stay available while another still
// runs keys, because that node's death would bring them back.
func TestNextWaitsForRunningElsewhere(t *testing.T) {
	s := New(keys(1))
	s.AddNode("a", 1)
	s.AddNode("b", 1)
	ctx := context.Background()
	k, _ := s.Next(ctx, "a")
	got := make(chan Key)
	go func() {
		k, _ := s.Next(ctx, "b")
		got <- k
	}()
	select {
	case k := <-got:
		t.Fatalf("b returned early with %v", k)
	case <-time.After(30 * time.Millisecond):
	}
	s.Dead("a")
	if k2 := <-got; k2 != k {
		t.Fatalf("b got %v, want the dead node's %v", k2, k)
	}
}

// simulate runs a job the way orchestrate does — rounds of per-node sessions until the job
// is complete or every node is dead — with nodes that work at random speeds and die at
// random moments. It checks the invariants and returns the outcome.
func simulate(t *testing.T, seed uint64, nodes, nkeys, deaths int) Outcome {
	rng := rand.New(rand.NewPCG(seed, 0))
	var ks []Key
	for i := range nkeys {
		ks = append(ks, Key{Name: fmt.Sprintf("key %d", i), Size: 1 + rng.Int64N(1000)})
	}
	s := New(ks)
	windows := map[string]int{}
	speed := map[string]time.Duration{}
	var dieAfter sync.Map // node -> *atomic.Int32 keys left before it dies
	for i := range nodes {
		name := fmt.Sprintf("n%d", i)
		windows[name] = 1 + rng.IntN(3)
		speed[name] = time.Duration(1+rng.IntN(50)) * time.Microsecond
		s.AddNode(name, windows[name])
		if i < deaths {
			left := new(atomic.Int32)
			left.Store(int32(rng.IntN(nkeys/nodes + 1)))
			dieAfter.Store(name, left)
		}
	}
	var doneOnce sync.Map // key -> node that last reported it done
	dead := map[string]bool{}
	var deadMu sync.Mutex
	ctx := context.Background()
	session := func(name string) {
		work := make(chan Key, windows[name])
		var wg sync.WaitGroup
		var inflight atomic.Int32
		for range windows[name] {
			wg.Go(func() {
				for k := range work {
					if n := inflight.Add(1); int(n) > windows[name] {
						t.Errorf("%s holds %d keys, window %d", name, n, windows[name])
					}
					time.Sleep(speed[name] * time.Duration(k.Size/100+1))
					inflight.Add(-1)
					if v, ok := dieAfter.Load(name); ok && v.(*atomic.Int32).Add(-1) < 0 {
						deadMu.Lock()
						dead[name] = true
						deadMu.Unlock()
						s.Dead(name)
						continue
					}
					if s.Done(name, k.Name) {
						doneOnce.Store(k.Name, name)
					}
				}
			})
		}
		for {
			k, ok := s.Next(ctx, name)
			if !ok {
				break
			}
			work <- k
		}
		close(work)
		wg.Wait()
	}
	for rounds := 0; !s.Complete() && s.Alive() > 0; rounds++ {
		if rounds > 100 {
			t.Fatal("job does not converge")
		}
		var wg sync.WaitGroup
		for name := range windows {
			deadMu.Lock()
			d := dead[name]
			deadMu.Unlock()
			if !d {
				wg.Go(func() { session(name) })
			}
		}
		wg.Wait()
	}
	o := s.Outcome()
	if s.Alive() > 0 {
		if len(o.Done) != nkeys || len(o.Unfinished) != 0 {
			t.Fatalf("seed %d: %d of %d keys done with survivors, unfinished %v", seed, len(o.Done), nkeys, o.Unfinished)
		}
	}
	for k, on := range o.Done {
		if dead[on] {
			t.Fatalf("seed %d: %s counted on dead node %s", seed, k, on)
		}
	}
	if len(o.Done)+len(o.Unfinished) != nkeys {
		t.Fatalf("seed %d: %d done + %d unfinished != %d keys", seed, len(o.Done), len(o.Unfinished), nkeys)
	}
	return o
}

func TestSimulatedJobs(t *testing.T) {
	for seed := range uint64(40) {
		nodes := 1 + int(seed%5)
		deaths := int(seed % uint64(nodes+1)) // sometimes every node dies
		// A doomed node may outlive the job if the others finish first.
		if o := simulate(t, seed, nodes, 60, deaths); len(o.Dead) > deaths {
			t.Fatalf("seed %d: %d dead, at most %d may die", seed, len(o.Dead), deaths)
		}
	}
}

func TestPinnedKeysStayAndAreLostWithTheirNode(t *testing.T) {
	s := New(keys(9, 8, 7))
	s.AddNode("a", 3)
	s.AddNode("b", 3)
	s.Pin("k00", "a") // the largest, but only a holds its input
	s.Pin("k01", "a")
	ctx := context.Background()
	k, _ := s.Next(ctx, "b")
	if k.Name != "k02" {
		t.Fatalf("b took %v, want the unpinned k02", k)
	}
	k, _ = s.Next(ctx, "a")
	s.Done("a", k.Name)
	if back := s.Dead("a"); len(back) != 2 {
		t.Fatalf("gave back %v", back)
	}
	s.Done("b", "k02")
	if _, ok := s.Next(ctx, "b"); ok || !s.Complete() {
		t.Fatal("pinned keys of a dead node must not be handed out")
	}
	if o := s.Outcome(); len(o.Unfinished) != 2 || len(o.Done) != 1 {
		t.Fatalf("outcome %+v", o)
	}
}

func TestRetryOnAnotherNode(t *testing.T) {
	s := New(keys(5, 1))
	s.SetPolicy(Policy{Retries: 1})
	s.AddNode("a", 1)
	s.AddNode("b", 1)
	ctx := context.Background()
	k, _ := s.Next(ctx, "a") // k00
	s.Retry("a", k.Name, "exit status 1")
	// a failed k00: it gets k01, and k00 waits for b.
	if k2, _ := s.Next(ctx, "a"); k2.Name != "k01" {
		t.Fatalf("a must not get its failed item again, got %v", k2)
	}
	kb, _ := s.Next(ctx, "b")
	if kb.Name != "k00" {
		t.Fatalf("b must retry k00, got %v", kb)
	}
	s.Retry("b", kb.Name, "exit status 2")
	o := s.Outcome()
	if !strings.Contains(o.Failed["k00"], "exit status 2 (after 2 attempt(s))") {
		t.Fatalf("want k00 failed after its retries: %+v", o)
	}
	// With no other node to try, an attempt's failure is final at once.
	s = New(keys(1))
	s.SetPolicy(Policy{Retries: 3})
	s.AddNode("a", 1)
	k, _ = s.Next(ctx, "a")
	s.Retry("a", k.Name, "boom")
	if !strings.Contains(s.Outcome().Failed["k00"], "no other node") || !s.Complete() {
		t.Fatalf("%+v", s.Outcome())
	}
}

func TestDurableResultsSurviveTheirNode(t *testing.T) {
	s := New(keys(2, 1))
	s.SetPolicy(Policy{Durable: true})
	s.AddNode("a", 2)
	ctx := context.Background()
	k1, _ := s.Next(ctx, "a")
	k2, _ := s.Next(ctx, "a")
	s.AddNode("b", 1)
	s.Done("a", k1.Name)
	if back := s.Dead("a"); len(back) != 1 || back[0] != k2 {
		t.Fatalf("only the running item comes back: %v", back)
	}
	if o := s.Outcome(); o.Done[k1.Name] != "a" {
		t.Fatalf("the durable result stays done: %+v", o)
	}
}

func TestStragglerRunsTwiceAndCountsOnce(t *testing.T) {
	s := New(keys(3, 2, 1))
	s.SetPolicy(Policy{Speculate: true, Factor: 2, Min: 50 * time.Millisecond})
	var cancelled []string
	s.OnCancel = func(node, key string) { cancelled = append(cancelled, node+":"+key) }
	s.AddNode("slow", 1)
	s.AddNode("fast", 1)
	ctx := context.Background()
	slowKey, _ := s.Next(ctx, "slow") // k00, which hangs there
	k, _ := s.Next(ctx, "fast")
	s.Done("fast", k.Name)
	k, _ = s.Next(ctx, "fast")
	lastStart := s.LastStart()
	s.Done("fast", k.Name)
	// Nothing is pending: after the bound, fast gets a second copy of slow's item.
	start := time.Now()
	dup, ok := s.Next(ctx, "fast")
	if !ok || dup != slowKey || time.Since(start) < 40*time.Millisecond {
		t.Fatalf("want a copy of %v after the bound, got %v %v after %v", slowKey, dup, ok, time.Since(start))
	}
	if lastStart.IsZero() || !s.LastStart().Equal(lastStart) {
		t.Fatalf("the last item's start is the last key's from the pending ones (%v), not a copy's (%v)", lastStart, s.LastStart())
	}
	if !s.Done("fast", dup.Name) || len(cancelled) != 1 || cancelled[0] != "slow:k00" {
		t.Fatalf("the first copy wins and the other is cancelled: %v", cancelled)
	}
	if s.Done("slow", slowKey.Name) || s.Outcome().Done["k00"] != "fast" || !s.Complete() {
		t.Fatalf("the late copy must not count: %+v", s.Outcome())
	}
}

// With windows larger than the items call for, the first node to ask takes its share of
// the bytes, not a window of the largest items.
func TestShareOfTheBytes(t *testing.T) {
	s := New(keys(10, 10, 10, 10, 10, 10, 10, 10, 10, 10))
	names := []string{"a", "b", "c", "d"}
	for _, n := range names {
		s.AddNode(n, 10)
	}
	var got []int
	for _, n := range names { // each node's feeder in turn takes all it may
		held := 0
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			_, ok := s.Next(ctx, n)
			cancel()
			if !ok {
				break
			}
			held++
		}
		got = append(got, held)
	}
	if fmt.Sprint(got) != "[3 3 3 1]" {
		t.Fatalf("items held by a, b, c, d: %v, want [3 3 3 1] (a share is 25 of 100 bytes; one more item goes over it)", got)
	}
}

// TestLastItemsToTheLeastLeft: once less is pending than the nodes hold, an item goes to the
// node with the least left to read (by their progress), so that the nodes finish together;
// a node that holds nothing and does not ask holds nobody back.
func TestLastItemsToTheLeastLeft(t *testing.T) {
	for _, aAsks := range []bool{true, false} {
		s := New(keys(100, 100, 100, 100))
		s.AddNode("a", 3)
		s.AddNode("b", 3)
		ctx := context.Background()
		for _, n := range []string{"a", "b", "a"} {
			if _, ok := s.Next(ctx, n); !ok {
				t.Fatal("Next refused with room left")
			}
		}
		s.Progress("a", "k00", 100)
		s.Progress("a", "k02", 70)  // a has 30 bytes left to read, b 100
		s.Progress("b", "k03", 100) // not b's: ignored
		got := make(chan string, 1)
		bctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		go func() {
			k, ok := s.Next(bctx, "b")
			got <- fmt.Sprintf("%s %v", k.Name, ok)
		}()
		time.Sleep(50 * time.Millisecond)
		select {
		case g := <-got:
			t.Fatalf("b (100 bytes left) took %s while a (30) holds items", g)
		default:
		}
		if aAsks {
			if k, ok := s.Next(ctx, "a"); !ok || k.Name != "k03" {
				t.Fatalf("a (30 bytes left) got %v %v, want k03", k, ok)
			}
			if g := <-got; g != " false" {
				t.Fatalf("b got %q, want nothing", g)
			}
		} else {
			s.Progress("b", "k01", 60) // 40 left: within its share, but more than a's 30
			s.Done("a", "k00")
			s.Done("a", "k02")
			if g := <-got; g != "k03 true" {
				t.Fatalf("b got %q once a holds nothing, want k03", g)
			}
		}
		cancel()
	}
}
