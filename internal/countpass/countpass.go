package countpass

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"runtime"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"golang.org/x/sync/semaphore"

	"ec2kit/internal/awsconf"
	"ec2kit/internal/cli"
	"ec2kit/internal/count"
	"ec2kit/internal/decode"
	"ec2kit/internal/nodejob"
	"ec2kit/internal/s3stream"
)

// Options are countpass's flags.
type Options struct {
	Files      []string
	Keys       bool   // S3 keys on stdin -> results
	Download   bool   // S3 keys on stdin -> first 5 fields in Data
	CountFiles bool   // keys on stdin, read from Data -> results
	Src        string // s3://bucket[/prefix]
	Results    string
	Data       string
	Jobs       int
	Streams    int   // ranged GETs in flight per object
	GETs       int   // ranged GETs in flight in all; 0: DefaultGETs
	PartSize   int64 // bytes per ranged GET
	Progress   bool
	Field      int    // the 1-based field to count; 0 means 4 (passenger_count)
	Column     string // or the column of this name in each object's header
	Hold       string // hold the lock of this job directory until stdin ends
	// --map: S3 items on stdin -> the command's stdout -> results (and Dst)
	Map    bool
	Cmd    string // run under bash -c
	Work   string // the command's working directory (the job's --put files)
	Node   string // this instance's id, for EC2KIT_NODE
	Dst    string // s3://bucket/prefix/ the results also go to
	Header bool   // pieces after an object's first start with its first line
}

// column is the column the options select.
func (o Options) column() count.Column {
	if o.Column != "" {
		return count.Column{Name: o.Column}
	}
	if o.Field == 0 {
		return count.Passengers
	}
	return count.Column{Field: o.Field}
}

// Run runs countpass with stdin and stdout as given (stderr is os.Stderr).
func Run(ctx context.Context, o Options, stdin io.Reader, stdout io.Writer) error {
	modes := 0
	for _, m := range []bool{o.Keys, o.Download, o.CountFiles, o.Map} {
		if m {
			modes++
		}
	}
	switch {
	case o.Hold != "":
		return hold(o.Hold, stdin, stdout)
	case modes > 1:
		return cli.Errorf(cli.ExitUsage, "--keys, --download, --count-files and --map exclude each other")
	case modes == 1 && len(o.Files) > 0:
		return cli.Errorf(cli.ExitUsage, "FILE arguments are for the filter mode; keys come on stdin")
	case (o.Keys || o.Download || o.Map) && o.Src == "":
		return cli.Errorf(cli.ExitUsage, "--src s3://bucket[/prefix] is required with --keys, --download and --map")
	case o.Map && o.Cmd == "":
		return cli.Errorf(cli.ExitUsage, "--map needs --cmd")
	case o.Field < 0:
		return cli.Errorf(cli.ExitUsage, "--field %d: fields are numbered from 1", o.Field)
	case o.Field != 0 && o.Column != "":
		return cli.Errorf(cli.ExitUsage, "--field and --column exclude each other")
	case o.Download && (o.Field != 0 || o.Column != ""):
		return cli.Errorf(cli.ExitUsage, "--download keeps the first 5 fields; --field and --column are for counting (--count-files)")
	case modes == 0:
		return filter(o.Files, o.column(), stdin, stdout)
	}
	if o.Jobs <= 0 {
		step := nodejob.Map
		switch {
		case o.Keys:
			step = nodejob.Combined
		case o.Download:
			step = nodejob.Download
		case o.CountFiles:
			step = nodejob.Count
		}
		o.Jobs = nodejob.Jobs(step, runtime.NumCPU())
	}
	var w worker
	var notices <-chan string
	if o.CountFiles {
		w = &countFiles{o}
	} else {
		bucket, prefix, err := s3stream.ParseURL(o.Src)
		if err != nil {
			return cli.Errorf(cli.ExitUsage, "--src: %v", err)
		}
		cfg, err := awsconf.Load(ctx)
		if err != nil {
			return err
		}
		// The SDK keeps 10 idle connections per host by default; every job runs Streams GETs
		// to the same endpoint, and a connection dropped after each part costs a handshake.
		maxStreams := streamsFor(memAvailable(), o.Jobs)
		gets := o.GETs
		if gets <= 0 {
			gets = DefaultGETs
		}
		conns := min(o.Jobs*max(o.Streams, maxStreams), gets)
		cfg.HTTPClient = awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConnsPerHost = conns
		})
		c := &s3stream.Client{S3: awsconf.S3Reader(ctx, cfg), Bucket: bucket, PartSize: o.PartSize, Streams: o.Streams, MaxStreams: maxStreams,
			GETs: semaphore.NewWeighted(int64(gets))}
		w = &fromS3{o: o, c: c, prefix: prefix}
		// On a spot instance EC2 warns of an interruption in the metadata: the orchestrator
		// hears of it at once and moves this node's work elsewhere.
		notices = awsconf.WatchInterruption(ctx, cfg, time.Second)
		if o.Map {
			m := &mapper{o: o, c: c, prefix: prefix}
			if o.Dst != "" {
				b, p, err := s3stream.ParseURL(o.Dst)
				if err != nil {
					return cli.Errorf(cli.ExitUsage, "--dst: %v", err)
				}
				m.dst, m.dstPfx = &s3stream.Client{S3: c.S3, Bucket: b}, p
			}
			w = m
		}
	}
	return runKeys(ctx, o, w, notices, stdin, stdout)
}

