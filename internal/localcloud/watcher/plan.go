// Package watcher keeps the local cloud's hosts in step with EC2: every running instance has
// a sandbox host, every other instance has none, and what happens inside a host (poweroff,
// reboot, a crash) is reported back to EC2 or repaired.
package watcher

import (
	"net/netip"
	"sort"

	"ec2kit/internal/localcloud/sandbox"
)

// Instance is what EC2 says about one instance.
type Instance struct {
	ID, State, IP, KeyName, ImageID string
}

// Fault is a failure injected on purpose (`localcloud fault`).
type Fault string

// The faults; FaultNone is normal service.
const (
	FaultNone Fault = ""
	FaultDown Fault = "down" // host killed while EC2 says running; not restarted
	FaultHang Fault = "hang" // every process of the host stopped
)

// View is what Plan needs to know about a host the watcher runs.
type View struct {
	Alive bool
	Code  int // the init's exit code, when not Alive
	Fault Fault
}

// Kind names what an Action does.
type Kind int

// The actions.
const (
	Start    Kind = iota // boot a host for a running instance (first time, reboot, crash)
	Stop                 // kill the host (if alive) and forget it
	PowerOff             // the host powered itself off: tell EC2 (stop or terminate)
	Skip                 // running, but with an address no host may take (not loopback)
)

// Action is one step towards EC2's picture.
type Action struct {
	Kind Kind
	ID   string
	// Discard (with Stop) also deletes the host's disk: its upper layer and /mnt. Stopped
	// instances keep theirs for the next start, as EBS volumes do.
	Discard bool
}

// Plan compares EC2's instances with the hosts and says what to do, in id order.
func Plan(instances []Instance, hosts map[string]View) []Action {
	var acts []Action
	seen := make(map[string]bool, len(instances))
	for _, in := range instances {
		seen[in.ID] = true
		v, ok := hosts[in.ID]
		if in.State != "running" {
			// pending and stopping pass by: moto has no such phases, and a host must
			// not outlive its instance anyway.
			if ok {
				acts = append(acts, Action{Kind: Stop, ID: in.ID, Discard: in.State == "terminated"})
			}
			continue
		}
		if ip, err := netip.ParseAddr(in.IP); err != nil || !ip.IsLoopback() || !ip.Is4() {
			if !ok {
				acts = append(acts, Action{Kind: Skip, ID: in.ID})
			}
			continue
		}
		switch {
		case !ok:
			acts = append(acts, Action{Kind: Start, ID: in.ID})
		case v.Alive, v.Fault == FaultDown:
		case v.Code == sandbox.ExitPoweroff:
			// Repeated every round until EC2 no longer says running, so a failed call is
			// retried and the host is never resurrected in between.
			acts = append(acts, Action{Kind: PowerOff, ID: in.ID})
		default: // reboot, crash
			acts = append(acts, Action{Kind: Start, ID: in.ID})
		}
	}
	for id := range hosts {
		if !seen[id] {
			acts = append(acts, Action{Kind: Stop, ID: id, Discard: true})
		}
	}
	sort.SliceStable(acts, func(i, j int) bool { return acts[i].ID < acts[j].ID })
	return acts
}
