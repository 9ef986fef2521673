package orchestrate

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"ec2kit/internal/awsconf"
	"ec2kit/internal/cli"
	"ec2kit/internal/nodejob"
	"ec2kit/internal/s3stream"
)

// listObjects lists the objects under prefix whose key contains match, with their sizes and
// ETags (so a node reads exactly the listed version, and a re-run sees what changed).
func listObjects(ctx context.Context, bucket, prefix, match string) ([]nodejob.Object, *s3stream.Client, error) {
	cfg, err := awsconf.Load(ctx)
	if err != nil {
		return nil, nil, err
	}
	c := &s3stream.Client{S3: awsconf.S3(cfg), Bucket: bucket}
	objs, err := c.List(ctx, prefix, match)
	if err != nil {
		return nil, nil, awsconf.Err("ListObjectsV2", err)
	}
	var out []nodejob.Object
	for _, o := range objs {
		if strings.HasSuffix(o.Key, "/") {
			continue // a folder marker, not data
		}
		if err := nodejob.ValidKey(o.Key); err != nil {
			return nil, nil, cli.WithHint(cli.Errorf(cli.ExitData, "%v", err), "rename the object, or leave it out with --match")
		}
		out = append(out, nodejob.Object{Key: o.Key, Size: o.Size, ETag: o.ETag})
	}
	return out, c, nil
}

// countInput finds the count step's input: the newest download job on the nodes (or the one
// named), the objects it has, and which node holds each one's data.
func (j *job) countInput(nodes []*node) (*nodejob.Manifest, map[string]string, error) {
	var newest *nodejob.Manifest
	for _, n := range nodes {
		for _, m := range n.dataJobs {
			if m.Spec.Step == nodejob.Download && (j.opts.Input == "" || m.Job == j.opts.Input) && m.Newer(newest) {
				newest = m
			}
		}
	}
	if newest == nil {
		return nil, nil, cli.WithHint(cli.Errorf(cli.ExitData, "no download job in %s on any node", nodejob.DataRoot),
			"run `orchestrate download` first")
	}
	holder := map[string]string{}
	for _, n := range nodes {
		files, err := listFiles(n.conn, nodejob.DataDir(newest.Job))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: listing %s: %w", n.label, nodejob.DataDir(newest.Job), err)
		}
		for _, f := range files {
			if _, ok := holder[f]; !ok {
				holder[f] = n.id
			}
		}
	}
	return newest, holder, nil
}

// errBusy marks a job directory whose lock another run holds.
var errBusy = errors.New("busy")
