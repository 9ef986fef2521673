package pricing

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func TestLatestPerZone(t *testing.T) {
	now := time.Now()
	sp := func(typ, zone, price, desc string, age time.Duration) types.SpotPrice {
		return types.SpotPrice{InstanceType: types.InstanceType(typ), AvailabilityZone: aws.String(zone), SpotPrice: aws.String(price),
			ProductDescription: types.RIProductDescription(desc), Timestamp: aws.Time(now.Add(-age))}
	}
	got := latestPerZone([]types.SpotPrice{
		sp("a.x", "z1", "0.500000", "Linux/UNIX", time.Hour),
		sp("a.x", "z1", "0.300000", "Linux/UNIX", time.Minute), // newer: wins
		sp("a.x", "z2", "0.200000", "Linux/UNIX (Amazon VPC)", time.Hour),
		sp("a.x", "z3", "0.100000", "Windows", time.Minute), // not Linux: ignored
		sp("a.x", "z4", "0.300000", "Linux/UNIX", time.Minute),
		sp("b.y", "z1", "1.5", "Linux/UNIX", 0),
	})
	var s []string
	for _, z := range got["a.x"] {
		s = append(s, z.Zone+"="+Price(z.Price))
	}
	if strings.Join(s, " ") != "z2=0.2 z1=0.3 z4=0.3" || len(got["b.y"]) != 1 {
		t.Fatalf("got %v", got)
	}
}

func TestOnDemandPrice(t *testing.T) {
	doc := `{"product":{"sku":"X"},"terms":{"OnDemand":{"X.JRTCKXETXF":{"priceDimensions":{"X.JRTCKXETXF.6YS6EN2CT7":{"unit":"Hrs","pricePerUnit":{"USD":"0.9040000000"}}}}}}}`
	if p, err := onDemandPrice(doc); err != nil || p != 0.904 {
		t.Fatalf("got %v %v", p, err)
	}
	if p, err := onDemandPrice(`{"terms":{}}`); err != nil || p != 0 {
		t.Fatalf("no terms: %v %v", p, err)
	}
	if _, err := onDemandPrice(`{`); err == nil {
		t.Fatal("bad JSON must fail")
	}
}

func TestWrite(t *testing.T) {
	quotes := []Quote{
		{Type: "i3en.2xlarge", Region: "us-east-1", OnDemand: 0.904,
			Spot: []ZonePrice{{"us-east-1c", 0.2712}, {"us-east-1a", 0.279}}},
		{Type: "t3.micro", Region: "us-east-1", Spot: []ZonePrice{{"us-east-1a", 0.0031}}},
		{Type: "x.big", Region: "us-east-1", OnDemand: 1},
		{Type: "y.big", Region: "us-east-1", OnDemand: 1, Spot: []ZonePrice{{"us-east-1a", 1.2}}},
	}
	var b strings.Builder
	if err := Write(&b, quotes, 12, false); err != nil {
		t.Fatal(err)
	}
	want := `i3en.2xlarge
  us-east-1c     0.2712
  us-east-1a     0.279
  on demand: 0.904, spot offers 70% savings
  12 instances: spot 3.2544/h (us-east-1c), on demand 10.848/h

t3.micro
  us-east-1a     0.0031
  on demand: unknown
  12 instances: spot 0.0372/h (us-east-1a)

x.big
  no spot price in us-east-1
  on demand: 1
  12 instances: on demand 12/h

y.big
  us-east-1a     1.2
  on demand: 1, spot costs 20% more
  12 instances: spot 14.4/h (us-east-1a), on demand 12/h
`
	if b.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	Write(&b, quotes[:2], 1, true)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"savings_percent":70`) || !strings.Contains(lines[0], `"on_demand_per_hour":0.904`) ||
		strings.Contains(lines[1], "savings_percent") || strings.Contains(lines[1], `"on_demand"`) {
		t.Fatalf("json:\n%s", b.String())
	}
}
