package awsconf_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"ec2kit/internal/awsconf"
	"ec2kit/internal/cloudtest"
	"ec2kit/internal/localcloud/imds"
)

// onNode makes the environment an EC2 instance's: no region, no credentials, no AWS files,
// and a metadata service (on loopback) that knows the instance, with role credentials when
// role is not empty. It returns that service.
func onNode(t *testing.T, zone, role string) *imds.Server {
	t.Helper()
	in := imds.Instance{ID: "i-1", IP: "127.0.0.1", Zone: zone}
	if role != "" {
		in.ProfileARN, in.Role = "arn:aws:iam::123456789012:instance-profile/"+role, role
	}
	md := &imds.Server{
		Lookup:      func(context.Context, string) (imds.Instance, bool, error) { return in, true, nil },
		Credentials: imds.Credentials{AccessKeyID: os.Getenv("AWS_ACCESS_KEY_ID"), SecretAccessKey: os.Getenv("AWS_SECRET_ACCESS_KEY")},
	}
	srv := httptest.NewServer(md)
	t.Cleanup(srv.Close)
	none := filepath.Join(t.TempDir(), "none")
	for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
		"AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", none)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", none)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "false")
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", srv.URL)
	return md
}

// On a node, the region and the role's credentials come from the instance metadata.
func TestLoadOnNode(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKNODE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	onNode(t, "eu-west-3c", "node")
	cfg, err := awsconf.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Region != "eu-west-3" {
		t.Errorf("region %q, want eu-west-3 (from the metadata)", cfg.Region)
	}
	creds, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil || creds.AccessKeyID != "AKNODE" || creds.Source != "EC2RoleProvider" {
		t.Errorf("credentials: %+v, %v", creds, err)
	}
}

// Off EC2, with no region configured, the metadata service cannot be reached: the error is
// the plain missing region, with its hint.
func TestLoadNoRegion(t *testing.T) {
	onNode(t, "us-east-1a", "")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://"+l.Addr().String())
	l.Close() // refuses from now on
	_, err = awsconf.Load(context.Background())
	if err == nil || err.Error() != "no AWS region configured" {
		t.Fatalf("got %v, want the missing region", err)
	}
}

// fakeS3 answers GETs: signed requests always, unsigned ones only in bucket "pub".
func fakeS3(t *testing.T) (url string, signed *bool) {
	signed = new(bool)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*signed = r.Header.Get("Authorization") != ""
		if !*signed && !strings.HasPrefix(r.URL.Path, "/pub/") {
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`)
			return
		}
		io.WriteString(w, "a,b,c,1\n")
	}))
	t.Cleanup(srv.Close)
	return srv.URL, signed
}

func get(ctx context.Context, c *s3.Client, bucket string) error {
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("k")})
	if err == nil {
		out.Body.Close()
	}
	return err
}

// With no credentials, reads go unsigned: a public bucket reads, a private one fails with
// ErrNoCredentials, also in the message of the API error (what error reports show).
func TestS3ReaderWithoutCredentials(t *testing.T) {
	url, signed := fakeS3(t)
	onNode(t, "us-east-1a", "")
	t.Setenv("AWS_ENDPOINT_URL_S3", url)
	ctx := context.Background()
	cfg, err := awsconf.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := awsconf.S3Reader(ctx, cfg)
	if err := get(ctx, c, "pub"); err != nil || *signed {
		t.Fatalf("public bucket: %v (signed %v)", err, *signed)
	}
	err = get(ctx, c, "priv")
	var ae smithy.APIError
	if !errors.Is(err, awsconf.ErrNoCredentials) || !errors.As(err, &ae) || ae.ErrorMessage() != awsconf.ErrNoCredentials.Error() {
		t.Fatalf("private bucket: %v", err)
	}
	if e := awsconf.Err("reading", err); !strings.Contains(e.Error(), "ec2-new --profile") {
		t.Errorf("Err: %v", e)
	}
}

// With role credentials, reads are signed and a refusal is not blamed on missing credentials.
func TestS3ReaderWithRole(t *testing.T) {
	url, signed := fakeS3(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKNODE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	onNode(t, "us-east-1a", "node")
	t.Setenv("AWS_ENDPOINT_URL_S3", url)
	ctx := context.Background()
	cfg, err := awsconf.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := get(ctx, awsconf.S3Reader(ctx, cfg), "priv"); err != nil || !*signed {
		t.Fatalf("signed read: %v (signed %v)", err, *signed)
	}
}

// Against the local cloud's S3: unsigned reads reach a bucket made public by its policy and
// are refused by a private one; the bucket's region is found.
func TestS3ReaderOnCloud(t *testing.T) {
	admin, priv := cloudtest.Bucket(t, "awsconf-priv", map[string][]byte{"k": []byte("x")})
	_, pub := cloudtest.Bucket(t, "awsconf-pub", map[string][]byte{"k": []byte("x")})
	ctx := context.Background()
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::` + pub + `/*"]}]}`
	if _, err := admin.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &pub, Policy: &policy}); err != nil {
		t.Fatal(err)
	}
	if r, err := awsconf.BucketRegion(ctx, admin, priv); err != nil || r != "us-east-1" {
		t.Errorf("BucketRegion: %q, %v", r, err)
	}
	onNode(t, "us-east-1a", "")
	cfg, err := awsconf.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := awsconf.S3Reader(ctx, cfg)
	if err := get(ctx, c, pub); err != nil {
		t.Errorf("public bucket, unsigned: %v", err)
	}
	if err := get(ctx, c, priv); !errors.Is(err, awsconf.ErrNoCredentials) {
		t.Errorf("private bucket, unsigned: %v", err)
	}
}
