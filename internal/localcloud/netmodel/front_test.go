package netmodel

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The front passes requests on exactly as sent (a signed request must stay valid), each after
// the latency, and S3's answers back byte for byte; it runs on loopback only.
func TestFront(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	type seen struct{ uri, host, expect, sum string }
	got := make(chan seen, 10)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.RequestURI, r.Host, r.Header.Get("Expect"), fmt.Sprintf("%x", sha256.Sum256(b))}
		if r.Method == http.MethodGet {
			w.Write(big)
		}
	}))
	defer upstream.Close()
	const latency = 150 * time.Millisecond
	f, err := startFront("127.0.0.1:0", upstream.Listener.Addr().String(), latency)
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	base := "http://" + f.l.Addr().String()
	client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: 10 * time.Second}}

	for i := range 2 { // the second request reuses the connection: it waits too
		uri := "/nettaxi/trip%20data/a%2Cb%3Dc.csv?x-id=GetObject&p=%2Fq"
		start := time.Now()
		req, _ := http.NewRequest("GET", base+uri, nil)
		req.Host = "127.2.0.5:7070"
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if took := time.Since(start); err != nil || !bytes.Equal(b, big) || took < latency {
			t.Fatalf("GET %d: %d bytes (%v) after %v: want the 4 MiB body after at least %v", i, len(b), err, took, latency)
		}
		s := <-got
		if s.uri != uri || s.host != req.Host {
			t.Errorf("GET %d reached S3 as %s (Host %s): want %s (Host %s)", i, s.uri, s.host, uri, req.Host)
		}
	}

	body := strings.Repeat("result line\n", 100000)
	req, _ := http.NewRequest("PUT", base+"/out/part-00001", strings.NewReader(body))
	req.Header.Set("Expect", "100-continue")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	s := <-got
	if want := fmt.Sprintf("%x", sha256.Sum256([]byte(body))); s.sum != want || s.expect != "100-continue" || resp.StatusCode != 200 {
		t.Errorf("PUT with Expect: status %d, S3 saw Expect %q and a body of sum %s: want 200, 100-continue, %s", resp.StatusCode, s.expect, s.sum, want)
	}
}
