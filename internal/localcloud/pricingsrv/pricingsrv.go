// Package pricingsrv serves the AWS Price List Query API (GetProducts, AWS JSON 1.1) on a
// local address, with real on-demand Linux list prices for a handful of instance types, so
// the SDK's pricing client works unchanged against the local cloud.
package pricingsrv

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// OnDemand holds the us-east-1 on-demand list prices (Linux, shared tenancy, USD per hour).
var OnDemand = map[string]float64{
	"t3.micro":      0.0104,
	"t3.small":      0.0208,
	"t3.medium":     0.0416,
	"t3.large":      0.0832,
	"m5.large":      0.096,
	"m5.xlarge":     0.192,
	"m5.2xlarge":    0.384,
	"c5.large":      0.085,
	"c5.xlarge":     0.17,
	"c5d.large":     0.096,
	"r5.large":      0.126,
	"i3.large":      0.156,
	"i3.xlarge":     0.312,
	"i3en.large":    0.226,
	"i3en.xlarge":   0.452,
	"i3en.2xlarge":  0.904,
	"i3en.3xlarge":  1.356,
	"i3en.6xlarge":  2.712,
	"i3en.12xlarge": 5.424,
	"i3en.24xlarge": 10.848,
}

const (
	region   = "us-east-1"
	location = "US East (N. Virginia)"
	// The on-demand offer term code and price-dimension rate code are fixed strings in the
	// real price list.
	offerTerm = "JRTCKXETXF"
	rateCode  = "6YS6EN2CT7"
)

// Handler answers GetProducts; any other operation is an UnknownOperationException.
func Handler() http.Handler {
	return http.HandlerFunc(serve)
}

type filter struct {
	Type, Field, Value string
}

type request struct {
	ServiceCode string
	Filters     []filter
}

func serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if r.Header.Get("X-Amz-Target") != "AWSPriceListService.GetProducts" {
		fail(w, "UnknownOperationException", "only GetProducts is served here")
		return
	}
	var req request
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		fail(w, "InvalidParameterException", "bad request body: "+err.Error())
		return
	}
	list := []string{}
	if req.ServiceCode == "AmazonEC2" {
		list = products(req.Filters)
	}
	json.NewEncoder(w).Encode(map[string]any{"FormatVersion": "aws_v1", "PriceList": list})
}

func fail(w http.ResponseWriter, code, msg string) {
	w.Header().Set("X-Amzn-Errortype", code)
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]string{"__type": code, "Message": msg})
}

// products returns the price-list documents (each a JSON string, as the API sends them)
// whose attributes match every TERM_MATCH filter.
func products(filters []filter) []string {
	types := make([]string, 0, len(OnDemand))
	for t := range OnDemand {
		types = append(types, t)
	}
	sort.Strings(types)
	var out []string
	for _, t := range types {
		attrs := attributes(t)
		if !matches(attrs, filters) {
			continue
		}
		doc, _ := json.Marshal(product(t, attrs))
		out = append(out, string(doc))
	}
	return out
}

func attributes(instanceType string) map[string]string {
	return map[string]string{
		"servicecode":     "AmazonEC2",
		"instanceType":    instanceType,
		"instanceFamily":  "General purpose",
		"location":        location,
		"locationType":    "AWS Region",
		"regionCode":      region,
		"operatingSystem": "Linux",
		"tenancy":         "Shared",
		"preInstalledSw":  "NA",
		"licenseModel":    "No License required",
		"capacitystatus":  "Used",
		"operation":       "RunInstances",
		"usagetype":       "BoxUsage:" + instanceType,
		"marketoption":    "OnDemand",
	}
}

// matches compares like the real API: field names and values case-insensitively.
func matches(attrs map[string]string, filters []filter) bool {
	for _, f := range filters {
		found := false
		for k, v := range attrs {
			if strings.EqualFold(k, f.Field) && strings.EqualFold(v, f.Value) {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func product(instanceType string, attrs map[string]string) map[string]any {
	sku := skuOf(instanceType)
	term := sku + "." + offerTerm
	return map[string]any{
		"product": map[string]any{
			"productFamily": "Compute Instance",
			"attributes":    attrs,
			"sku":           sku,
		},
		"serviceCode":     "AmazonEC2",
		"version":         "20250101000000",
		"publicationDate": "2025-01-01T00:00:00Z",
		"terms": map[string]any{
			"OnDemand": map[string]any{
				term: map[string]any{
					"offerTermCode":  offerTerm,
					"sku":            sku,
					"effectiveDate":  "2025-01-01T00:00:00Z",
					"termAttributes": map[string]string{},
					"priceDimensions": map[string]any{
						term + "." + rateCode: map[string]any{
							"unit":         "Hrs",
							"endRange":     "Inf",
							"beginRange":   "0",
							"rateCode":     term + "." + rateCode,
							"appliesTo":    []string{},
							"description":  fmt.Sprintf("$%.4f per On Demand Linux %s Instance Hour", OnDemand[instanceType], instanceType),
							"pricePerUnit": map[string]string{"USD": fmt.Sprintf("%.10f", OnDemand[instanceType])},
						},
					},
				},
			},
		},
	}
}

// skuOf makes a stable 16-character SKU from the type name (real SKUs are opaque ids).
func skuOf(instanceType string) string {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(instanceType); i++ {
		h = (h ^ uint64(instanceType[i])) * 1099511628211
	}
	const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 16)
	for i := range b {
		b[i] = alphabet[h%32]
		h = h/32 ^ h<<59
	}
	return string(b)
}
