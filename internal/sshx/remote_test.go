package sshx_test

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"ec2kit/internal/sshx"
	"ec2kit/internal/sshx/sshtest"
)

// TestWatchdogParentGoneButPidAnswers: the watchdog's parent (sshd, on a host) exits but its
// pid still answers kill -0, as a reused pid or an unreaped zombie does; the command must
// be ended all the same.
func TestWatchdogParentGoneButPidAnswers(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs /proc")
	}
	const marker = "987655"
	// The parent starts the wrapped command and, once told to, exits; nobody waits for it
	// until the end, so it stays a zombie whose pid answers.
	started := t.TempDir() + "/started"
	parent := exec.Command("sh", "-c", sshx.Wrap(": >"+started+"; sleep "+marker)+" & read x")
	tell, err := parent.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	defer parent.Wait()
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(started); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the command did not start")
		}
	}
	tell.Close()
	for deadline := time.Now().Add(5 * time.Second); len(sshtest.Running(marker)) > 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			for _, pid := range sshtest.Running(marker) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			t.Fatal("the command outlived its parent")
		}
	}
}
