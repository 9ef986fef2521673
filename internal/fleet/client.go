package fleet

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"ec2kit/internal/awsconf"
)

// Client is an EC2 client plus the configuration it came from (other services, the region).
type Client struct {
	EC2    *ec2.Client
	Config aws.Config
}

// New loads the AWS configuration (standard chain, retries) and returns a client.
func New(ctx context.Context) (*Client, error) {
	cfg, err := awsconf.Load(ctx)
	if err != nil {
		return nil, err
	}
	return FromConfig(cfg), nil
}

// FromConfig wraps an existing configuration (tests add middleware to it).
func FromConfig(cfg aws.Config) *Client {
	return &Client{EC2: ec2.NewFromConfig(cfg), Config: cfg}
}
