// Package awsconf loads the AWS configuration every command uses: the SDK's standard chain
// (profiles, environment, SSO, instance role), the region from instance metadata on EC2 when
// none is configured, endpoints from AWS_ENDPOINT_URL*, retries with backoff on throttling,
// and path-style S3 when an S3 endpoint is configured (third-party S3 servers rarely serve
// virtual-hosted buckets on a bare address).
package awsconf

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"ec2kit/internal/cli"
)

// Load returns the configuration, or an ExitAWS error that says what to do.
func Load(ctx context.Context) (aws.Config, error) {
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRetryer(func() aws.Retryer {
			// Fleet-wide calls come in bursts; ride out throttling instead of failing.
			return retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = 8 })
		}))
	if err != nil {
		return aws.Config{}, cli.WithHint(cli.Errorf(cli.ExitAWS, "loading AWS configuration: %v", err),
			"check AWS_PROFILE / ~/.aws/config, or run `aws configure`")
	}
	if cfg.Region == "" {
		// An EC2 instance has no region in its environment: its metadata service knows it.
		// (Asked here rather than by config.WithEC2IMDSRegion, whose failure off EC2 would
		// hide the plain "no region" below.)
		// Bounded: off EC2 the SDK's retries would make that wait seconds.
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if r, err := imds.NewFromConfig(cfg).GetRegion(rctx, nil); err == nil {
			cfg.Region = r.Region
		}
		cancel()
	}
	if cfg.Region == "" {
		return aws.Config{}, cli.WithHint(cli.Errorf(cli.ExitAWS, "no AWS region configured"),
			"set AWS_REGION (for example us-east-1) or a region in ~/.aws/config (on EC2 the instance metadata gives it)")
	}
	return cfg, nil
}

// S3 returns an S3 client; path-style addressing when a custom S3 endpoint is set.
func S3(cfg aws.Config, opts ...func(*s3.Options)) *s3.Client {
	custom := os.Getenv("AWS_ENDPOINT_URL_S3") != "" || os.Getenv("AWS_ENDPOINT_URL") != ""
	return s3.NewFromConfig(cfg, append([]func(*s3.Options){func(o *s3.Options) { o.UsePathStyle = custom }}, opts...)...)
}

// ErrNoCredentials: S3 refused a request that went unsigned, because this process has no
// AWS credentials (an instance launched without an instance profile).
var ErrNoCredentials = errors.New("this node has no AWS credentials: launch with a profile that can read the bucket (ec2-new --profile)")

// S3Reader returns an S3 client for reading objects. With no AWS credentials at all it reads
// unsigned, as `aws s3 --no-sign-request` does: a public bucket works, and a refusal is
// ErrNoCredentials.
func S3Reader(ctx context.Context, cfg aws.Config) *s3.Client {
	if cfg.Credentials != nil {
		if _, err := cfg.Credentials.Retrieve(ctx); err == nil {
			return S3(cfg)
		}
	}
	cfg.Credentials = aws.AnonymousCredentials{}
	return S3(cfg, func(o *s3.Options) { o.APIOptions = append(o.APIOptions, markUnsignedRefusals) })
}

// markUnsignedRefusals turns S3's 403 to an unsigned request into a noCredentialsError.
func markUnsignedRefusals(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("ec2kitUnsignedRefusal",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleInitialize(ctx, in)
			var re *awshttp.ResponseError
			if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusForbidden {
				err = &noCredentialsError{err}
			}
			return out, md, err
		}), middleware.Before)
}

// noCredentialsError is S3's refusal of an unsigned request. It is an API error whose message
// says what to do, so that whoever reports S3 errors by code and message shows the remedy.
type noCredentialsError struct{ err error }

func (e *noCredentialsError) Error() string {
	return ErrNoCredentials.Error() + " (" + e.err.Error() + ")"
}
func (e *noCredentialsError) Unwrap() []error { return []error{ErrNoCredentials, e.err} }

func (e *noCredentialsError) ErrorCode() string {
	var ae smithy.APIError
	if errors.As(e.err, &ae) {
		return ae.ErrorCode()
	}
	return "AccessDenied"
}

func (e *noCredentialsError) ErrorMessage() string          { return ErrNoCredentials.Error() }
func (e *noCredentialsError) ErrorFault() smithy.ErrorFault { return smithy.FaultClient }

// BucketRegion returns the region of a bucket, for clients elsewhere (the nodes) to read it
// from: S3 names it in HeadBucket's answer, even when refusing or redirecting.
func BucketRegion(ctx context.Context, c *s3.Client, bucket string) (string, error) {
	out, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &bucket})
	if err == nil && aws.ToString(out.BucketRegion) != "" {
		return aws.ToString(out.BucketRegion), nil
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		if r := re.Response.Header.Get("X-Amz-Bucket-Region"); r != "" {
			return r, nil
		}
	}
	if err != nil {
		return "", err
	}
	loc, err := c.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: &bucket})
	if err != nil {
		return "", err
	}
	if loc.LocationConstraint == "" { // S3's way of saying us-east-1
		return "us-east-1", nil
	}
	return string(loc.LocationConstraint), nil
}

// Err wraps an AWS API error as an ExitAWS error naming the operation, with advice for the
// common causes (expired credentials, missing permissions).
func Err(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return cli.Errorf(cli.ExitInterrupted, "%s: interrupted", op)
	}
	e := cli.Errorf(cli.ExitAWS, "%s: %w", op, err)
	if errors.Is(err, ErrNoCredentials) {
		return e
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "ExpiredToken", "ExpiredTokenException", "RequestExpired", "InvalidClientTokenId",
			"AuthFailure", "UnrecognizedClientException", "InvalidAccessKeyId", "SignatureDoesNotMatch":
			return cli.WithHint(e, "your AWS credentials are invalid or expired: refresh them (aws sso login, or new keys)")
		case "UnauthorizedOperation", "AccessDenied", "AccessDeniedException":
			return cli.WithHint(e, fmt.Sprintf("your AWS identity may not call %s: check its IAM policy", op))
		}
	}
	return e
}
