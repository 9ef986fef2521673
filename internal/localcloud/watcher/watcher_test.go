package watcher

import (
	"context"
	"fmt"
	"io"
	"log"
	"slices"
	"sync"
	"testing"

	"ec2kit/internal/localcloud/sandbox"
)

type fakeCloud struct {
	mu        sync.Mutex
	insts     []Instance
	poweredOf []string
}

func (c *fakeCloud) Instances(context.Context) ([]Instance, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Instance(nil), c.insts...), nil
}

func (c *fakeCloud) Running(_ context.Context, ids []string) (map[string]bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	running := map[string]bool{}
	for _, in := range c.insts {
		if in.State == "running" && slices.Contains(ids, in.ID) {
			running[in.ID] = true
		}
	}
	return running, nil
}

func (c *fakeCloud) Spec(_ context.Context, in Instance) (sandbox.Spec, error) {
	return sandbox.Spec{ID: in.ID, IP: in.IP, User: "ec2-user"}, nil
}

func (c *fakeCloud) PowerOff(_ context.Context, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.poweredOf = append(c.poweredOf, id)
	for i := range c.insts {
		if c.insts[i].ID == id {
			c.insts[i].State = "stopped"
		}
	}
	return nil
}

type fakeHost struct {
	done   chan struct{}
	code   int
	frozen bool
}

func (h *fakeHost) Done() <-chan struct{} { return h.done }
func (h *fakeHost) ExitCode() int         { return h.code }
func (h *fakeHost) Pid() int              { return 1 }
func (h *fakeHost) Freeze(f bool) error   { h.frozen = f; return nil }
func (h *fakeHost) Kill()                 { h.exit(sandbox.ExitKilled) }
func (h *fakeHost) exit(code int) {
	select {
	case <-h.done:
	default:
		h.code = code
		close(h.done)
	}
}

// The watcher's rounds against a fake EC2 and fake hosts: boot, fault down (not
// resurrected), fault up, poweroff reported to EC2, and discarding terminated disks.
func TestSync(t *testing.T) {
	cloud := &fakeCloud{insts: []Instance{{ID: "i-1", State: "running", IP: "127.1.0.4"}, {ID: "i-2", State: "running", IP: "127.1.0.5"}}}
	booted := map[string][]*fakeHost{}
	var discarded []string
	w := &Watcher{Cloud: cloud, Log: log.New(io.Discard, "", 0),
		Boot: func(s sandbox.Spec) (Host, error) {
			h := &fakeHost{done: make(chan struct{})}
			booted[s.ID] = append(booted[s.ID], h)
			return h, nil
		},
		Discard: func(id string) error { discarded = append(discarded, id); return nil },
		hosts:   map[string]*host{}, skipped: map[string]bool{},
	}
	ctx := context.Background()
	w.Sync(ctx)
	if len(booted["i-1"]) != 1 || len(booted["i-2"]) != 1 {
		t.Fatalf("boots: %v", booted)
	}
	w.Sync(ctx)
	if len(booted["i-1"]) != 1 {
		t.Fatal("a running host was booted again")
	}

	if err := w.SetFault("i-1", FaultDown); err != nil {
		t.Fatal(err)
	}
	w.Sync(ctx)
	if len(booted["i-1"]) != 1 {
		t.Fatal("a host that is down was resurrected")
	}
	if err := w.SetFault("i-1", FaultNone); err != nil {
		t.Fatal(err)
	}
	w.Sync(ctx)
	if len(booted["i-1"]) != 2 {
		t.Fatal("fault up did not boot the host again")
	}
	if err := w.SetFault("i-1", FaultHang); err != nil || !booted["i-1"][1].frozen {
		t.Fatalf("hang: %v", err)
	}
	w.SetFault("i-1", FaultNone)
	if booted["i-1"][1].frozen {
		t.Fatal("fault up did not thaw")
	}
	if err := w.SetFault("i-9", FaultDown); err != ErrNoHost {
		t.Fatalf("unknown host: %v", err)
	}

	booted["i-2"][0].exit(sandbox.ExitPoweroff)
	w.Sync(ctx) // reports the poweroff; EC2 now says stopped
	w.Sync(ctx) // so the host is forgotten, its disk kept
	if len(cloud.poweredOf) != 1 || len(booted["i-2"]) != 1 || len(w.Status()) != 1 || len(discarded) != 0 {
		t.Fatalf("poweroff: reported %v, boots %d, hosts %v, discarded %v", cloud.poweredOf, len(booted["i-2"]), w.Status(), discarded)
	}

	cloud.insts[0].State = "terminated"
	w.Sync(ctx)
	if len(w.Status()) != 0 || len(discarded) != 1 || discarded[0] != "i-1" {
		t.Fatalf("terminate: hosts %v, discarded %v", w.Status(), discarded)
	}
}

// A big launch is booted bootBatch hosts at a time, each batch only while its instances
// still run: those terminated during the first batch's boots are not booted.
func TestSyncBootsInBatches(t *testing.T) {
	cloud := &fakeCloud{}
	for i := range bootBatch + 10 {
		cloud.insts = append(cloud.insts, Instance{ID: fmt.Sprintf("i-%03d", i), State: "running", IP: fmt.Sprintf("127.1.1.%d", i+4)})
	}
	booted := 0
	w := &Watcher{Cloud: cloud, Log: log.New(io.Discard, "", 0),
		Boot: func(sandbox.Spec) (Host, error) {
			if booted++; booted == bootBatch {
				for i := range cloud.insts {
					cloud.insts[i].State = "terminated"
				}
			}
			return &fakeHost{done: make(chan struct{})}, nil
		},
		Discard: func(string) error { return nil },
		hosts:   map[string]*host{}, skipped: map[string]bool{},
	}
	w.Sync(context.Background())
	if booted != bootBatch {
		t.Fatalf("booted %d, want the first batch of %d only", booted, bootBatch)
	}
	w.Sync(context.Background())
	if booted != bootBatch || len(w.Status()) != 0 {
		t.Fatalf("after termination: %d booted, hosts %v", booted, w.Status())
	}
}
