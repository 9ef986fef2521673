package manifest

import (
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	m := &Manifest{Version: Version, Job: "j1", Step: "combined", Src: "s3://b/trip data/",
		Created: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
		Keys:    []Key{{"trip data/a\tb.csv", 10}, {"x", 0}}}
	got, err := Decode(m.Encode())
	if err != nil || got.Job != "j1" || len(got.Keys) != 2 || got.Keys[0].Key != "trip data/a\tb.csv" ||
		!got.Names()["x"] || !got.Created.Equal(m.Created) {
		t.Fatalf("got %+v %v", got, err)
	}
	if _, err := Decode([]byte(`{"version":99}`)); err == nil {
		t.Fatal("a future version must be refused")
	}
	if _, err := Decode([]byte(`{`)); err == nil {
		t.Fatal("broken JSON must be refused")
	}
}
