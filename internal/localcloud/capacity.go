package localcloud

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"

	"ec2kit/internal/cli"
)

// capacityFaults lists the limited pools, [[type, zone or "", at most N instances per
// request (0: dry)], ...]: the moto launcher reads it on every RunInstances.
const capacityFaults = "capacity-faults.json"

// spotNotices holds the spot interruption notices `fault interrupt` posted, {instance id: time
// of the action}: the moto launcher reads it to mark the instances' spot requests.
const spotNotices = "spot-notices.json"

// capacityFault dries a pool up ("on": the fault is on), limits it to N instances per
// request, or serves it fully again ("off"): args are [ZONE] on|off|N.
func capacityFault(c Cloud, itype string, args []string) error {
	zone, mode := "", ""
	switch len(args) {
	case 1:
		mode = args[0]
	case 2:
		zone, mode = args[0], args[1]
	}
	limit, err := strconv.Atoi(mode)
	switch {
	case mode == "on":
		limit = 0
	case mode != "off" && (err != nil || limit < 0):
		return cli.Errorf(cli.ExitUsage, "usage: localcloud fault capacity TYPE [ZONE] on|off|N")
	}
	lock, err := os.OpenFile(c.path(capacityFaults+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return cli.Errorf(cli.ExitLocal, "%v", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return cli.Errorf(cli.ExitLocal, "%v", err)
	}
	var faults []capacityLimit
	b, err := os.ReadFile(c.path(capacityFaults))
	if err == nil {
		err = json.Unmarshal(b, &faults)
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return cli.Errorf(cli.ExitLocal, "%s: %v", capacityFaults, err)
	}
	faults = slices.DeleteFunc(faults, func(f capacityLimit) bool { return f.Type == itype && f.Zone == zone })
	if mode != "off" {
		faults = append(faults, capacityLimit{itype, zone, limit})
	}
	b, _ = json.Marshal(faults)
	tmp := c.path(capacityFaults + ".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return cli.Errorf(cli.ExitLocal, "%v", err)
	}
	if err := os.Rename(tmp, c.path(capacityFaults)); err != nil {
		return cli.Errorf(cli.ExitLocal, "%v", err)
	}
	where := "every zone"
	if zone != "" {
		where = zone
	}
	fmt.Fprintf(os.Stderr, "localcloud: capacity of %s in %s: fault %s\n", itype, where, mode)
	return nil
}

// capacityLimit is one limited pool, a JSON array [type, zone, limit] for the launcher.
type capacityLimit struct {
	Type, Zone string
	Limit      int
}

func (l capacityLimit) MarshalJSON() ([]byte, error) {
	return json.Marshal([]any{l.Type, l.Zone, l.Limit})
}

func (l *capacityLimit) UnmarshalJSON(b []byte) error {
	return json.Unmarshal(b, &[]any{&l.Type, &l.Zone, &l.Limit})
}