// filter counts column col of files (or stdin) and prints the summed counts.
func filter(files []string, col count.Column, stdin io.Reader, stdout io.Writer) error {
	total := &count.Counts{}
	if len(files) == 0 {
		files = []string{"-"}
	}
	for _, name := range files {
		c, err := countFile(name, col, stdin)
		var pe *fs.PathError
		switch {
		case errors.As(err, &pe): // opening, reading or spooling a local file: not the data's fault
			return cli.Errorf(cli.ExitLocal, "%s: %w", name, err)
		case err != nil:
			return cli.Errorf(cli.ExitData, "%s: %w", name, err)
		}
		total.Merge(c)
	}
	reportSkipped(total.Skipped, col)
	bw := bufio.NewWriter(stdout)
	total.WriteTo(bw)
	return bw.Flush()
}

func reportSkipped(n uint64, col count.Column) {
	if n > 0 {
		why := fmt.Sprintf("with fewer than %d fields", col.Field)
		if col.Name != "" {
			why = "too short to hold " + col.String()
		}
		fmt.Fprintf(os.Stderr, "countpass: skipped %d row(s) %s\n", n, why)
	}
}

// hold takes the lock of job directory dir (see nodejob.Lock), says "locked" (or "busy" when
// another run holds it) on stdout with what the directory holds, carries out the
// orchestrator's writes to it, and keeps the lock until stdin ends: the orchestrator holds
// it for as long as its connection lives, however it ends (nodejob's hold conversation).
func hold(dir string, stdin io.Reader, stdout io.Writer) error {
	release, err := nodejob.Lock(dir)
	if errors.Is(err, nodejob.ErrBusy) {
		fmt.Fprintln(stdout, nodejob.HoldBusy)
		return cli.Silent(cli.ExitFailed)
	}
	if err != nil {
		return cli.Errorf(cli.ExitLocal, "%v", err)
	}
	defer release()
	s, err := nodejob.SurveyDir(dir)
	if err != nil {
		return cli.Errorf(cli.ExitLocal, "reading %s: %v", dir, err)
	}
	if _, err := stdout.Write(append([]byte(nodejob.HoldLocked+"\n"), s.Encode()...)); err != nil {
		return err
	}
	in := bufio.NewReader(stdin)
	for {
		w, err := nodejob.ReadWrite(in)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			_, _ = io.WriteString(stdout, nodejob.EncodeWritten(err))
			_, _ = io.Copy(io.Discard, in) // keep the lock until the orchestrator lets go
			return cli.Errorf(cli.ExitUsage, "%v", err)
		}
		if _, err := io.WriteString(stdout, nodejob.EncodeWritten(w.Apply(dir))); err != nil {
			return err
		}
	}
}

