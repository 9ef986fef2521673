// Package cli holds the conventions every ec2kit command shares: the exit-code table, how
// errors reach the user, flag parsing with --help/--version, confirmation of destructive
// actions, and reading ids from stdin.
package cli

import (
	"errors"
	"fmt"
)

// Exit codes, one table for every command (documented in README.md). Scripts rely on them,
// so they never change meaning.
const (
	ExitOK          = 0   // everything succeeded
	ExitFailed      = 1   // some remote command or work item failed (the hosts answered)
	ExitUsage       = 2   // bad flags, arguments or selector syntax
	ExitUnreachable = 3   // some host could not be reached, or timed out
	ExitAWS         = 4   // an AWS API call failed (credentials, permissions, limits, capacity)
	ExitNoMatch     = 5   // the selectors matched no instance
	ExitRefused     = 6   // a destructive action was not confirmed (or no terminal and no --yes)
	ExitLocal       = 7   // a local problem: unreadable file, full disk, missing dependency
	ExitData        = 8   // malformed or incomplete data (bad rows, missing results)
	ExitInterrupted = 130 // interrupted by a signal (Ctrl-C)
)

// ExitTable is the human-readable table, printed in every command's --help.
const ExitTable = `Exit codes (shared by every ec2kit command):
  0    success
  1    some remote command or work item failed
  2    usage error (bad flag, argument or selector)
  3    some host unreachable or timed out
  4    AWS API error (credentials, permissions, limits, capacity)
  5    no instance matched the selectors
  6    not confirmed (answer "no", or no terminal and no --yes)
  7    local problem (file, disk, missing dependency, local cloud down)
  8    malformed or incomplete data
  130  interrupted`

// Error is an error that carries its exit code and, optionally, what to do about it.
type Error struct {
	Code int
	Err  error
	Hint string // what the user can do; printed on its own line
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an error that exits with code.
func Errorf(code int, format string, args ...any) error {
	return &Error{Code: code, Err: fmt.Errorf(format, args...)}
}

// WithHint attaches advice to err, keeping its exit code (ExitFailed if it has none).
func WithHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &Error{Code: CodeOf(err), Err: err, Hint: hint}
}

// CodeOf returns the exit code an error carries (ExitFailed for a plain error).
func CodeOf(err error) int {
	if err == nil {
		return ExitOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ExitFailed
}

// HintOf returns the first advice found in err's chain (through wrapped and joined
// errors), or "".
func HintOf(err error) string {
	switch e := err.(type) {
	case nil:
		return ""
	case *Error:
		if e.Hint != "" {
			return e.Hint
		}
	case interface{ Unwrap() []error }:
		for _, err := range e.Unwrap() {
			if h := HintOf(err); h != "" {
				return h
			}
		}
		return ""
	}
	return HintOf(errors.Unwrap(err))
}

// Worst picks the exit code to report when several outcomes mix: unreachable hosts outrank
// failed commands, since a missing host means the result is incomplete.
func Worst(codes ...int) int {
	rank := func(c int) int {
		switch c {
		case ExitOK:
			return 0
		case ExitFailed:
			return 1
		case ExitUnreachable:
			return 2
		default:
			return 3
		}
	}
	w := ExitOK
	for _, c := range codes {
		if rank(c) > rank(w) {
			w = c
		}
	}
	return w
}
