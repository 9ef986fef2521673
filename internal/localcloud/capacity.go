package localcloud

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"

	"golang.org/x/sys/unix"

	"ec2kit/internal/cli"
)

// capacityFaults lists the dry pools, [[type, zone or ""], ...]: the moto launcher reads it
// on every RunInstances.
const capacityFaults = "capacity-faults.json"

// capacityFault turns a pool's capacity off ("on": the fault is on) or back on: args are
// [ZONE] on|off.
func capacityFault(c Cloud, itype string, args []string) error {
	zone, mode := "", ""
	switch len(args) {
	case 1:
		mode = args[0]
	case 2:
		zone, mode = args[0], args[1]
	}
	if mode != "on" && mode != "off" {
		return cli.Errorf(cli.ExitUsage, "usage: localcloud fault capacity TYPE [ZONE] on|off")
	}
	lock, err := os.OpenFile(c.path(capacityFaults+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return cli.Errorf(cli.ExitLocal, "%v", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return cli.Errorf(cli.ExitLocal, "%v", err)
	}
	var dry [][2]string
	b, err := os.ReadFile(c.path(capacityFaults))
	if err == nil {
		err = json.Unmarshal(b, &dry)
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return cli.Errorf(cli.ExitLocal, "%s: %v", capacityFaults, err)
	}
	pool := [2]string{itype, zone}
	dry = slices.DeleteFunc(dry, func(p [2]string) bool { return p == pool })
	if mode == "on" {
		dry = append(dry, pool)
	}
	b, _ = json.Marshal(dry)
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
