// Package awsconf loads the AWS configuration every command uses: the SDK's standard chain
// (profiles, environment, SSO, instance role), endpoints from AWS_ENDPOINT_URL*, retries with
// backoff on throttling, and path-style S3 when an S3 endpoint is configured (third-party S3
// servers rarely serve virtual-hosted buckets on a bare address).
package awsconf

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

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
		return aws.Config{}, cli.WithHint(cli.Errorf(cli.ExitAWS, "no AWS region configured"),
			"set AWS_REGION (for example us-east-1) or a region in ~/.aws/config")
	}
	return cfg, nil
}

// S3 returns an S3 client; path-style addressing when a custom S3 endpoint is set.
func S3(cfg aws.Config) *s3.Client {
	custom := os.Getenv("AWS_ENDPOINT_URL_S3") != "" || os.Getenv("AWS_ENDPOINT_URL") != ""
	return s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = custom })
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
