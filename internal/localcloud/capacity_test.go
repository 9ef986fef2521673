package localcloud

import (
	"encoding/json"
	"reflect"
	"testing"
)

// The pools file is what the moto launcher reads: [[type, zone, limit], ...].
func TestCapacityLimitJSON(t *testing.T) {
	in := []capacityLimit{{"t3.nano", "", 0}, {"t3.small", "us-east-1b", 2}}
	b, err := json.Marshal(in)
	if err != nil || string(b) != `[["t3.nano","",0],["t3.small","us-east-1b",2]]` {
		t.Fatalf("%s %v", b, err)
	}
	var out []capacityLimit
	if err := json.Unmarshal(b, &out); err != nil || !reflect.DeepEqual(out, in) {
		t.Fatalf("%+v %v", out, err)
	}
}
