package fanout

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"ec2kit/internal/lines"
	"ec2kit/internal/sshx"
)

// Output receives every host's stdout and stderr and decides how they are shown.
type Output interface {
	// Open is called when h starts; the writers are closed when its command ends.
	Open(h sshx.Host) (stdout, stderr io.WriteCloser, err error)
	// Done is called with each host's result after its writers are closed.
	Done(r Result)
	// Close ends the run (for example printing coalesced output).
	Close() error
}

// Mode picks an Output.
type Mode int

const (
	Prefixed  Mode = iota // each line as it comes, prefixed with "label: "
	Grouped               // each host's output as one block when it finishes
	Coalesced             // identical outputs once, under the list of their hosts
	JSON                  // one JSON object per line of output, and one per result
)

// NewOutput returns the output for mode writing to stdout and stderr, or, with outdir,
// into outdir/<id>.out and outdir/<id>.err.
func NewOutput(mode Mode, stdout, stderr io.Writer, outdir string) (Output, error) {
	if outdir != "" {
		if err := os.MkdirAll(outdir, 0o755); err != nil {
			return nil, err
		}
		return dirOutput(outdir), nil
	}
	out, errw := &lockedWriter{w: stdout}, &lockedWriter{w: stderr}
	switch mode {
	case Grouped:
		return &blocks{stdout: out, stderr: errw}, nil
	case Coalesced:
		return &blocks{stdout: out, stderr: errw, coalesce: true}, nil
	case JSON:
		return jsonOutput{out}, nil
	}
	return prefixed{out, errw}, nil
}

// lockedWriter serialises writes of whole lines from many hosts to one stream.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

type prefixed struct{ stdout, stderr io.Writer }

func (p prefixed) Open(h sshx.Host) (io.WriteCloser, io.WriteCloser, error) {
	pre := []byte(h.Label + ": ")
	f := func(out, line []byte) []byte {
		out = append(out, pre...)
		out = append(out, line...)
		return append(out, '\n')
	}
	return &lines.Writer{Dst: p.stdout, Format: f}, &lines.Writer{Dst: p.stderr, Format: f}, nil
}
func (prefixed) Done(Result)  {}
func (prefixed) Close() error { return nil }

type jsonOutput struct{ w io.Writer }

type jsonLine struct {
	Host   string `json:"host"`
	ID     string `json:"id"`
	Stream string `json:"stream"`
	Line   string `json:"line"`
}

type jsonResult struct {
	Host      string  `json:"host"`
	ID        string  `json:"id"`
	Status    string  `json:"status"`
	ExitCode  int     `json:"exit_code"`
	Signal    string  `json:"signal,omitempty"`
	Error     string  `json:"error,omitempty"`
	ElapsedMS float64 `json:"elapsed_ms"`
}

func (j jsonOutput) Open(h sshx.Host) (io.WriteCloser, io.WriteCloser, error) {
	f := func(stream string) func(out, line []byte) []byte {
		return func(out, line []byte) []byte {
			b, _ := json.Marshal(jsonLine{Host: h.Label, ID: h.Target.ID, Stream: stream, Line: string(line)})
			out = append(out, b...)
			return append(out, '\n')
		}
	}
	return &lines.Writer{Dst: j.w, Format: f("stdout")}, &lines.Writer{Dst: j.w, Format: f("stderr")}, nil
}

func (j jsonOutput) Done(r Result) {
	jr := jsonResult{Host: r.Host.Label, ID: r.Host.Target.ID, Status: r.Status.String(), ExitCode: r.ExitCode,
		Signal: r.Signal, ElapsedMS: float64(r.Elapsed.Microseconds()) / 1000}
	if r.Status != OK && r.Err != nil {
		jr.Error = r.reason()
	}
	b, _ := json.Marshal(jr)
	j.w.Write(append(b, '\n'))
}

func (jsonOutput) Close() error { return nil }

// blocks holds each host's output and prints it as one block per host (Grouped) or per
// distinct output (Coalesced, like dshbak -c).
type blocks struct {
	stdout, stderr io.Writer
	coalesce       bool
	mu             sync.Mutex
	bufs           map[string]*hostBuf // by instance id
	order          []*hostBuf
}

type hostBuf struct {
	label string
	out   [2]bytes.Buffer // stdout, stderr
}

type bufCloser struct{ *bytes.Buffer }

func (bufCloser) Close() error { return nil }

func (b *blocks) Open(h sshx.Host) (io.WriteCloser, io.WriteCloser, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bufs == nil {
		b.bufs = map[string]*hostBuf{}
	}
	hb := &hostBuf{label: h.Label}
	b.bufs[h.Target.ID] = hb
	b.order = append(b.order, hb)
	return bufCloser{&hb.out[0]}, bufCloser{&hb.out[1]}, nil
}

func (b *blocks) Done(r Result) {
	if b.coalesce {
		return
	}
	b.mu.Lock()
	hb := b.bufs[r.Host.Target.ID]
	delete(b.bufs, r.Host.Target.ID)
	b.mu.Unlock()
	if hb == nil {
		return
	}
	writeBlock(b.stdout, []string{hb.label}, hb.out[0].Bytes())
	writeBlock(b.stderr, []string{hb.label}, hb.out[1].Bytes())
}

func (b *blocks) Close() error {
	if !b.coalesce {
		return nil
	}
	for stream, w := range []io.Writer{b.stdout, b.stderr} {
		groups := map[string][]string{}
		var keys []string
		for _, hb := range b.order {
			out := hb.out[stream].String()
			if _, ok := groups[out]; !ok {
				keys = append(keys, out)
			}
			groups[out] = append(groups[out], hb.label)
		}
		// Largest group first: the common output, then the odd ones out.
		sort.SliceStable(keys, func(i, j int) bool { return len(groups[keys[i]]) > len(groups[keys[j]]) })
		for _, k := range keys {
			sort.Strings(groups[k])
			writeBlock(w, groups[k], []byte(k))
		}
	}
	return nil
}

const rule = "----------------\n"

// writeBlock prints output under a header naming its hosts; empty output prints nothing.
func writeBlock(w io.Writer, labels []string, out []byte) {
	if len(out) == 0 {
		return
	}
	var b bytes.Buffer
	head := strings.Join(labels, ",")
	if len(labels) > 1 {
		head = fmt.Sprintf("%s (%d)", head, len(labels))
	}
	b.WriteString(rule + head + "\n" + rule)
	b.Write(out)
	if out[len(out)-1] != '\n' {
		b.WriteByte('\n')
	}
	w.Write(b.Bytes())
}

// dirOutput writes each host's stdout and stderr to files named by instance id.
type dirOutput string

func (d dirOutput) Open(h sshx.Host) (io.WriteCloser, io.WriteCloser, error) {
	base := filepath.Join(string(d), h.Target.ID)
	o, err := os.Create(base + ".out")
	if err != nil {
		return nil, nil, err
	}
	e, err := os.Create(base + ".err")
	if err != nil {
		o.Close()
		return nil, nil, err
	}
	return o, e, nil
}
func (dirOutput) Done(Result)  {}
func (dirOutput) Close() error { return nil }
