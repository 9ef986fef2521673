package pricing

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"ec2kit/internal/cli"
)

// Options are spot-price's arguments.
type Options struct {
	Types []string
	Num   int // instances to price together (1: just the hourly price of one)
	JSON  bool
}

// OnDemandTimeout bounds the price-list lookups: when that API is unreachable the spot prices
// still print, after a warning, without waiting out every retry.
var OnDemandTimeout = 15 * time.Second

// Run is spot-price: quotes for every type on stdout, warnings on stderr.
func Run(ctx context.Context, o Options) error {
	if o.Num < 1 {
		return cli.Errorf(cli.ExitUsage, "--num must be at least 1")
	}
	c, err := NewClients(ctx)
	if err != nil {
		return err
	}
	quotes, err := c.Quotes(ctx, o.Types, os.Stderr)
	if err != nil {
		return err
	}
	return Write(os.Stdout, quotes, o.Num, o.JSON)
}

// Quotes prices every type: spot prices in one call, on-demand prices one call per type.
// A failing price list is a warning on warn, not an error.
func (c *Clients) Quotes(ctx context.Context, instanceTypes []string, warn io.Writer) ([]Quote, error) {
	if err := CheckTypes(ctx, c.EC2, instanceTypes); err != nil {
		return nil, err
	}
	spot, err := Spot(ctx, c.EC2, instanceTypes)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, OnDemandTimeout)
	defer cancel()
	var quotes []Quote
	priceList := true
	for _, t := range instanceTypes {
		q := Quote{Type: t, Region: c.Region, Spot: spot[t]}
		if priceList {
			if q.OnDemand, err = OnDemand(pctx, c.Pricing, c.Region, t); err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				fmt.Fprintf(warn, "spot-price: warning: no on-demand prices (the pricing API failed): %v\n", err)
				priceList = false
			} else if q.OnDemand == 0 {
				fmt.Fprintf(warn, "spot-price: warning: the price list has no on-demand Linux price for %s in %s\n", t, c.Region)
			}
		}
		if len(q.Spot) == 0 {
			fmt.Fprintf(warn, "spot-price: warning: no spot price for %s in %s (not offered as spot there?)\n", t, c.Region)
		}
		quotes = append(quotes, q)
	}
	return quotes, nil
}

// Savings is the percentage the cheapest spot zone saves over on-demand, rounded; ok is
// false when either price is unknown.
func (q Quote) Savings() (pct int, ok bool) {
	if len(q.Spot) == 0 || q.OnDemand <= 0 {
		return 0, false
	}
	return int(math.Round(100 * (1 - q.Spot[0].Price/q.OnDemand))), true
}

// Price formats a USD amount without float noise or trailing zeros (0.904, 0.2712).
func Price(p float64) string {
	return strconv.FormatFloat(round(p), 'f', -1, 64)
}

// jsonQuote is a quote as spot-price --json prints it.
type jsonQuote struct {
	Quote
	Savings      *int     `json:"savings_percent,omitempty"`
	Num          int      `json:"num"`
	SpotHourly   *float64 `json:"spot_per_hour,omitempty"`
	OnDemandHour *float64 `json:"on_demand_per_hour,omitempty"`
}

// Write prints quotes: per type, the zones lowest first, then the on-demand price and the
// saving, and with num > 1 what num instances cost per hour. JSON: one object per type.
func Write(w io.Writer, quotes []Quote, num int, asJSON bool) error {
	var b strings.Builder
	for i, q := range quotes {
		pct, ok := q.Savings()
		if asJSON {
			j := jsonQuote{Quote: q, Num: num}
			if j.Spot == nil {
				j.Spot = []ZonePrice{}
			}
			if ok {
				j.Savings = &pct
			}
			if len(q.Spot) > 0 {
				j.SpotHourly = ptr(round(q.Spot[0].Price * float64(num)))
			}
			if q.OnDemand > 0 {
				j.OnDemandHour = ptr(round(q.OnDemand * float64(num)))
			}
			line, _ := json.Marshal(j)
			b.Write(append(line, '\n'))
			continue
		}
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "%s\n", q.Type)
		for _, z := range q.Spot {
			fmt.Fprintf(&b, "  %-14s %s\n", z.Zone, Price(z.Price))
		}
		if len(q.Spot) == 0 {
			fmt.Fprintf(&b, "  no spot price in %s\n", q.Region)
		}
		fmt.Fprintf(&b, "  %s\n", summary(q, pct, ok))
		if num > 1 {
			var parts []string
			if len(q.Spot) > 0 {
				parts = append(parts, fmt.Sprintf("spot %s/h (%s)", Price(q.Spot[0].Price*float64(num)), q.Spot[0].Zone))
			}
			if q.OnDemand > 0 {
				parts = append(parts, fmt.Sprintf("on demand %s/h", Price(q.OnDemand*float64(num))))
			}
			if len(parts) > 0 {
				fmt.Fprintf(&b, "  %d instances: %s\n", num, strings.Join(parts, ", "))
			}
		}
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return cli.Errorf(cli.ExitLocal, "writing: %v", err)
	}
	return nil
}

func summary(q Quote, pct int, ok bool) string {
	switch {
	case q.OnDemand <= 0:
		return "on demand: unknown"
	case !ok:
		return "on demand: " + Price(q.OnDemand)
	case pct < 0:
		return fmt.Sprintf("on demand: %s, spot costs %d%% more", Price(q.OnDemand), -pct)
	}
	return fmt.Sprintf("on demand: %s, spot offers %d%% savings", Price(q.OnDemand), pct)
}

// round drops float noise below a millionth of a dollar (12 × 0.0104 is 0.1248, not 0.12480000000000001).
func round(p float64) float64 { return math.Round(p*1e6) / 1e6 }

func ptr[T any](v T) *T { return &v }
