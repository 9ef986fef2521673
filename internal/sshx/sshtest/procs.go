package sshtest

import (
	"bytes"
	"os"
	"strconv"
)

// Running lists the live processes whose command line contains marker: what a test left
// running on its hosts (zombies, which have no command line, do not count).
func Running(marker string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(bytes.ReplaceAll(b, []byte{0}, []byte{' '}), []byte(marker)) {
			pids = append(pids, pid)
		}
	}
	return pids
}
