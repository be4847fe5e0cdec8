// Package urlcases reads webhookreq/testdata/publicurl_cases.json, the
// public-URL cases every twilioguard adapter must agree on, for the Go
// tests of the adapters (the Python and Node tests read the same file).
package urlcases

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Case is one request and the URL every adapter must rebuild for it.
type Case struct {
	Name    string              `json:"name"`
	Peer    string              `json:"peer"`
	TLS     bool                `json:"tls"`
	Host    string              `json:"host"`
	Target  string              `json:"target"`
	Headers map[string][]string `json:"headers"`
	// PublicBaseURL and ProxyHeaders are the adapter's options.
	PublicBaseURL string   `json:"publicBaseUrl"`
	ProxyHeaders  []string `json:"proxyHeaders"`
	// TrustedProxies are the case's own, or the file's (see Load).
	TrustedProxies []string `json:"trustedProxies"`
	Want           string   `json:"want"`
	WantFrom       string   `json:"wantFrom"`
	WantHint       string   `json:"wantHint"`
}

// Load reads every case, giving each without its own trusted proxies the
// file's.
func Load(t testing.TB) []Case {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "webhookreq", "testdata", "publicurl_cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		TrustedProxies []string `json:"trustedProxies"`
		Cases          []Case   `json:"cases"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Cases) < 30 {
		t.Fatalf("read %d cases; the file has more", len(doc.Cases))
	}
	for i := range doc.Cases {
		if doc.Cases[i].TrustedProxies == nil {
			doc.Cases[i].TrustedProxies = doc.TrustedProxies
		}
	}
	return doc.Cases
}

// Request returns the incoming request of c, as a server would hand it to
// a handler, with body as its body.
func (c Case) Request(body string) *http.Request {
	r := &http.Request{
		Method:     http.MethodPost,
		Host:       c.Host,
		RemoteAddr: c.Peer,
		RequestURI: c.Target,
		Header:     http.Header{},
		URL:        &url.URL{Path: "/ignored"},
		Body:       http.NoBody,
	}
	if body != "" {
		r.Body, r.ContentLength = io.NopCloser(strings.NewReader(body)), int64(len(body))
	}
	for k, vs := range c.Headers {
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	if c.TLS {
		r.TLS = &tls.ConnectionState{}
	}
	return r
}
