package localcloud

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"ec2kit/internal/localcloud/imds"
)

// A known address is answered from the copy, without a call to EC2: clients give the
// metadata service half a second, and moto under load can take longer than that.
func TestMetadataAnswersFromCopy(t *testing.T) {
	var calls atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Write([]byte(`<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><reservationSet/></DescribeInstancesResponse>`))
	}))
	defer api.Close()
	c := ec2.New(ec2.Options{Region: region, BaseEndpoint: aws.String(api.URL), Credentials: aws.AnonymousCredentials{}})
	m := newMetadata(c, nil, "")
	m.byIP = map[string]imds.Instance{"127.1.0.4": {ID: "i-1", IP: "127.1.0.4"}}
	ctx := context.Background()
	if in, ok, err := m.lookup(ctx, "127.1.0.4"); err != nil || !ok || in.ID != "i-1" || calls.Load() != 0 {
		t.Fatalf("cached address: %v %v %v, %d EC2 calls", in, ok, err, calls.Load())
	}
	if _, ok, err := m.lookup(ctx, "127.1.0.5"); err != nil || ok || calls.Load() != 1 {
		t.Fatalf("unknown address: %v %v, %d EC2 calls", ok, err, calls.Load())
	}
}
