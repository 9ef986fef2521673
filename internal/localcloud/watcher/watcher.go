package watcher

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sort"
	"sync"
	"time"

	"ec2kit/internal/localcloud/sandbox"
)

// Cloud is the EC2 side the watcher reads and reports to.
type Cloud interface {
	Instances(ctx context.Context) ([]Instance, error)
	// Spec gathers what a host is built from: login user, key, user data.
	Spec(ctx context.Context, in Instance) (sandbox.Spec, error)
	// Running says which of ids are running now (a small question, asked between boots).
	Running(ctx context.Context, ids []string) (map[string]bool, error)
	// PowerOff records that the instance shut itself down (stop or terminate, per its
	// InstanceInitiatedShutdownBehavior).
	PowerOff(ctx context.Context, id string) error
}

// Host is a running sandbox (see sandbox.Host).
type Host interface {
	Done() <-chan struct{}
	ExitCode() int
	Kill()
	Freeze(bool) error
	Pid() int
}

// Watcher runs hosts for the running instances of a Cloud.
type Watcher struct {
	Cloud    Cloud
	Boot     func(spec sandbox.Spec) (Host, error)
	Discard  func(id string) error // deletes an instance's disk
	Interval time.Duration
	Log      *log.Logger

	mu      sync.Mutex
	hosts   map[string]*host
	skipped map[string]bool
}

type host struct {
	h     Host
	spec  sandbox.Spec
	fault Fault
}

func (h *host) view() View {
	select {
	case <-h.h.Done():
		return View{Code: h.h.ExitCode(), Fault: h.fault}
	default:
		return View{Alive: true, Fault: h.fault}
	}
}

// ErrNoHost means the instance has no host (not running, or unknown).
var ErrNoHost = errors.New("no such host: the instance is not running here")

// Run polls until ctx ends, then kills every host.
func (w *Watcher) Run(ctx context.Context) {
	w.mu.Lock()
	w.hosts, w.skipped = map[string]*host{}, map[string]bool{}
	w.mu.Unlock()
	defer w.killAll()
	t := time.NewTicker(w.Interval)
	defer t.Stop()
	for {
		w.Sync(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sync does one round: read EC2, plan, act.
func (w *Watcher) Sync(ctx context.Context) {
	insts, err := w.Cloud.Instances(ctx)
	if err != nil {
		if ctx.Err() == nil {
			w.Log.Printf("describe instances: %v", err)
		}
		return
	}
	byID := make(map[string]Instance, len(insts))
	for _, in := range insts {
		byID[in.ID] = in
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	views := make(map[string]View, len(w.hosts))
	for id, h := range w.hosts {
		views[id] = h.view()
	}
	var starts []Action
	for _, a := range Plan(insts, views) {
		if a.Kind == Start {
			starts = append(starts, a)
			continue
		}
		w.act(ctx, a, byID[a.ID])
	}
	for len(starts) > 0 {
		batch := starts[:min(bootBatch, len(starts))]
		starts = starts[len(batch):]
		ids := make([]string, len(batch))
		for i, a := range batch {
			ids[i] = a.ID
		}
		running, err := w.Cloud.Running(ctx, ids)
		if err != nil {
			if ctx.Err() == nil {
				w.Log.Printf("describe instances: %v", err)
			}
			return
		}
		for _, a := range batch {
			if running[a.ID] {
				w.act(ctx, a, byID[a.ID])
			}
		}
	}
}

// bootBatch is how many hosts are booted (about 7 a second on 2 cores) between checks that
// their instances still run: a launch of a thousand takes minutes to boot, and instances
// terminated meanwhile (an aborted launch) must not be booted all the same.
const bootBatch = 32

func (w *Watcher) act(ctx context.Context, a Action, in Instance) {
	switch a.Kind {
	case Skip:
		if !w.skipped[a.ID] {
			w.skipped[a.ID] = true
			w.Log.Printf("%s: address %q is not a loopback address; no host for it", a.ID, in.IP)
		}
	case Start:
		old := w.hosts[a.ID]
		spec := sandbox.Spec{}
		if old != nil {
			w.Log.Printf("%s: host ended (exit %d), booting it again", a.ID, old.h.ExitCode())
			spec = old.spec // a reboot keeps what the instance was launched with
		} else {
			var err error
			if spec, err = w.Cloud.Spec(ctx, in); err != nil {
				w.Log.Printf("%s: %v", a.ID, err)
				return
			}
		}
		h, err := w.Boot(spec)
		if err != nil {
			w.Log.Printf("%s: boot: %v", a.ID, err)
			return
		}
		w.hosts[a.ID] = &host{h: h, spec: spec}
		w.Log.Printf("%s: host booting on %s (user %s)", a.ID, spec.IP, spec.User)
	case PowerOff:
		if err := w.Cloud.PowerOff(ctx, a.ID); err != nil {
			w.Log.Printf("%s: reporting poweroff: %v", a.ID, err)
		}
	case Stop:
		w.hosts[a.ID].h.Kill()
		delete(w.hosts, a.ID)
		w.Log.Printf("%s: host stopped (instance %s)", a.ID, in.State)
		if a.Discard {
			if err := w.Discard(a.ID); err != nil {
				w.Log.Printf("%s: discard disk: %v", a.ID, err)
			}
		}
	}
}

func (w *Watcher) killAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, h := range w.hosts {
		h.h.Kill()
		delete(w.hosts, id)
	}
}

// SetFault injects (or, with FaultNone, clears) a fault on a running host.
func (w *Watcher) SetFault(id string, f Fault) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	h := w.hosts[id]
	if h == nil {
		return ErrNoHost
	}
	switch f {
	case FaultDown:
		h.h.Kill()
	case FaultHang:
		if h.fault == FaultDown {
			return fmt.Errorf("%s is down; bring it up first", id)
		}
		if err := h.h.Freeze(true); err != nil {
			return err
		}
	case FaultNone:
		if h.fault == FaultHang {
			if err := h.h.Freeze(false); err != nil {
				return err
			}
		}
		// a host that was down boots again in the next round
	default:
		return fmt.Errorf("unknown fault %q", f)
	}
	h.fault = f
	return nil
}

// HostStatus describes one host for `localcloud status`.
type HostStatus struct {
	ID, IP, User, State string
	Pid                 int `json:",omitempty"`
}

// Status lists the hosts in id order.
func (w *Watcher) Status() []HostStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []HostStatus
	for id, h := range w.hosts {
		v := h.view()
		s := HostStatus{ID: id, IP: h.spec.IP, User: h.spec.User, State: "running"}
		switch {
		case v.Fault != FaultNone:
			s.State = "fault " + string(v.Fault)
		case !v.Alive:
			s.State = fmt.Sprintf("ended (exit %d)", v.Code)
		}
		if v.Alive {
			s.Pid = h.h.Pid()
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
