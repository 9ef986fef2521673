package merge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"ec2kit/internal/awsconf"
	"ec2kit/internal/nodejob"
	"ec2kit/internal/s3stream"
)

// fromS3 loads a job's results from the --dst of orchestrate map, as one node.
func fromS3(ctx context.Context, url string) (Node, *nodejob.Manifest, error) {
	bucket, prefix, err := s3stream.ParseURL(url)
	if err != nil {
		return Node{}, nil, err
	}
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	cfg, err := awsconf.Load(ctx)
	if err != nil {
		return Node{}, nil, err
	}
	c := &s3stream.Client{S3: awsconf.S3(cfg), Bucket: bucket}
	objs, err := c.List(ctx, prefix, "")
	if err != nil {
		return Node{}, nil, awsconf.Err("ListObjectsV2", err)
	}
	fsys := &s3FS{ctx: ctx, c: c, prefix: prefix, sizes: map[string]int64{}}
	for _, o := range objs {
		fsys.sizes[strings.TrimPrefix(o.Key, prefix)] = o.Size
	}
	n := Load(url, fsys)
	if n.ManifestErr != nil {
		return n, nil, n.ManifestErr
	}
	if n.Manifest == nil {
		return n, nil, fmt.Errorf("%w: no %s under %s", ErrNoJob, nodejob.ManifestName, url)
	}
	return n, n.Manifest, nil
}

// s3FS is the read side of fs.FS over objects under one prefix, enough for Load and Check:
// names are the object keys less the prefix.
type s3FS struct {
	ctx    context.Context
	c      *s3stream.Client
	prefix string
	sizes  map[string]int64
}

func (f *s3FS) Open(name string) (fs.File, error) {
	size, ok := f.sizes[name]
	if !ok || !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	key := f.prefix + name
	out, err := f.c.S3.GetObject(f.ctx, &s3.GetObjectInput{Bucket: &f.c.Bucket, Key: &key})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	if int64(len(b)) != size {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errors.New("the object changed while merge read it")}
	}
	return &s3File{Reader: bytes.NewReader(b), info: fileInfo{path.Base(name), size}}, nil
}

func (f *s3FS) Stat(name string) (fs.FileInfo, error) {
	size, ok := f.sizes[name]
	if !ok {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	}
	return fileInfo{path.Base(name), size}, nil
}

type s3File struct {
	*bytes.Reader
	info fileInfo
}

func (f *s3File) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *s3File) Close() error               { return nil }

type fileInfo struct {
	name string
	size int64
}

func (i fileInfo) Name() string       { return i.name }
func (i fileInfo) Size() int64        { return i.size }
func (i fileInfo) Mode() fs.FileMode  { return 0o444 }
func (i fileInfo) ModTime() time.Time { return time.Time{} }
func (i fileInfo) IsDir() bool        { return false }
func (i fileInfo) Sys() any           { return nil }
