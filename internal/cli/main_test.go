package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

const helperEnv = "EC2KIT_CLI_TEST_HELPER"

// A command whose cleanup hangs after the first Ctrl-C still ends at the second, with 130.
// The test binary itself plays the command.
func TestSecondInterruptExitsAtOnce(t *testing.T) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(Run("stuck", func(ctx context.Context) error {
			fmt.Println("ready")
			<-ctx.Done()
			fmt.Println("cancelled")
			select {} // a cleanup that never ends
		}))
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSecondInterruptExitsAtOnce$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(out)
	expect := func(want string) {
		t.Helper()
		if !lines.Scan() || lines.Text() != want {
			t.Fatalf("command said %q, want %q", lines.Text(), want)
		}
	}
	expect("ready")
	cmd.Process.Signal(syscall.SIGINT)
	expect("cancelled")
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != ExitInterrupted {
			t.Fatalf("exit %v, want %d", err, ExitInterrupted)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the second interrupt was swallowed")
	}
}
