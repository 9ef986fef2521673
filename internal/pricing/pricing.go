// Package pricing answers "what does this instance type cost here": the current spot price
// in every availability zone and the on-demand list price, and the saving between them.
package pricing

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/pricing"
	"github.com/aws/smithy-go"

	"ec2kit/internal/awsconf"
	"ec2kit/internal/cli"
)

// ZonePrice is the current spot price in one availability zone, in USD per hour.
type ZonePrice struct {
	Zone  string  `json:"zone"`
	Price float64 `json:"price"`
}

// Quote is what one instance type costs in a region.
type Quote struct {
	Type     string      `json:"type"`
	Region   string      `json:"region"`
	Spot     []ZonePrice `json:"spot"`                // lowest first
	OnDemand float64     `json:"on_demand,omitempty"` // 0: unknown (pricing API unreachable)
}

// Clients are the two services a quote needs. The price list is served from a few regions
// only (us-east-1 among them) whatever region the instances are in.
type Clients struct {
	EC2     *ec2.Client
	Pricing *pricing.Client
	Region  string
}

// NewClients loads the AWS configuration.
func NewClients(ctx context.Context) (*Clients, error) {
	cfg, err := awsconf.Load(ctx)
	if err != nil {
		return nil, err
	}
	return &Clients{
		EC2: ec2.NewFromConfig(cfg),
		Pricing: pricing.NewFromConfig(cfg, func(o *pricing.Options) {
			o.Region = "us-east-1"
			// The on-demand price is optional: give up quickly rather than retry for long.
			o.RetryMaxAttempts = 2
		}),
		Region: cfg.Region,
	}, nil
}

// CheckTypes makes sure EC2 knows every instance type (one call), so a typo is a usage error
// naming it rather than an empty price list.
func CheckTypes(ctx context.Context, c *ec2.Client, instanceTypes []string) error {
	for _, t := range instanceTypes {
		if !typeRE(t) {
			return cli.Errorf(cli.ExitUsage, "%q is not an instance type (they look like t3.micro or i3en.2xlarge)", t)
		}
	}
	its := make([]types.InstanceType, len(instanceTypes))
	for i, t := range instanceTypes {
		its[i] = types.InstanceType(t)
	}
	_, err := c.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: its})
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "InvalidInstanceType" {
		return cli.Errorf(cli.ExitUsage, "unknown instance type: %s", ae.ErrorMessage())
	}
	return awsconf.Err("DescribeInstanceTypes", err)
}

// typeRE accepts family.size names.
func typeRE(t string) bool {
	fam, size, ok := strings.Cut(t, ".")
	return ok && fam != "" && size != "" && !strings.ContainsAny(t, " /\t")
}

// Spot returns the current Linux spot price per zone for each type, lowest first.
func Spot(ctx context.Context, c *ec2.Client, instanceTypes []string) (map[string][]ZonePrice, error) {
	its := make([]types.InstanceType, len(instanceTypes))
	for i, t := range instanceTypes {
		its[i] = types.InstanceType(t)
	}
	// StartTime now asks for the price in effect now in each zone, not the history.
	p := ec2.NewDescribeSpotPriceHistoryPaginator(c, &ec2.DescribeSpotPriceHistoryInput{
		InstanceTypes:       its,
		ProductDescriptions: []string{"Linux/UNIX", "Linux/UNIX (Amazon VPC)"},
		StartTime:           aws.Time(time.Now()),
	})
	var hist []types.SpotPrice
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, awsconf.Err("DescribeSpotPriceHistory", err)
		}
		hist = append(hist, page.SpotPriceHistory...)
	}
	return latestPerZone(hist), nil
}

// latestPerZone keeps the newest Linux price of each type and zone, sorted lowest first
// (then by zone).
func latestPerZone(hist []types.SpotPrice) map[string][]ZonePrice {
	type key struct{ typ, zone string }
	newest := map[key]types.SpotPrice{}
	for _, h := range hist {
		if !strings.HasPrefix(string(h.ProductDescription), "Linux/UNIX") {
			continue
		}
		k := key{string(h.InstanceType), aws.ToString(h.AvailabilityZone)}
		if old, ok := newest[k]; !ok || aws.ToTime(h.Timestamp).After(aws.ToTime(old.Timestamp)) {
			newest[k] = h
		}
	}
	out := map[string][]ZonePrice{}
	for k, h := range newest {
		price, err := strconv.ParseFloat(aws.ToString(h.SpotPrice), 64)
		if err != nil {
			continue
		}
		out[k.typ] = append(out[k.typ], ZonePrice{Zone: k.zone, Price: price})
	}
	for _, zs := range out {
		slices.SortFunc(zs, func(a, b ZonePrice) int {
			if a.Price != b.Price {
				if a.Price < b.Price {
					return -1
				}
				return 1
			}
			return strings.Compare(a.Zone, b.Zone)
		})
	}
	return out
}
