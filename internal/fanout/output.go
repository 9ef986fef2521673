package fanout

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"hash"
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
// distinct output (Coalesced, like dshbak -c). Output beyond a little per stream waits in
// files, so memory stays flat however much the hosts print.
type blocks struct {
	stdout, stderr io.Writer
	coalesce       bool
	mu             sync.Mutex
	bufs           map[string]*hostBuf // by instance id
	order          []*hostBuf
	dir            string     // the spool directory, made at the first spill
	print          sync.Mutex // one block at a time: a block takes several writes
}

type hostBuf struct {
	label string
	out   [2]*held // stdout, stderr
}

func (b *blocks) Open(h sshx.Host) (io.WriteCloser, io.WriteCloser, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bufs == nil {
		b.bufs = map[string]*hostBuf{}
	}
	hb := &hostBuf{label: h.Label, out: [2]*held{{b: b}, {b: b}}}
	if b.coalesce {
		hb.out[0].sum, hb.out[1].sum = sha256.New(), sha256.New()
	}
	b.bufs[h.Target.ID] = hb
	b.order = append(b.order, hb)
	return hb.out[0], hb.out[1], nil
}

// spoolDir returns the directory that holds spilled output, made on first use.
func (b *blocks) spoolDir() (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dir == "" {
		d, err := os.MkdirTemp("", "ec2kit-output-")
		if err != nil {
			return "", err
		}
		b.dir = d
	}
	return b.dir, nil
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
	b.writeBlock(b.stdout, []string{hb.label}, hb.out[0])
	b.writeBlock(b.stderr, []string{hb.label}, hb.out[1])
	hb.out[0].release()
	hb.out[1].release()
}

func (b *blocks) Close() error {
	if b.dir != "" {
		defer os.RemoveAll(b.dir)
	}
	if !b.coalesce {
		return nil
	}
	for stream, w := range []io.Writer{b.stdout, b.stderr} {
		type group struct {
			labels []string
			out    *held
		}
		groups := map[string]*group{}
		var keys []string
		for _, hb := range b.order {
			h := hb.out[stream]
			k := fmt.Sprintf("%d:%x", h.size, h.sum.Sum(nil))
			if groups[k] == nil {
				groups[k] = &group{out: h}
				keys = append(keys, k)
			}
			groups[k].labels = append(groups[k].labels, hb.label)
		}
		// Largest group first: the common output, then the odd ones out.
		sort.SliceStable(keys, func(i, j int) bool { return len(groups[keys[i]].labels) > len(groups[keys[j]].labels) })
		for _, k := range keys {
			sort.Strings(groups[k].labels)
			b.writeBlock(w, groups[k].labels, groups[k].out)
		}
	}
	for _, hb := range b.order {
		hb.out[0].release()
		hb.out[1].release()
	}
	return nil
}

// spillAt is how much of one stream is held in memory before it moves to a file.
const spillAt = 16 << 10

// held is one stream of one host: in memory while small, then in a file.
type held struct {
	b    *blocks
	mem  bytes.Buffer
	f    *os.File
	size int64
	last byte
	sum  hash.Hash // of everything written, for Coalesced
}

func (h *held) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if h.f == nil && h.mem.Len()+len(p) > spillAt {
		if err := h.spill(); err != nil {
			return 0, err
		}
	}
	var err error
	if h.f != nil {
		_, err = h.f.Write(p)
	} else {
		h.mem.Write(p)
	}
	if err != nil {
		return 0, fmt.Errorf("keeping output on the local disk: %w", err)
	}
	if h.sum != nil {
		h.sum.Write(p)
	}
	h.size += int64(len(p))
	h.last = p[len(p)-1]
	return len(p), nil
}

func (h *held) spill() error {
	dir, err := h.b.spoolDir()
	if err == nil {
		h.f, err = os.CreateTemp(dir, "out-")
	}
	if err == nil {
		_, err = h.f.Write(h.mem.Bytes())
	}
	if err != nil {
		return fmt.Errorf("keeping output on the local disk: %w", err)
	}
	h.mem = bytes.Buffer{}
	return nil
}

// Close is the end of the host's stream; what it held is kept until printed.
func (*held) Close() error { return nil }

// writeTo copies what h holds to w.
func (h *held) writeTo(w io.Writer) error {
	if h.f == nil {
		_, err := w.Write(h.mem.Bytes())
		return err
	}
	_, err := io.Copy(w, io.NewSectionReader(h.f, 0, h.size))
	return err
}

func (h *held) release() {
	if h.f != nil {
		h.f.Close()
		os.Remove(h.f.Name())
		h.f = nil
	}
	h.mem = bytes.Buffer{}
}

const rule = "----------------\n"

// writeBlock prints output under a header naming its hosts; empty output prints nothing.
func (b *blocks) writeBlock(w io.Writer, labels []string, out *held) {
	if out.size == 0 {
		return
	}
	head := strings.Join(labels, ",")
	if len(labels) > 1 {
		head = fmt.Sprintf("%s (%d)", head, len(labels))
	}
	b.print.Lock()
	defer b.print.Unlock()
	io.WriteString(w, rule+head+"\n"+rule)
	out.writeTo(w)
	if out.last != '\n' {
		io.WriteString(w, "\n")
	}
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
