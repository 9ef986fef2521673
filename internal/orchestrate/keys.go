package orchestrate

import (
	"context"
	"strings"
	"sync"

	"ec2kit/internal/awsconf"
	"ec2kit/internal/cli"
	"ec2kit/internal/manifest"
	"ec2kit/internal/s3stream"
	"ec2kit/internal/schedule"
)

// listKeys lists the objects under prefix whose key contains match, with their sizes.
func listKeys(ctx context.Context, bucket, prefix, match string) ([]schedule.Key, error) {
	cfg, err := awsconf.Load(ctx)
	if err != nil {
		return nil, err
	}
	objs, err := (&s3stream.Client{S3: awsconf.S3(cfg), Bucket: bucket}).List(ctx, prefix, match)
	if err != nil {
		return nil, awsconf.Err("listing", err)
	}
	var keys []schedule.Key
	for _, o := range objs {
		if strings.HasSuffix(o.Key, "/") {
			continue // a folder marker, not data
		}
		if strings.ContainsAny(o.Key, "\n\r") {
			return nil, cli.Errorf(cli.ExitData, "key %q holds a line break: it cannot be sent to countpass", o.Key)
		}
		keys = append(keys, schedule.Key{Name: o.Key, Size: o.Size})
	}
	return keys, nil
}

// countKeys finds the count step's keys: the newest download manifest on the nodes says
// which keys the job has; each is pinned to a node holding its downloaded data, and keys no
// node holds are missing.
func (j *job) countKeys(nodes []*node) error {
	type found struct {
		m     *manifest.Manifest
		files []string
		err   error
	}
	got := make([]found, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			f := &got[i]
			var b []byte
			if b, f.err = readFile(n.conn, DataDir+"/"+manifest.Name); f.err == nil && len(b) > 0 {
				f.m, _ = manifest.Decode(b)
			}
			if f.err == nil {
				f.files, f.err = listFiles(n.conn, DataDir)
			}
		})
	}
	wg.Wait()
	var newest *manifest.Manifest
	holder := map[string]string{}
	for i, f := range got {
		if f.err != nil {
			return cli.Errorf(cli.ExitUnreachable, "%s: listing %s: %v", nodes[i].label, DataDir, f.err)
		}
		if f.m != nil && (newest == nil || f.m.Created.After(newest.Created)) {
			newest = f.m
		}
		for _, k := range f.files {
			if _, ok := holder[k]; !ok {
				holder[k] = nodes[i].id
			}
		}
	}
	if newest == nil {
		return cli.WithHint(cli.Errorf(cli.ExitData, "no download manifest in %s on any node", DataDir),
			"run `orchestrate download` first")
	}
	j.opts.Src, j.opts.Match = newest.Src, newest.Match
	var have []schedule.Key
	for _, k := range newest.Keys {
		sk := schedule.Key{Name: k.Key, Size: k.Size}
		j.keys = append(j.keys, sk)
		if holder[k.Key] == "" {
			j.missing = append(j.missing, sk)
		} else {
			have = append(have, sk)
		}
	}
	j.sched = schedule.New(have)
	for _, k := range have {
		j.sched.Pin(k.Name, holder[k.Name])
	}
	return nil
}
