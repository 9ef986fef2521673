package watcher

import (
	"reflect"
	"testing"

	"ec2kit/internal/fleet"
	"ec2kit/internal/localcloud/sandbox"
)

func TestPlan(t *testing.T) {
	run := func(id, ip string) Instance { return Instance{ID: id, State: "running", IP: ip} }
	in := func(id, state string) Instance { return Instance{ID: id, State: state, IP: "127.1.0.9"} }
	alive := View{Alive: true}
	exited := func(code int) View { return View{Code: code} }
	tests := []struct {
		name  string
		insts []Instance
		hosts map[string]View
		want  []Action
	}{
		{"new running instance boots", []Instance{run("i-1", "127.1.0.4")}, nil,
			[]Action{{Kind: Start, ID: "i-1"}}},
		{"running host is left alone", []Instance{run("i-1", "127.1.0.4")}, map[string]View{"i-1": alive}, nil},
		{"not loopback is never served", []Instance{run("i-1", "10.0.0.4"), run("i-2", "")}, nil,
			[]Action{{Kind: Skip, ID: "i-1"}, {Kind: Skip, ID: "i-2"}}},
		{"terminated kills and discards", []Instance{in("i-1", "terminated")}, map[string]View{"i-1": alive},
			[]Action{{Kind: Stop, ID: "i-1", Discard: true}}},
		{"stopped kills and keeps disk", []Instance{in("i-1", "stopped")}, map[string]View{"i-1": alive},
			[]Action{{Kind: Stop, ID: "i-1"}}},
		{"stopping kills too", []Instance{in("i-1", "stopping")}, map[string]View{"i-1": alive},
			[]Action{{Kind: Stop, ID: "i-1"}}},
		{"vanished instance", nil, map[string]View{"i-1": alive},
			[]Action{{Kind: Stop, ID: "i-1", Discard: true}}},
		{"terminated without host: nothing", []Instance{in("i-1", "terminated")}, nil, nil},
		{"poweroff tells EC2", []Instance{run("i-1", "127.1.0.4")}, map[string]View{"i-1": exited(sandbox.ExitPoweroff)},
			[]Action{{Kind: PowerOff, ID: "i-1"}}},
		{"reboot restarts", []Instance{run("i-1", "127.1.0.4")}, map[string]View{"i-1": exited(sandbox.ExitReboot)},
			[]Action{{Kind: Start, ID: "i-1"}}},
		{"crash restarts", []Instance{run("i-1", "127.1.0.4")}, map[string]View{"i-1": exited(sandbox.ExitCrashed)},
			[]Action{{Kind: Start, ID: "i-1"}}},
		{"fault down is not resurrected", []Instance{run("i-1", "127.1.0.4")},
			map[string]View{"i-1": {Code: sandbox.ExitKilled, Fault: FaultDown}}, nil},
		{"fault down, then terminated", []Instance{in("i-1", "terminated")},
			map[string]View{"i-1": {Fault: FaultDown}}, []Action{{Kind: Stop, ID: "i-1", Discard: true}}},
		{"hung host is left alone", []Instance{run("i-1", "127.1.0.4")},
			map[string]View{"i-1": {Alive: true, Fault: FaultHang}}, nil},
		{"mixed, in id order",
			[]Instance{run("i-3", "127.1.0.6"), in("i-2", "terminated"), run("i-1", "127.1.0.4")},
			map[string]View{"i-2": alive, "i-1": alive, "i-0": alive},
			[]Action{{Kind: Stop, ID: "i-0", Discard: true}, {Kind: Stop, ID: "i-2", Discard: true}, {Kind: Start, ID: "i-3"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Plan(tc.insts, tc.hosts)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestLoginUser(t *testing.T) {
	for name, want := range map[string]string{
		"al2023-ami-2023.6.20250101.0-kernel-6.1-x86_64":                 "ec2-user",
		"ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-2025": "ubuntu",
		"debian-12-amd64-20250101-1000":                                  "admin",
		"":                                                               "ec2-user",
	} {
		if got := fleet.LoginUser(name); got != want {
			t.Errorf("%q: got %s, want %s", name, got, want)
		}
	}
}
