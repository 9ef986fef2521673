package cli

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestCodeOf(t *testing.T) {
	if CodeOf(nil) != ExitOK || CodeOf(errors.New("x")) != ExitFailed {
		t.Fatal("plain errors")
	}
	err := WithHint(Errorf(ExitAWS, "boom"), "log in")
	if CodeOf(err) != ExitAWS || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("got %d %v", CodeOf(err), err)
	}
}

func TestHintOf(t *testing.T) {
	inner := WithHint(Errorf(ExitUnreachable, "host key"), "edit known_hosts")
	for _, err := range []error{
		inner,
		Errorf(ExitUnreachable, "2 hosts: %w", inner),
		errors.Join(errors.New("other"), fmt.Errorf("wrapped: %w", inner)),
	} {
		if got := HintOf(err); got != "edit known_hosts" {
			t.Errorf("HintOf(%v) = %q", err, got)
		}
	}
	if HintOf(errors.New("x")) != "" || HintOf(nil) != "" {
		t.Error("a hint from nowhere")
	}
}

func TestWorst(t *testing.T) {
	if Worst(ExitOK, ExitFailed, ExitUnreachable, ExitOK) != ExitUnreachable {
		t.Fatal("unreachable must outrank failed")
	}
	if Worst() != ExitOK || Worst(ExitFailed, ExitOK) != ExitFailed {
		t.Fatal("ok and failed")
	}
}

func TestAsk(t *testing.T) {
	var out strings.Builder
	if ask(strings.NewReader("y\n"), &out, "Terminate") != nil {
		t.Fatal("y must confirm")
	}
	if err := ask(strings.NewReader("\n"), &out, "Terminate"); CodeOf(err) != ExitRefused {
		t.Fatalf("empty answer must refuse, got %v", err)
	}
}

func TestReadWords(t *testing.T) {
	got, err := readWords(strings.NewReader("i-1 web running\n\n# comment\n  i-2\n"), []string{"a"})
	if err != nil || strings.Join(got, " ") != "a i-1 i-2" {
		t.Fatalf("got %q %v", got, err)
	}
}

func TestSize(t *testing.T) {
	for in, want := range map[string]Size{"1000": 1000, "64MiB": 64 << 20, "16M": 16 << 20, "1GB": 1e9, "2 KiB": 2048} {
		var s Size
		if err := s.UnmarshalText([]byte(in)); err != nil || s != want {
			t.Errorf("%q: got %d %v, want %d", in, s, err, want)
		}
	}
	for _, bad := range []string{"", "0", "-1", "MiB", "1.5MiB", "99999999999999GiB", "12X"} {
		var s Size
		if s.UnmarshalText([]byte(bad)) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
