// Package imds is the local cloud's instance metadata service: IMDSv2 as EC2 serves it with
// HttpTokens=required, one server for every instance, each instance's data at an address of
// its own (its private address, on the server's port). A request is answered with the data
// of the instance whose address it was sent to.
//
// AWS's own simulator (amazon-ec2-metadata-mock) serves one fixed instance per process from
// a configuration read at start, and schedules its spot notice at start too: the local cloud
// needs per-instance data from EC2's current state and notices injected at any time.
package imds

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Instance is what the service says about one running instance.
type Instance struct {
	ID, Type, ImageID, Zone, IP string
	Account                     string
	Spot                        bool
	LaunchTime                  time.Time
	ProfileARN, ProfileID       string // empty without an instance profile
	Role                        string // the profile's role; empty without one
}

func (in Instance) region() string { return strings.TrimRight(in.Zone, "abcdefghijklmnopqrstuvwxyz") }

// Credentials are the role credentials handed to instances that have a role.
type Credentials struct {
	AccessKeyID, SecretAccessKey, Token string
}

// Server answers metadata requests. Lookup finds the running instance with a private
// address (ok false: none).
type Server struct {
	Lookup      func(ctx context.Context, ip string) (in Instance, ok bool, err error)
	Credentials Credentials

	mu      sync.Mutex
	tokens  map[string]token
	notices map[string]time.Time // instance id -> time of the spot interruption
}

type token struct {
	id      string
	expires time.Time
}

// Notice posts a spot interruption notice for the instance: the action is due at.
func (s *Server) Notice(id string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.notices == nil {
		s.notices = map[string]time.Time{}
	}
	s.notices[id] = at
}

const (
	tokenHeader = "X-Aws-Ec2-Metadata-Token"
	ttlHeader   = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"
	maxTTL      = 21600
)

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	addr, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	ip := ""
	if a, ok := addr.(*net.TCPAddr); ok {
		ip = a.IP.String()
	}
	in, ok, err := s.Lookup(r.Context(), ip)
	switch {
	case err != nil:
		http.Error(w, "metadata unavailable: "+err.Error(), http.StatusServiceUnavailable)
		return
	case !ok:
		http.Error(w, "no running instance has the address "+ip, http.StatusNotFound)
		return
	}
	if r.URL.Path == "/latest/api/token" {
		s.newToken(w, r, in)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !s.valid(r.Header.Get(tokenHeader), in.ID) {
		// HttpTokens=required: no session token, or a stale one, is refused.
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	body, ok := s.get(in, r.URL.Path)
	if !ok {
		http.Error(w, "Not Found", http.StatusNotFound)
		return
	}
	if strings.HasPrefix(body, "{") {
		w.Header().Set("Content-Type", "application/json")
	} else {
		w.Header().Set("Content-Type", "text/plain")
	}
	w.Write([]byte(body))
}

func (s *Server) newToken(w http.ResponseWriter, r *http.Request, in Instance) {
	if r.Method != http.MethodPut {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.Header.Get("X-Forwarded-For") != "" { // as EC2: a token never passes through a proxy
		http.Error(w, "Forbidden", http.StatusForbidden)
		return
	}
	ttl, err := strconv.Atoi(r.Header.Get(ttlHeader))
	if err != nil || ttl < 1 || ttl > maxTTL {
		http.Error(w, "Bad Request: "+ttlHeader+" must be 1 to 21600", http.StatusBadRequest)
		return
	}
	b := make([]byte, 32)
	rand.Read(b)
	t := base64.RawURLEncoding.EncodeToString(b)
	now := time.Now()
	s.mu.Lock()
	if s.tokens == nil {
		s.tokens = map[string]token{}
	}
	for k, v := range s.tokens {
		if now.After(v.expires) {
			delete(s.tokens, k)
		}
	}
	s.tokens[t] = token{id: in.ID, expires: now.Add(time.Duration(ttl) * time.Second)}
	s.mu.Unlock()
	w.Header().Set(ttlHeader, strconv.Itoa(ttl))
	w.Write([]byte(t))
}

// valid reports whether t is a live token issued to instance id.
func (s *Server) valid(t, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.tokens[t]
	return ok && v.id == id && time.Now().Before(v.expires)
}

// get returns the document at path, or the listing of a directory, as the instance sees it.
func (s *Server) get(in Instance, path string) (string, bool) {
	rel, ok := strings.CutPrefix(path, "/latest/")
	if !ok {
		return "", false
	}
	docs := s.docs(in)
	if b, ok := docs[rel]; ok {
		return b, true
	}
	return listing(docs, strings.TrimSuffix(rel, "/"))
}

// docs are the instance's documents by path under /latest/.
func (s *Server) docs(in Instance) map[string]string {
	s.mu.Lock()
	notice, noticed := s.notices[in.ID]
	s.mu.Unlock()
	host := "ip-" + strings.ReplaceAll(in.IP, ".", "-") + ".ec2.internal"
	lifecycle := "on-demand"
	if in.Spot {
		lifecycle = "spot"
	}
	md := map[string]string{
		"instance-id":                 in.ID,
		"instance-type":               in.Type,
		"ami-id":                      in.ImageID,
		"instance-life-cycle":         lifecycle,
		"local-ipv4":                  in.IP,
		"local-hostname":              host,
		"hostname":                    host,
		"placement/availability-zone": in.Zone,
		"placement/region":            in.region(),
		"services/domain":             "amazonaws.com",
		"services/partition":          "aws",
	}
	if noticed {
		at := notice.UTC().Format(time.RFC3339)
		md["spot/instance-action"] = jsonDoc(map[string]string{"action": "terminate", "time": at})
		md["spot/termination-time"] = at
	}
	if in.ProfileARN != "" {
		md["iam/info"] = jsonDoc(map[string]string{"Code": "Success", "LastUpdated": in.LaunchTime.UTC().Format(time.RFC3339),
			"InstanceProfileArn": in.ProfileARN, "InstanceProfileId": in.ProfileID})
		if in.Role != "" {
			now := time.Now().UTC()
			md["iam/security-credentials/"+in.Role] = jsonDoc(map[string]string{
				"Code": "Success", "LastUpdated": now.Format(time.RFC3339), "Type": "AWS-HMAC",
				"AccessKeyId": s.Credentials.AccessKeyID, "SecretAccessKey": s.Credentials.SecretAccessKey,
				"Token": s.Credentials.Token, "Expiration": now.Add(6 * time.Hour).Format(time.RFC3339),
			})
		}
	}
	docs := map[string]string{
		"dynamic/instance-identity/document": jsonDoc(map[string]any{
			"accountId": in.Account, "architecture": "x86_64", "availabilityZone": in.Zone,
			"imageId": in.ImageID, "instanceId": in.ID, "instanceType": in.Type,
			"pendingTime": in.LaunchTime.UTC().Format(time.RFC3339), "privateIp": in.IP,
			"region": in.region(), "version": "2017-09-30",
		}),
	}
	for k, v := range md {
		docs["meta-data/"+k] = v
	}
	return docs
}

// listing lists a directory's entries as IMDS does: one a line, subdirectories with a
// trailing slash.
func listing(docs map[string]string, dir string) (string, bool) {
	prefix := dir + "/"
	if dir == "" {
		prefix = ""
	}
	seen := map[string]bool{}
	for k := range docs {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		name, _, sub := strings.Cut(rest, "/")
		if sub {
			name += "/"
		}
		seen[name] = true
	}
	if len(seen) == 0 {
		return "", false
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, "\n"), true
}

func jsonDoc(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}
