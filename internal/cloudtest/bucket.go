package cloudtest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"ec2kit/internal/awsconf"
)

// Bucket creates a uniquely named bucket (name starting with prefix) on the local cloud's
// S3, holding objs, and removes it when the test ends. It skips t unless the cloud is up.
func Bucket(t testing.TB, prefix string, objs map[string][]byte) (*s3.Client, string) {
	t.Helper()
	Require(t)
	ctx := context.Background()
	cfg, err := awsconf.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := awsconf.S3(cfg)
	bucket := fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano(), rand.IntN(1000))
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for k := range objs {
			c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: &k})
		}
		c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &bucket})
	})
	for k, b := range objs {
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &k, Body: bytes.NewReader(b)}); err != nil {
			t.Fatal(err)
		}
	}
	return c, bucket
}
