package cli

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// IsTerminal reports whether f is a terminal (progress bars and prompts only go to one).
func IsTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// Confirm lists targets on stderr and asks the user to go on. yes skips the question. With
// no terminal to ask on it refuses, so a script never destroys things it did not name.
func Confirm(action string, targets []string, yes bool) error {
	fmt.Fprintf(os.Stderr, "%s %d target(s):\n", action, len(targets))
	for _, t := range targets {
		fmt.Fprintf(os.Stderr, "  %s\n", t)
	}
	if yes {
		return nil
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil || !IsTerminal(tty) {
		return &Error{Code: ExitRefused, Err: fmt.Errorf("not confirmed: no terminal to ask on"),
			Hint: "pass --yes to proceed without asking"}
	}
	defer tty.Close()
	return ask(tty, tty, action)
}

func ask(in io.Reader, out io.Writer, action string) error {
	fmt.Fprintf(out, "%s? [y/N] ", action)
	line, _ := bufio.NewReader(in).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return Errorf(ExitRefused, "not confirmed")
}

// Selectors returns the selectors a command works on: its arguments, plus the ids piped on
// stdin when there are no arguments or one of them is "-" (so `ec2-ls web | ec2-rm --yes`
// works). Only the first word of each stdin line counts, so a listing with more columns can
// be piped in. Stdin is never read from a terminal.
func Selectors(args []string) ([]string, error) {
	var out []string
	dash := len(args) == 0
	for _, a := range args {
		if a == "-" {
			dash = true
			continue
		}
		out = append(out, a)
	}
	if !dash || IsTerminal(os.Stdin) {
		return out, nil
	}
	return readWords(os.Stdin, out)
}

func readWords(r io.Reader, words []string) ([]string, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 && !strings.HasPrefix(f[0], "#") {
			words = append(words, f[0])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, Errorf(ExitUsage, "reading selectors from stdin: %v", err)
	}
	return words, nil
}
