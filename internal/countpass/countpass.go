package countpass

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strings"
	"syscall"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"

	"ec2kit/internal/awsconf"
	"ec2kit/internal/cli"
	"ec2kit/internal/count"
	"ec2kit/internal/decode"
	"ec2kit/internal/s3stream"
)

// Options are countpass's flags.
type Options struct {
	Files        []string
	Keys         bool   // S3 keys on stdin -> results
	Download     bool   // S3 keys on stdin -> first 5 fields in Data
	CountFiles   bool   // keys on stdin, read from Data -> results
	Src          string // s3://bucket[/prefix]
	Results      string
	Data         string
	Jobs         int
	Streams      int   // ranged GETs in flight per object
	PartSize     int64 // bytes per ranged GET
	SkipExisting bool
	Progress     bool
}

// Run runs countpass with stdin and stdout as given (stderr is os.Stderr).
func Run(ctx context.Context, o Options, stdin io.Reader, stdout io.Writer) error {
	modes := 0
	for _, m := range []bool{o.Keys, o.Download, o.CountFiles} {
		if m {
			modes++
		}
	}
	switch {
	case modes > 1:
		return cli.Errorf(cli.ExitUsage, "--keys, --download and --count-files exclude each other")
	case modes == 1 && len(o.Files) > 0:
		return cli.Errorf(cli.ExitUsage, "FILE arguments are for the filter mode; keys come on stdin")
	case (o.Keys || o.Download) && o.Src == "":
		return cli.Errorf(cli.ExitUsage, "--src s3://bucket[/prefix] is required with --keys and --download")
	case modes == 0:
		return filter(o.Files, stdin, stdout)
	}
	if o.Jobs <= 0 {
		o.Jobs = runtime.NumCPU()
	}
	var w worker
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
		conns := o.Jobs * max(o.Streams, s3stream.DefaultStreams)
		cfg.HTTPClient = awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConnsPerHost = conns
		})
		c := &s3stream.Client{S3: awsconf.S3Reader(ctx, cfg), Bucket: bucket, PartSize: o.PartSize, Streams: o.Streams}
		w = &fromS3{o: o, c: c, prefix: prefix}
	}
	return runKeys(ctx, o, w, stdin, stdout)
}

// filter counts files (or stdin) and prints the summed counts.
func filter(files []string, stdin io.Reader, stdout io.Writer) error {
	total := &count.Counts{}
	if len(files) == 0 {
		files = []string{"-"}
	}
	for _, name := range files {
		c, err := countFile(name, stdin)
		if err != nil {
			return cli.Errorf(cli.ExitData, "%s: %v", name, err)
		}
		total.Merge(c)
	}
	reportSkipped("", total.Skipped)
	bw := bufio.NewWriter(stdout)
	total.WriteTo(bw)
	return bw.Flush()
}

func reportSkipped(key string, n uint64) {
	if n == 0 {
		return
	}
	if key != "" {
		key += ": "
	}
	fmt.Fprintf(os.Stderr, "countpass: %sskipped %d row(s) with fewer than 4 fields\n", key, n)
}

// countFile counts one file, or stdin for "-".
func countFile(name string, stdin io.Reader) (*count.Counts, error) {
	var f *os.File
	if name == "-" {
		// Parquet needs random access: spool a Parquet stdin to a temporary file.
		br := bufio.NewReaderSize(stdin, 1<<20)
		head, _ := br.Peek(decode.HeadSize)
		if decode.Detect(head) != decode.Parquet {
			return countCSV(decode.Detect(head), br, runtime.GOMAXPROCS(0))
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
	return countReaderAt(f)
}

// countReaderAt counts a file or spooled stream: Parquet in place, anything else streamed.
func countReaderAt(f *os.File) (*count.Counts, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	head := make([]byte, decode.HeadSize)
	n, _ := f.ReadAt(head, 0)
	format := decode.Detect(head[:n])
	switch format {
	case decode.Parquet:
		return decode.ParquetCounts(f, st.Size())
	case decode.CSV:
		if err := checkHead(f); err != nil {
			return nil, err
		}
		return countPlainFile(f, st.Size())
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return countCSV(format, f, runtime.GOMAXPROCS(0))
}

// checkHead applies decode.CheckCSV to the start of a plain file.
func checkHead(f *os.File) error {
	head := make([]byte, decode.SniffSize)
	n, err := f.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return err
	}
	return decode.CheckCSV(head[:n], n < len(head))
}

// countCSV decodes and counts a CSV stream with workers goroutines.
func countCSV(format decode.Format, r io.Reader, workers int) (*count.Counts, error) {
	if format != decode.CSV {
		workers = 1 // decompression is the bottleneck, and it is sequential
	}
	d, err := decode.CSVReader(format, r)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	res, err := count.Reader(d, workers, 0)
	if err != nil {
		return nil, err
	}
	return &res.Counts, nil
}

// validKey refuses keys that would escape the output directory, hide from merge (dotfiles)
// or break the tab-separated protocol.
func validKey(key string) error {
	if strings.ContainsAny(key, "\t\n") {
		return errors.New("key contains a tab or newline")
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || strings.HasPrefix(seg, ".") {
			return fmt.Errorf("key has an empty path segment or one starting with \".\"")
		}
	}
	return nil
}

// countPlainFile counts a plain CSV file on every core. It maps the file (populated up
// front, so there is one kernel call instead of a fault per page) and counts the rows in
// place: reading would copy every byte once more, which costs about as much CPU as counting.
// Where mapping fails it reads with ReadAt.
func countPlainFile(f *os.File, size int64) (*count.Counts, error) {
	workers := runtime.GOMAXPROCS(0)
	if size > 0 && size == int64(int(size)) {
		data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED|syscall.MAP_POPULATE)
		if err == nil {
			defer syscall.Munmap(data)
			return &count.Bytes(data, workers).Counts, nil
		}
	}
	res, err := count.ReaderAt(f, size, workers, 0)
	if err != nil {
		return nil, err
	}
	return &res.Counts, nil
}
