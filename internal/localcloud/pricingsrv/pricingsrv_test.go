package pricingsrv

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/pricing"
	"github.com/aws/aws-sdk-go-v2/service/pricing/types"
)

// The SDK's own client must parse what we serve, and find the documented price.
func TestGetProductsWithSDK(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	c := pricing.New(pricing.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("k", "s", ""),
	})
	tm := func(f, v string) types.Filter {
		return types.Filter{Type: types.FilterTypeTermMatch, Field: aws.String(f), Value: aws.String(v)}
	}
	out, err := c.GetProducts(context.Background(), &pricing.GetProductsInput{
		ServiceCode: aws.String("AmazonEC2"),
		Filters: []types.Filter{tm("instanceType", "i3en.2xlarge"), tm("location", "US East (N. Virginia)"),
			tm("operatingSystem", "Linux"), tm("tenancy", "Shared"), tm("preInstalledSw", "NA"), tm("capacitystatus", "Used")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.PriceList) != 1 {
		t.Fatalf("want 1 product, got %d", len(out.PriceList))
	}
	var doc struct {
		Terms struct {
			OnDemand map[string]struct {
				PriceDimensions map[string]struct {
					PricePerUnit map[string]string
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(out.PriceList[0]), &doc); err != nil {
		t.Fatal(err)
	}
	for _, term := range doc.Terms.OnDemand {
		for _, d := range term.PriceDimensions {
			if d.PricePerUnit["USD"] != "0.9040000000" {
				t.Fatalf("price %q", d.PricePerUnit["USD"])
			}
			return
		}
	}
	t.Fatal("no price dimension")
}

func TestFilters(t *testing.T) {
	if n := len(products([]filter{{Field: "regionCode", Value: "eu-west-1"}})); n != 0 {
		t.Fatalf("other region: %d products", n)
	}
	if n := len(products(nil)); n != len(OnDemand) {
		t.Fatalf("no filter: %d products", n)
	}
}
