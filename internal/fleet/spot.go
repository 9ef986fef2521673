package fleet

import (
	"context"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"ec2kit/internal/awsconf"
)

// Interruption says how far EC2 has gone in taking a spot instance back, from its spot
// request's status: nothing, a notice (about two minutes before), or done.
type Interruption string

const (
	NotInterrupted Interruption = ""
	Notice         Interruption = "notice"      // marked for termination, stop or hibernation
	Interrupted    Interruption = "interrupted" // terminated, stopped or hibernated by EC2
)

// interruptionOf reads a spot request's status code.
func interruptionOf(code string) Interruption {
	switch {
	case strings.HasPrefix(code, "marked-for-"):
		return Notice
	case strings.HasPrefix(code, "instance-terminated-"), strings.HasPrefix(code, "instance-stopped-"),
		strings.HasPrefix(code, "instance-hibernated-"):
		if code == "instance-terminated-by-user" || code == "instance-stopped-by-user" {
			return NotInterrupted
		}
		return Interrupted
	}
	return NotInterrupted
}

// Interruptions fills in Interruption (and, when EC2 gave one, its message in
// InterruptionNote) for the spot instances among insts: one DescribeSpotInstanceRequests
// call per 200 requests, none when no instance has a spot request.
func (c *Client) Interruptions(ctx context.Context, insts []Instance) error {
	byRequest := map[string]*Instance{}
	var ids []string
	for i := range insts {
		if r := insts[i].SpotRequest; r != "" {
			byRequest[r] = &insts[i]
			ids = append(ids, r)
		}
	}
	// A filter rather than ids: a request that is gone (cancelled long ago) is no error.
	for _, chunk := range chunks(ids, 200) {
		p := ec2.NewDescribeSpotInstanceRequestsPaginator(c.EC2, &ec2.DescribeSpotInstanceRequestsInput{
			Filters: []types.Filter{{Name: aws.String("spot-instance-request-id"), Values: chunk}},
		})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return awsconf.Err("DescribeSpotInstanceRequests", err)
			}
			for _, r := range page.SpotInstanceRequests {
				in := byRequest[aws.ToString(r.SpotInstanceRequestId)]
				if in == nil || r.Status == nil {
					continue
				}
				if in.Interruption = interruptionOf(aws.ToString(r.Status.Code)); in.Interruption != NotInterrupted {
					in.InterruptionNote = aws.ToString(r.Status.Message)
				}
			}
		}
	}
	return nil
}
