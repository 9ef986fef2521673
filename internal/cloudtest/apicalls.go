package cloudtest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
)

// NewCaller gives this process AWS credentials of its own for the rest of the test: an
// access key id no other client uses, by which the local cloud's EC2 tells its requests
// apart (moto accepts any key, in the same account). It returns the key id.
func NewCaller(t testing.TB) string {
	t.Helper()
	Require(t)
	b := make([]byte, 6)
	rand.Read(b)
	key := "AKIDTEST" + strings.ToUpper(hex.EncodeToString(b))
	t.Setenv("AWS_ACCESS_KEY_ID", key)
	return key
}

// APICalls returns the requests the local cloud's EC2 endpoint (moto: EC2, IAM, SSM, STS,
// Service Quotas) received signed with the access key id key, as "service:Action" -> count,
// counted on the server side (every attempt, retries included).
func APICalls(t testing.TB, key string) map[string]int {
	t.Helper()
	Require(t)
	resp, err := http.Get(os.Getenv("AWS_ENDPOINT_URL") + "/_ec2kit/api-calls?key=" + url.QueryEscape(key))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	calls := map[string]int{}
	if err := json.NewDecoder(resp.Body).Decode(&calls); err != nil {
		t.Fatalf("the local cloud's API call counts: %s, %v (a cloud started before it counted calls? restart it)", resp.Status, err)
	}
	return calls
}