// countFile counts column col of one file, or stdin for "-".
func countFile(name string, col count.Column, stdin io.Reader) (*count.Counts, error) {
	var f *os.File
	if name == "-" {
		// Parquet needs random access: spool a Parquet stdin to a temporary file.
		br := bufio.NewReaderSize(stdin, 1<<20)
		head, _ := br.Peek(decode.HeadSize)
		if decode.Detect(head) != decode.Parquet {
			return countCSV(decode.Detect(head), br, col, runtime.GOMAXPROCS(0))
		}
		tmp, err := os.CreateTemp("", "countpass-*.parquet")
		if err != nil {
			return nil, err
		}
		defer tmp.Close()
		os.Remove(tmp.Name())
		if _, err := io.Copy(tmp, br); err != nil {
			return nil, err
		}
		f = tmp
	} else {
		var err error
		if f, err = os.Open(name); err != nil {
			return nil, err
		}
		defer f.Close()
	}
	return countReaderAt(f, col)
}

// countReaderAt counts column col of a file or spooled stream: Parquet in place, anything
// else streamed.
func countReaderAt(f *os.File, col count.Column) (*count.Counts, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	head := make([]byte, decode.HeadSize)
	n, _ := f.ReadAt(head, 0)
	format := decode.Detect(head[:n])
	switch format {
	case decode.Parquet:
		return decode.ParquetCounts(f, st.Size(), col)
	case decode.CSV:
		if err := checkHead(f, col); err != nil {
			return nil, err
		}
		return countPlainFile(f, st.Size(), col)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return countCSV(format, f, col, runtime.GOMAXPROCS(0))
}

// checkHead applies decode.CheckCSV to the start of a plain file.
func checkHead(f *os.File, col count.Column) error {
	head := make([]byte, decode.SniffSize)
	n, err := f.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return err
	}
	return decode.CheckCSV(head[:n], n < len(head), col)
}

// countCSV decodes a CSV stream and counts its column col with workers goroutines.
func countCSV(format decode.Format, r io.Reader, col count.Column, workers int) (*count.Counts, error) {
	if format != decode.CSV {
		workers = 1 // decompression is the bottleneck, and it is sequential
	}
	d, err := decode.CSVReader(format, r, col)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	res, err := count.Reader(d, col, workers, 0)
	if err != nil {
		return nil, err
	}
	return &res.Counts, nil
}

// countPlainFile counts column col of a plain CSV file on every core: in place where the
// file can be mapped (mapFile), else with ReadAt.
func countPlainFile(f *os.File, size int64, col count.Column) (*count.Counts, error) {
	workers := runtime.GOMAXPROCS(0)
	if data, unmap, ok := mapFile(f, size); ok {
		defer unmap()
		res, err := count.Bytes(data, col, workers)
		if err != nil {
			return nil, err
		}
		return &res.Counts, nil
	}
	res, err := count.ReaderAt(f, size, col, workers, 0)
	if err != nil {
		return nil, err
	}
	return &res.Counts, nil
}

// DefaultGETs is how many ranged GETs a node keeps in flight in all: a NIC fills with some 35
// S3 connections, and each GET first waits for S3's first byte, so twice that and more keeps
// it full while GETs end and start (bench/RESULTS.md, "network model").
const DefaultGETs = 128

// streamsFor is how many GETs in flight an object may have by default on a node with mem
// bytes available (0: unknown) and jobs objects at once: each holds a buffer of
// s3stream.DefaultPartSize, and the buffers may take half the memory, so a small node
// reads with fewer streams rather than running out of memory.
func streamsFor(mem int64, jobs int) int {
	if mem <= 0 {
		return s3stream.MaxStreams
	}
	perObject := mem / 2 / int64(max(jobs, 1)) / s3stream.DefaultPartSize
	return int(min(max(perObject-1, 1), s3stream.MaxStreams))
}
