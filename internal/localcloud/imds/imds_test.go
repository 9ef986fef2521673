package imds

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func serve(t *testing.T, in Instance) (*Server, string) {
	t.Helper()
	s := &Server{
		Lookup: func(_ context.Context, ip string) (Instance, bool, error) {
			return in, ip == "127.0.0.1", nil
		},
		Credentials: Credentials{AccessKeyID: "AK", SecretAccessKey: "SK"},
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts.URL
}

func call(t *testing.T, method, url string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func newToken(t *testing.T, base string) string {
	t.Helper()
	code, tok := call(t, "PUT", base+"/latest/api/token", ttlHeader, "60")
	if code != 200 || tok == "" {
		t.Fatalf("token: %d %q", code, tok)
	}
	return tok
}

// IMDSv2 with HttpTokens=required: a token first, then GETs with it; anything else refused.
func TestTokens(t *testing.T) {
	_, base := serve(t, Instance{ID: "i-1", IP: "127.0.0.1", Zone: "us-east-1b"})
	if code, _ := call(t, "GET", base+"/latest/meta-data/instance-id"); code != 401 {
		t.Errorf("tokenless GET: %d, want 401", code)
	}
	if code, _ := call(t, "GET", base+"/latest/meta-data/instance-id", tokenHeader, "made-up"); code != 401 {
		t.Errorf("unknown token: %d, want 401", code)
	}
	if code, _ := call(t, "PUT", base+"/latest/api/token"); code != 400 {
		t.Errorf("PUT without a TTL: %d, want 400", code)
	}
	if code, _ := call(t, "PUT", base+"/latest/api/token", ttlHeader, "21601"); code != 400 {
		t.Errorf("PUT with a TTL too long: %d, want 400", code)
	}
	if code, _ := call(t, "PUT", base+"/latest/api/token", ttlHeader, "60", "X-Forwarded-For", "1.2.3.4"); code != 403 {
		t.Errorf("PUT through a proxy: %d, want 403", code)
	}
	if code, _ := call(t, "GET", base+"/latest/api/token", ttlHeader, "60"); code != 405 {
		t.Errorf("GET of a token: %d, want 405", code)
	}
	tok := newToken(t, base)
	for path, want := range map[string]string{
		"meta-data/instance-id":                 "i-1",
		"meta-data/placement/region":            "us-east-1",
		"meta-data/placement/availability-zone": "us-east-1b",
		"meta-data/local-ipv4":                  "127.0.0.1",
		"meta-data/placement/":                  "availability-zone\nregion",
	} {
		if code, body := call(t, "GET", base+"/latest/"+path, tokenHeader, tok); code != 200 || body != want {
			t.Errorf("%s: %d %q, want %q", path, code, body, want)
		}
	}
}

func TestTokenExpires(t *testing.T) {
	s, base := serve(t, Instance{ID: "i-1", IP: "127.0.0.1"})
	tok := newToken(t, base)
	s.mu.Lock()
	s.tokens[tok] = token{id: "i-1", expires: time.Now().Add(-time.Second)}
	s.mu.Unlock()
	if code, _ := call(t, "GET", base+"/latest/meta-data/instance-id", tokenHeader, tok); code != 401 {
		t.Errorf("expired token: %d, want 401", code)
	}
}

// A token is good only at the instance it was issued to.
func TestTokenIsPerInstance(t *testing.T) {
	s, base := serve(t, Instance{ID: "i-1", IP: "127.0.0.1"})
	tok := newToken(t, base)
	s.Lookup = func(context.Context, string) (Instance, bool, error) {
		return Instance{ID: "i-2", IP: "127.0.0.1"}, true, nil
	}
	if code, _ := call(t, "GET", base+"/latest/meta-data/instance-id", tokenHeader, tok); code != 401 {
		t.Errorf("another instance's token: %d, want 401", code)
	}
}

func TestNoInstanceAtAddress(t *testing.T) {
	s, base := serve(t, Instance{})
	s.Lookup = func(context.Context, string) (Instance, bool, error) { return Instance{}, false, nil }
	if code, _ := call(t, "PUT", base+"/latest/api/token", ttlHeader, "60"); code != 404 {
		t.Errorf("no instance: %d, want 404", code)
	}
}

// Role credentials exist only with an instance profile that has a role, as on EC2.
func TestCredentials(t *testing.T) {
	_, base := serve(t, Instance{ID: "i-1", IP: "127.0.0.1"})
	tok := newToken(t, base)
	for _, p := range []string{"iam/info", "iam/security-credentials/", "iam/security-credentials/r"} {
		if code, _ := call(t, "GET", base+"/latest/meta-data/"+p, tokenHeader, tok); code != 404 {
			t.Errorf("%s without a profile: %d, want 404", p, code)
		}
	}

	_, base = serve(t, Instance{ID: "i-1", IP: "127.0.0.1", ProfileARN: "arn:aws:iam::123456789012:instance-profile/p", Role: "r"})
	tok = newToken(t, base)
	if code, body := call(t, "GET", base+"/latest/meta-data/iam/security-credentials/", tokenHeader, tok); code != 200 || body != "r" {
		t.Fatalf("role list: %d %q", code, body)
	}
	_, body := call(t, "GET", base+"/latest/meta-data/iam/security-credentials/r", tokenHeader, tok)
	var c struct{ Code, AccessKeyId, SecretAccessKey, Expiration string }
	if err := json.Unmarshal([]byte(body), &c); err != nil || c.Code != "Success" || c.AccessKeyId != "AK" || c.SecretAccessKey != "SK" {
		t.Fatalf("credentials: %v %q", err, body)
	}
	if exp, err := time.Parse(time.RFC3339, c.Expiration); err != nil || time.Until(exp) < time.Hour {
		t.Errorf("expiration %q: %v", c.Expiration, err)
	}
	if code, body := call(t, "GET", base+"/latest/meta-data/iam/", tokenHeader, tok); code != 200 || body != "info\nsecurity-credentials/" {
		t.Errorf("iam listing: %d %q", code, body)
	}
}

func TestSpotNotice(t *testing.T) {
	s, base := serve(t, Instance{ID: "i-1", IP: "127.0.0.1", Spot: true})
	tok := newToken(t, base)
	if code, _ := call(t, "GET", base+"/latest/meta-data/spot/instance-action", tokenHeader, tok); code != 404 {
		t.Fatalf("instance-action before a notice: %d, want 404", code)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s.Notice("i-1", at)
	code, body := call(t, "GET", base+"/latest/meta-data/spot/instance-action", tokenHeader, tok)
	var n struct{ Action, Time string }
	if err := json.Unmarshal([]byte(body), &n); code != 200 || err != nil || n.Action != "terminate" || n.Time != "2026-01-02T03:04:05Z" {
		t.Fatalf("instance-action: %d %q", code, body)
	}
}

func TestIdentityDocument(t *testing.T) {
	_, base := serve(t, Instance{ID: "i-1", IP: "127.0.0.1", Type: "t3.micro", Zone: "us-east-1a", Account: "123456789012", ImageID: "ami-1"})
	tok := newToken(t, base)
	_, body := call(t, "GET", base+"/latest/dynamic/instance-identity/document", tokenHeader, tok)
	var d struct{ InstanceID, InstanceType, Region, AccountID, PrivateIP string }
	if err := json.Unmarshal([]byte(body), &d); err != nil || d.InstanceID != "i-1" || d.InstanceType != "t3.micro" ||
		d.Region != "us-east-1" || d.AccountID != "123456789012" || d.PrivateIP != "127.0.0.1" {
		t.Fatalf("identity document: %v %q", err, body)
	}
}
