package orchestrate

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"

	"ec2kit/internal/sshx"
)

// node is one instance taking part in the job.
type node struct {
	id, label string
	conn      *sshx.Conn
	cores     int
	cmd       string // the countpass command line for this node
}

// session runs one countpass on n: it feeds keys as the scheduler hands them out and
// reports each finished key back. It returns nil when the node is healthy at the end, and
// the reason when the node must count as dead (connection lost, countpass crashed).
func (j *job) session(ctx context.Context, n *node) error {
	s, err := n.conn.NewSession()
	if err != nil {
		return err
	}
	defer s.Close()
	stdin, err := s.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := s.StdoutPipe()
	if err != nil {
		return err
	}
	stderr := &lineWriter{emit: func(line string) { j.prog.Printf("%s: %s\n", n.label, line) }}
	s.Stderr = stderr
	if err := s.Start(n.cmd); err != nil {
		return err
	}

	// sent holds the keys given to this countpass and not yet reported.
	var mu sync.Mutex
	sent := map[string]bool{}
	feedCtx, stopFeeding := context.WithCancel(ctx)
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		defer stdin.Close() // no more keys: countpass finishes what it has, then exits
		for {
			k, ok := j.sched.Next(feedCtx, n.id)
			if !ok {
				return
			}
			mu.Lock()
			sent[k.Name] = true
			mu.Unlock()
			if _, err := io.WriteString(stdin, k.Name+"\n"); err != nil {
				return
			}
		}
	}()

	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		kind, key, detail, ok := parseLine(sc.Text())
		if !ok {
			continue
		}
		switch kind {
		case "progress":
			if b, err := strconv.ParseInt(detail, 10, 64); err == nil {
				j.prog.Partial(n.id, key, b)
			}
			continue
		case "ok":
			j.sched.Done(n.id, key)
		case "err":
			j.sched.Fail(n.id, key, detail)
			j.prog.Printf("%s: %s: %s\n", n.label, key, detail)
		}
		j.prog.Settled(n.id, key)
		mu.Lock()
		delete(sent, key)
		mu.Unlock()
	}
	werr := s.Wait()
	stopFeeding()
	<-fed
	stderr.Flush()
	if lost := n.conn.Lost(); lost != nil {
		return lost
	}
	var exit *ssh.ExitError
	switch {
	case werr == nil:
	case errors.As(werr, &exit) && exit.ExitStatus() == 1:
		// Some keys failed; they were reported and the node is fine.
	case errors.As(werr, &exit):
		return fmt.Errorf("countpass exited with status %d", exit.ExitStatus())
	case ctx.Err() != nil:
		return ctx.Err()
	default:
		return fmt.Errorf("connection lost: %w", werr)
	}
	// A healthy countpass reports every key it was given; one it did not is a failure
	// (not a death: the node's other results stand).
	mu.Lock()
	defer mu.Unlock()
	for k := range sent {
		j.sched.Fail(n.id, k, "countpass ended without reporting it")
	}
	return nil
}

// parseLine splits a countpass output line: "ok\tKEY\tBYTES\tROWS[\tcached]",
// "err\tKEY\tMESSAGE" or "progress\tKEY\tBYTES" (keys never hold tabs: countpass refuses
// them). Other line types are for newer readers: ok is false.
func parseLine(line string) (kind, key, detail string, ok bool) {
	f := strings.SplitN(line, "\t", 3)
	if len(f) < 3 {
		return "", "", "", false
	}
	switch f[0] {
	case "ok":
		bytes, _, _ := strings.Cut(f[2], "\t")
		return f[0], f[1], bytes, true
	case "err", "progress":
		return f[0], f[1], f[2], true
	}
	return "", "", "", false
}

// lineWriter calls emit with each whole line written to it.
type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	emit func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			return len(p), nil
		}
		w.emit(strings.TrimRight(string(w.buf[:i]), "\r"))
		w.buf = w.buf[i+1:]
	}
}

// Flush emits a last line that had no newline.
func (w *lineWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(string(w.buf))
		w.buf = nil
	}
}
