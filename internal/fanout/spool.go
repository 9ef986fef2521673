package fanout

import (
	"context"
	"io"
	"os"
	"sync"
)

// Spool sends one input stream to every host: it copies the input into an unlinked
// temporary file as it arrives, and each host reads the file at its own pace, following
// it while it grows. Fast hosts do not wait for slow ones, hosts that start late (more
// hosts than --parallel) still get every byte, and memory stays flat for any size.
type Spool struct {
	f    *os.File
	mu   sync.Mutex
	cond *sync.Cond
	size int64
	done bool
	err  error
}

// NewSpool starts copying r into a spool.
func NewSpool(r io.Reader) (*Spool, error) {
	f, err := os.CreateTemp("", "ec2kit-stdin-")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	s := &Spool{f: f}
	s.cond = sync.NewCond(&s.mu)
	go s.fill(r)
	return s, nil
}

func (s *Spool) fill(r io.Reader) {
	buf := make([]byte, 256<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			// Only what reached the file counts: a reader must never wait for bytes that
			// a failed write (a full disk) will not bring.
			w, werr := s.f.WriteAt(buf[:n], s.size)
			if werr != nil {
				err = &SpoolError{Err: werr}
			}
			s.mu.Lock()
			s.size += int64(w)
			s.cond.Broadcast()
			s.mu.Unlock()
		}
		if err != nil {
			s.mu.Lock()
			s.done = true
			if err != io.EOF {
				s.err = err
			}
			s.cond.Broadcast()
			s.mu.Unlock()
			return
		}
	}
}

// SpoolError is a failure to keep the input on the local disk (a full temporary
// directory, for example): every host's command then ends with it.
type SpoolError struct{ Err error }

func (e *SpoolError) Error() string { return "spooling input to the local disk: " + e.Err.Error() }
func (e *SpoolError) Unwrap() error { return e.Err }

// Err is the error that ended the input early, if any: reading it, or keeping it on disk.
func (s *Spool) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Reader returns a reader of the whole stream from its start; it ends when the input
// ends, or with ctx's error once ctx is done.
func (s *Spool) Reader(ctx context.Context) io.Reader {
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	return &spoolReader{s: s, ctx: ctx, stop: stop}
}

type spoolReader struct {
	s    *Spool
	ctx  context.Context
	stop func() bool
	off  int64
}

func (r *spoolReader) Read(p []byte) (int, error) {
	s := r.s
	s.mu.Lock()
	for r.off >= s.size && !s.done && r.ctx.Err() == nil {
		s.cond.Wait()
	}
	size, done, err := s.size, s.done, s.err
	s.mu.Unlock()
	if r.ctx.Err() != nil {
		return 0, r.ctx.Err()
	}
	if r.off >= size {
		r.stop()
		if done && err != nil {
			return 0, err
		}
		return 0, io.EOF
	}
	if int64(len(p)) > size-r.off {
		p = p[:size-r.off]
	}
	n, err := s.f.ReadAt(p, r.off)
	r.off += int64(n)
	if err == io.EOF {
		err = nil
		if n == 0 {
			err = io.ErrUnexpectedEOF // the file lost what it held: never spin on it
		}
	}
	return n, err
}

// Close releases the spool's file.
func (s *Spool) Close() error { return s.f.Close() }
