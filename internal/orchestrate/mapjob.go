package orchestrate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"ec2kit/internal/awsconf"
	"ec2kit/internal/cli"
	"ec2kit/internal/decode"
	"ec2kit/internal/nodejob"
	"ec2kit/internal/s3stream"
	"ec2kit/internal/split"
	"ec2kit/internal/sshx"
)

// maxParts is how many pieces one object may have: result names carry five digits.
const maxParts = 99999

// putFile is one --put file, read once and copied to every node's working directory.
type putFile struct {
	name string
	data []byte
	exec bool
}

// readPuts reads the --put files; their names and contents are part of the job's spec.
func readPuts(paths []string) ([]putFile, []string, error) {
	var puts []putFile
	var digests []string
	seen := map[string]bool{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, nil, cli.Errorf(cli.ExitLocal, "--put: %v", err)
		}
		st, _ := os.Stat(p)
		name := filepath.Base(p)
		if seen[name] {
			return nil, nil, cli.Errorf(cli.ExitUsage, "--put: two files named %q", name)
		}
		seen[name] = true
		puts = append(puts, putFile{name: name, data: b, exec: st.Mode()&0o111 != 0})
		sum := sha256.Sum256(b)
		digests = append(digests, name+":"+hex.EncodeToString(sum[:8]))
	}
	return puts, digests, nil
}

// splitObjects cuts every plain-text object larger than the piece size into pieces (the
// manifest records how many); compressed and Parquet objects stay whole, told by content:
// the first bytes of each, read a few objects at once, since each read waits S3's latency.
func (j *job) splitObjects(ctx context.Context, c *s3stream.Client) error {
	size := j.opts.Split
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i, o := range j.objs {
		if o.Size <= size {
			continue
		}
		n := len(split.Plan(o.Size, size))
		if n > maxParts {
			return cli.Errorf(cli.ExitUsage, "--split %d would cut %q into %d pieces, more than %d: use a larger --split", size, o.Key, n, maxParts)
		}
		g.Go(func() error {
			head := make([]byte, decode.HeadSize)
			if _, err := c.ReaderAt(ctx, s3stream.Object{Key: o.Key, Size: o.Size, ETag: o.ETag}).ReadAt(head, 0); err != nil {
				return awsconf.Err("reading "+o.Key, err)
			}
			if decode.Detect(head) == decode.CSV {
				j.objs[i].Parts = n // each goroutine writes its own element
			}
			return nil
		})
	}
	return g.Wait()
}

// itemsOf returns an object's items: the whole object, or its pieces.
func (j *job) itemsOf(o nodejob.Object) []nodejob.Item {
	if o.Parts == 0 {
		return []nodejob.Item{{Key: o.Key, Part: -1, End: o.Size, Size: o.Size, ETag: o.ETag}}
	}
	var its []nodejob.Item
	for _, r := range split.Plan(o.Size, j.opts.Split) {
		its = append(its, nodejob.Item{Key: o.Key, Part: r.Part, Start: r.Start, End: r.End, Size: o.Size, ETag: o.ETag})
	}
	return its
}

// dstNode is the scheduler's name for --dst: results there outlive every node.
const dstNode = "s3 --dst"

// dstState reads what --dst already holds of this job: the previous run's manifest and the
// results present, which are kept when made from the same version of their object.
func (j *job) dstState(ctx context.Context) ([]string, error) {
	if j.dst == nil {
		return nil, nil
	}
	out, err := j.dst.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: &j.dst.Bucket, Key: ptr(j.dstPrefix + nodejob.ManifestName)})
	if err != nil {
		return nil, nil // no earlier run there (or unreadable): nothing is kept
	}
	b, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil {
		return nil, nil
	}
	old, err := nodejob.DecodeManifest(b)
	if err != nil || old.Job != j.name {
		return nil, nil
	}
	objs, err := j.dst.List(ctx, j.dstPrefix, "")
	if err != nil {
		return nil, awsconf.Err("ListObjectsV2 (--dst)", err)
	}
	var keep []string
	for _, o := range objs {
		name := strings.TrimPrefix(o.Key, j.dstPrefix)
		if it, ok := j.items[name]; ok && sameObject(old, it) {
			keep = append(keep, name)
		}
	}
	return keep, nil
}

// sameObject reports whether the run that made m listed its object exactly as this run does.
func sameObject(m *nodejob.Manifest, it nodejob.Item) bool {
	prev, ok := m.Object(it.Key)
	if !ok || prev.Size != it.Size || prev.ETag != it.ETag {
		return false
	}
	if it.Whole() {
		return prev.Parts == 0
	}
	return prev.Parts > it.Part
}

// putDstManifest writes the run's manifest into --dst, so merge --from can check there.
func (j *job) putDstManifest(ctx context.Context, data []byte) error {
	if j.dst == nil {
		return nil
	}
	_, err := j.dst.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: &j.dst.Bucket, Key: ptr(j.dstPrefix + nodejob.ManifestName),
		Body: bytes.NewReader(data)})
	if err != nil {
		return awsconf.Err("writing the manifest to --dst", err)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// putWork copies the --put files into the job's working directory on the node.
func (n *node) putWork(dir string, puts []putFile) error {
	if _, err := run(n.conn, "mkdir -p "+sshx.Quote(dir), nil); err != nil {
		return err
	}
	for _, p := range puts {
		path := dir + "/" + p.name
		if err := putFileAt(n.conn, path, p.data); err != nil {
			return fmt.Errorf("--put %s: %w", p.name, err)
		}
		if p.exec {
			if _, err := run(n.conn, "chmod +x "+sshx.Quote(path), nil); err != nil {
				return err
			}
		}
	}
	return nil
}
