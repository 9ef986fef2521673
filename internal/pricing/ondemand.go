package pricing

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/pricing"
	"github.com/aws/aws-sdk-go-v2/service/pricing/types"

	"ec2kit/internal/awsconf"
)

// locations maps region codes to the location names the price list uses.
var locations = map[string]string{
	"us-east-1":      "US East (N. Virginia)",
	"us-east-2":      "US East (Ohio)",
	"us-west-1":      "US West (N. California)",
	"us-west-2":      "US West (Oregon)",
	"ca-central-1":   "Canada (Central)",
	"ca-west-1":      "Canada West (Calgary)",
	"sa-east-1":      "South America (Sao Paulo)",
	"eu-west-1":      "EU (Ireland)",
	"eu-west-2":      "EU (London)",
	"eu-west-3":      "EU (Paris)",
	"eu-central-1":   "EU (Frankfurt)",
	"eu-central-2":   "EU (Zurich)",
	"eu-north-1":     "EU (Stockholm)",
	"eu-south-1":     "EU (Milan)",
	"eu-south-2":     "EU (Spain)",
	"ap-east-1":      "Asia Pacific (Hong Kong)",
	"ap-south-1":     "Asia Pacific (Mumbai)",
	"ap-south-2":     "Asia Pacific (Hyderabad)",
	"ap-northeast-1": "Asia Pacific (Tokyo)",
	"ap-northeast-2": "Asia Pacific (Seoul)",
	"ap-northeast-3": "Asia Pacific (Osaka)",
	"ap-southeast-1": "Asia Pacific (Singapore)",
	"ap-southeast-2": "Asia Pacific (Sydney)",
	"ap-southeast-3": "Asia Pacific (Jakarta)",
	"ap-southeast-4": "Asia Pacific (Melbourne)",
	"me-south-1":     "Middle East (Bahrain)",
	"me-central-1":   "Middle East (UAE)",
	"il-central-1":   "Israel (Tel Aviv)",
	"af-south-1":     "Africa (Cape Town)",
}

// regionFilter selects the region by location name, or by region code for a region the map
// does not know yet (newer price list entries carry both).
func regionFilter(region string) types.Filter {
	if loc, ok := locations[region]; ok {
		return termMatch("location", loc)
	}
	return termMatch("regionCode", region)
}

func termMatch(field, value string) types.Filter {
	return types.Filter{Type: types.FilterTypeTermMatch, Field: aws.String(field), Value: aws.String(value)}
}

// OnDemand returns the on-demand Linux list price (USD per hour, shared tenancy) of an
// instance type in a region; 0 when the price list has no such product.
func OnDemand(ctx context.Context, c *pricing.Client, region, instanceType string) (float64, error) {
	out, err := c.GetProducts(ctx, &pricing.GetProductsInput{
		ServiceCode: aws.String("AmazonEC2"),
		Filters: []types.Filter{
			termMatch("instanceType", instanceType),
			regionFilter(region),
			termMatch("operatingSystem", "Linux"),
			termMatch("tenancy", "Shared"),
			termMatch("preInstalledSw", "NA"),
			termMatch("capacitystatus", "Used"),
			termMatch("licenseModel", "No License required"),
		},
		MaxResults: aws.Int32(10),
	})
	if err != nil {
		return 0, awsconf.Err("pricing GetProducts", err)
	}
	for _, doc := range out.PriceList {
		if p, err := onDemandPrice(doc); err != nil {
			return 0, err
		} else if p > 0 {
			return p, nil
		}
	}
	return 0, nil
}

// product is the part of a price-list document that holds on-demand prices.
type product struct {
	Terms struct {
		OnDemand map[string]struct {
			PriceDimensions map[string]struct {
				Unit         string            `json:"unit"`
				PricePerUnit map[string]string `json:"pricePerUnit"`
			} `json:"priceDimensions"`
		} `json:"OnDemand"`
	} `json:"terms"`
}

// onDemandPrice reads the hourly USD price out of one price-list document.
func onDemandPrice(doc string) (float64, error) {
	var p product
	if err := json.Unmarshal([]byte(doc), &p); err != nil {
		return 0, fmt.Errorf("pricing: unreadable price list entry: %v", err)
	}
	for _, term := range p.Terms.OnDemand {
		for _, dim := range term.PriceDimensions {
			if usd, ok := dim.PricePerUnit["USD"]; ok && (dim.Unit == "Hrs" || dim.Unit == "") {
				if v, err := strconv.ParseFloat(usd, 64); err == nil && v > 0 {
					return v, nil
				}
			}
		}
	}
	return 0, nil
}
