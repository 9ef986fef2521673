package fleet

import "testing"

func TestInterruptionOf(t *testing.T) {
	for code, want := range map[string]Interruption{
		"fulfilled":                                NotInterrupted,
		"marked-for-termination":                   Notice,
		"marked-for-stop":                          Notice,
		"instance-terminated-no-capacity":          Interrupted,
		"instance-terminated-by-price":             Interrupted,
		"instance-stopped-capacity-oversubscribed": Interrupted,
		"instance-terminated-by-user":              NotInterrupted, // ec2-rm, not EC2
		"request-canceled-and-instance-running":    NotInterrupted,
	} {
		if got := interruptionOf(code); got != want {
			t.Errorf("%s: %q, want %q", code, got, want)
		}
	}
}
