package pricing

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Use is one instance's time to be priced.
type Use struct {
	Type, Zone string
	Spot       bool
	For        time.Duration
}

// Cost is what a set of instances cost over their times, and where the prices came from.
type Cost struct {
	USD     float64
	Hours   float64  // instance-hours priced
	Sources []string // where the prices came from
	Unknown []string // why some instance could not be priced; the cost then is unknown
}

// String is the cost as the commands say it: "$0.0123 (0.05 instance-hours at ...)", or
// why it is unknown.
func (c Cost) String() string {
	if len(c.Unknown) > 0 {
		return "cost unknown: " + strings.Join(c.Unknown, "; ")
	}
	usage := fmt.Sprintf("%.1f instance-seconds", c.Hours*3600)
	if c.Hours >= 1 {
		usage = fmt.Sprintf("%.2f instance-hours", c.Hours)
	}
	return fmt.Sprintf("cost %s (%s at %s)", dollars(c.USD), usage, strings.Join(c.Sources, " and "))
}

// dollars shows an amount with its cents, or with two significant digits below a cent (a
// minute of a small fleet costs a fraction of one).
func dollars(usd float64) string {
	if usd >= 0.01 || usd <= 0 {
		return fmt.Sprintf("$%.2f", usd)
	}
	return fmt.Sprintf("$%.*f", int(math.Ceil(-math.Log10(usd)))+1, usd)
}

// CostOf prices every use: a spot instance at the spot price in force in its zone now (EC2
// bills spot at the price of the moment, which moves slowly), an on-demand one at its list
// price. It never fails: what cannot be priced is named in Unknown.
func (c *Clients) CostOf(ctx context.Context, uses []Use) Cost {
	var cost Cost
	var spotTypes []string
	for _, u := range uses {
		if u.Spot && !slices.Contains(spotTypes, u.Type) {
			spotTypes = append(spotTypes, u.Type)
		}
	}
	var spot map[string][]ZonePrice
	if len(spotTypes) > 0 {
		var err error
		if spot, err = Spot(ctx, c.EC2, spotTypes); err != nil {
			return Cost{Unknown: []string{err.Error()}}
		}
		cost.Sources = append(cost.Sources, "the spot prices in force (DescribeSpotPriceHistory)")
	}
	onDemand := map[string]float64{}
	listed := false
	for _, u := range uses {
		var rate float64
		if u.Spot {
			for _, zp := range spot[u.Type] {
				if zp.Zone == u.Zone {
					rate = zp.Price
				}
			}
			if rate == 0 {
				cost.Unknown = append(cost.Unknown, fmt.Sprintf("no spot price for %s in %s", u.Type, u.Zone))
				continue
			}
		} else {
			p, seen := onDemand[u.Type]
			if !seen {
				var err error
				if p, err = OnDemand(ctx, c.Pricing, c.Region, u.Type); err != nil {
					cost.Unknown = append(cost.Unknown, err.Error())
					continue
				}
				onDemand[u.Type] = p
			}
			if p == 0 {
				cost.Unknown = append(cost.Unknown, fmt.Sprintf("no on-demand price for %s in %s", u.Type, c.Region))
				continue
			}
			if !listed {
				cost.Sources, listed = append(cost.Sources, "on-demand list prices (AWS Price List)"), true
			}
			rate = p
		}
		h := u.For.Hours()
		cost.Hours += h
		cost.USD += rate * h
	}
	slices.Sort(cost.Unknown)
	cost.Unknown = slices.Compact(cost.Unknown)
	return cost
}

// Of prices the uses with a fresh configuration, within a few seconds: the price list must
// not hold up a command's answer.
func Of(ctx context.Context, uses []Use) Cost {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := NewClients(ctx)
	if err != nil {
		return Cost{Unknown: []string{err.Error()}}
	}
	return c.CostOf(ctx, uses)
}
