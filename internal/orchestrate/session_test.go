package orchestrate

import (
	"testing"

	"ec2kit/internal/sshx"
)

func TestQuoteAndIDs(t *testing.T) {
	// S3 keys hold spaces and quotes, and travel to countpass as one shell word.
	if sshx.Quote("trip data/it's") != `'trip data/it'\''s'` {
		t.Fatal(sshx.Quote("trip data/it's"))
	}
	if !allIDs([]string{"i-1", "i-2"}) || allIDs([]string{"i-1", "web"}) {
		t.Fatal("allIDs")
	}
}
