// Package taxigen generates CSV shaped like the NYC TLC yellow trip records (three header
// generations, ~150-byte rows, 18-19 fields, a realistic passenger_count mix), for tests,
// benchmarks and demos. The output is a pure function of the seed.
package taxigen

import (
	"io"
	"math/rand/v2"
	"strconv"
	"time"
)

// Era selects a header generation of the real data set.
type Era int

const (
	Era2009 Era = iota // vendor_name,Trip_Pickup_DateTime,…,Passenger_Count,…
	Era2010            // vendor_id,pickup_datetime,…,passenger_count,… (CRLF, blank 2nd line)
	Era2015            // VendorID,tpep_pickup_datetime,…,passenger_count,…
)

// Header returns the era's header line (without line end).
func (e Era) Header() string {
	switch e {
	case Era2009:
		return "vendor_name,Trip_Pickup_DateTime,Trip_Dropoff_DateTime,Passenger_Count,Trip_Distance,Start_Lon,Start_Lat,Rate_Code,store_and_forward,End_Lon,End_Lat,Payment_Type,Fare_Amt,surcharge,mta_tax,Tip_Amt,Tolls_Amt,Total_Amt"
	case Era2010:
		return "vendor_id,pickup_datetime,dropoff_datetime,passenger_count,trip_distance,pickup_longitude,pickup_latitude,rate_code,store_and_fwd_flag,dropoff_longitude,dropoff_latitude,payment_type,fare_amount,surcharge,mta_tax,tip_amount,tolls_amount,total_amount"
	default:
		return "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,pickup_longitude,pickup_latitude,RatecodeID,store_and_fwd_flag,dropoff_longitude,dropoff_latitude,payment_type,fare_amount,extra,mta_tax,tip_amount,tolls_amount,improvement_surcharge,total_amount"
	}
}

// passengers is the cumulative mix of passenger_count values, per 100000 rows, close to the
// published totals of the real data set ("" is an empty field).
var passengers = []struct {
	key string
	cum int
}{
	{"1", 69748}, {"2", 84448}, {"5", 90768}, {"3", 95088}, {"6", 97458}, {"4", 99548},
	{"0", 99968}, {"", 99997}, {"7", 99999}, {"8", 100000},
}

// Gen generates rows of one era.
type Gen struct {
	Era Era
	rng *rand.Rand
	t   time.Time
}

// New returns a generator for era seeded with seed.
func New(era Era, seed uint64) *Gen {
	return &Gen{Era: era, rng: rand.New(rand.NewPCG(seed, 0x7a41)),
		t: time.Date(2009+int(era)*3, 1, 1, 0, 0, 0, 0, time.UTC)}
}

// Passengers returns the next passenger_count key of the mix.
func (g *Gen) Passengers() string {
	r := g.rng.IntN(100000)
	for _, p := range passengers {
		if r < p.cum {
			return p.key
		}
	}
	return "1"
}

// AppendRow appends one row (with its line end) to b.
func (g *Gen) AppendRow(b []byte) []byte {
	r := g.rng
	g.t = g.t.Add(time.Duration(r.IntN(3000)) * time.Millisecond)
	const layout = "2006-01-02 15:04:05"
	switch g.Era {
	case Era2009:
		b = append(b, [...]string{"VTS", "CMT", "DDS"}[r.IntN(3)]...)
	case Era2010:
		b = append(b, [...]string{"VTS", "CMT"}[r.IntN(2)]...)
	default:
		b = strconv.AppendInt(b, int64(1+r.IntN(2)), 10)
	}
	b = append(b, ',')
	b = g.t.AppendFormat(b, layout)
	b = append(b, ',')
	b = g.t.Add(time.Duration(60+r.IntN(3000))*time.Second).AppendFormat(b, layout)
	b = append(b, ',')
	b = append(b, g.Passengers()...)
	b = append(b, ',')
	f := func(v float64, prec int) {
		b = strconv.AppendFloat(b, v, 'f', prec, 64)
		b = append(b, ',')
	}
	f(r.Float64()*12, 2)
	f(-74.05+r.Float64()*0.2, 12)
	f(40.6+r.Float64()*0.3, 12)
	b = strconv.AppendInt(b, 1, 10)
	b = append(b, ",N,"...)
	f(-74.05+r.Float64()*0.2, 12)
	f(40.6+r.Float64()*0.3, 12)
	b = strconv.AppendInt(b, int64(1+r.IntN(2)), 10)
	b = append(b, ',')
	fare := 2.5 + float64(r.IntN(6000))/100
	f(fare, 2)
	f(0.5, 1)
	f(0.5, 1)
	tip := float64(r.IntN(500)) / 100
	f(tip, 2)
	f(0, 0)
	if g.Era == Era2015 {
		f(0.3, 1)
	}
	b = strconv.AppendFloat(b, fare+1+tip, 'f', 2, 64)
	if g.Era == Era2010 {
		b = append(b, '\r')
	}
	return append(b, '\n')
}

// Write writes a whole object of at least size bytes (header first) to w.
func Write(w io.Writer, era Era, size int64, seed uint64) error {
	g := New(era, seed)
	b := append([]byte(era.Header()), '\n')
	if era == Era2010 { // the 2010-2014 files are CRLF with a blank second line
		b = append(b[:len(b)-1], "\r\n\r\n"...)
	}
	var n int64
	for n+int64(len(b)) < size {
		b = g.AppendRow(b)
		if len(b) >= 1<<20 {
			if _, err := w.Write(b); err != nil {
				return err
			}
			n += int64(len(b))
			b = b[:0]
		}
	}
	_, err := w.Write(b)
	return err
}
