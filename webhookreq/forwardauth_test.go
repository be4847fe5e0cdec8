package webhookreq

import (
	"crypto/tls"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestForwardAuthOriginal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		method  string
		target  string // the auth request's raw request-target
		host    string
		tls     bool
		header  http.Header
		want    Original
		wantErr string
	}{
		{
			name: "Traefik: everything from X-Forwarded-*", method: http.MethodGet, target: "/forward-auth?accounts=shop", host: "twilioguard:8080",
			header: http.Header{"X-Forwarded-Method": {"POST"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"hooks.example.com"},
				"X-Forwarded-Uri": {"/sms?x=%7e&y=it's"}, "X-Forwarded-For": {"203.0.113.9"}},
			want: Original{Method: "POST", Origin: "https://hooks.example.com", Target: "/sms?x=%7e&y=it's", FromHeaders: true},
		},
		{
			name: "Traefik without X-Forwarded-Host or -Proto: Host and the connection", method: http.MethodGet, target: "/forward-auth", host: "hooks.example.com:8443", tls: true,
			header: http.Header{"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/voice"}},
			want:   Original{Method: "GET", Origin: "https://hooks.example.com:8443", Target: "/voice", FromHeaders: true},
		},
		{
			name: "lists: the right-most entry", method: http.MethodGet, target: "/forward-auth", host: "x",
			header: http.Header{"X-Forwarded-Method": {"POST"}, "X-Forwarded-Proto": {"http, https"}, "X-Forwarded-Host": {"evil.example", "hooks.example.com"}, "X-Forwarded-Uri": {"/sms"}},
			want:   Original{Method: "POST", Origin: "https://hooks.example.com", Target: "/sms", FromHeaders: true},
		},
		{
			name: "Envoy HTTP mode: path after the prefix, Host, X-Forwarded-Proto", method: http.MethodPost, target: "/forward-auth/twilio/sms?Foo=bar", host: "hooks.example.com",
			header: http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"ignored.example"}},
			want:   Original{Method: "POST", Origin: "https://hooks.example.com", Target: "/twilio/sms?Foo=bar"},
		},
		{
			name: "Envoy HTTP mode: the prefix alone is /", method: http.MethodPost, target: "/forward-auth", host: "hooks.example.com",
			want: Original{Method: "POST", Origin: "http://hooks.example.com", Target: "/"},
		},
		{
			name: "Envoy HTTP mode: a query on the prefix", method: http.MethodPost, target: "/forward-auth?a=1", host: "[2001:db8::1]:8443",
			want: Original{Method: "POST", Origin: "http://[2001:db8::1]:8443", Target: "/?a=1"},
		},
		{
			name: "X-Forwarded-Method ignored without X-Forwarded-Uri", method: http.MethodPut, target: "/forward-auth/x", host: "h",
			header: http.Header{"X-Forwarded-Method": {"POST"}},
			want:   Original{Method: "PUT", Origin: "http://h", Target: "/x"},
		},
		{name: "not under the prefix", method: http.MethodPost, target: "/forward-authx/sms", host: "h", wantErr: "not under /forward-auth"},
		{name: "other path", method: http.MethodPost, target: "/sms", host: "h", wantErr: "not under"},
		{name: "bad scheme", method: http.MethodPost, target: "/forward-auth/sms", host: "h", header: http.Header{"X-Forwarded-Proto": {"gopher"}}, wantErr: "want http or https"},
		{name: "bad host", method: http.MethodGet, target: "/forward-auth", host: "h", header: http.Header{"X-Forwarded-Uri": {"/sms"}, "X-Forwarded-Host": {"evil/x"}}, wantErr: "original host"},
		{name: "no host", method: http.MethodPost, target: "/forward-auth/sms", host: "", wantErr: "original host"},
		{name: "absolute URI", method: http.MethodGet, target: "/forward-auth", host: "h", header: http.Header{"X-Forwarded-Uri": {"https://evil.example/sms"}}, wantErr: "origin-form"},
		{name: "space in URI", method: http.MethodGet, target: "/forward-auth", host: "h", header: http.Header{"X-Forwarded-Uri": {"/a b"}}, wantErr: "origin-form"},
		{name: "repeated URI", method: http.MethodGet, target: "/forward-auth", host: "h", header: http.Header{"X-Forwarded-Uri": {"/a", "/b"}}, wantErr: "repeated"},
		{name: "bad method", method: http.MethodGet, target: "/forward-auth", host: "h", header: http.Header{"X-Forwarded-Uri": {"/a"}, "X-Forwarded-Method": {"PO ST"}}, wantErr: "not an HTTP method"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := &http.Request{Method: tt.method, RequestURI: tt.target, Host: tt.host, Header: tt.header, URL: &url.URL{Path: "/ignored"}}
			if r.Header == nil {
				r.Header = http.Header{}
			}
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			got, err := ForwardAuthOriginal(r, "/forward-auth")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v; want one containing %q (got %+v)", err, tt.wantErr, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v; want %+v", got, tt.want)
			}
		})
	}
}

func TestForwardAuthOriginalBoundsErrors(t *testing.T) {
	t.Parallel()
	long := "/" + strings.Repeat("a", 10_000) + " "
	r := &http.Request{Method: http.MethodGet, RequestURI: "/forward-auth", Host: "h", Header: http.Header{"X-Forwarded-Uri": {long}}}
	_, err := ForwardAuthOriginal(r, "/forward-auth")
	if err == nil {
		t.Fatal("no error")
	}
	if n := len(err.Error()); n > 400 {
		t.Errorf("err = %d bytes; want at most 400", n)
	}
}

func TestBodyNotForwarded(t *testing.T) {
	t.Parallel()
	tests := []struct {
		method, contentType string
		bodyLen             int
		want                bool
	}{
		{"POST", "application/x-www-form-urlencoded", 0, true},
		{"POST", "application/x-www-form-urlencoded; charset=UTF-8", 0, true},
		{"POST", "Application/X-WWW-Form-Urlencoded", 0, true},
		{"POST", "", 0, true},
		{"POST", "application/x-www-form-urlencoded", 12, false},
		{"POST", "application/json", 0, false}, // checked by bodySHA256
		{"GET", "", 0, false},
		{"GET", "application/x-www-form-urlencoded", 0, false},
		{"PUT", "", 0, false},
	}
	for _, tt := range tests {
		if got := BodyNotForwarded(tt.method, tt.contentType, tt.bodyLen); got != tt.want {
			t.Errorf("BodyNotForwarded(%q, %q, %d) = %v; want %v", tt.method, tt.contentType, tt.bodyLen, got, tt.want)
		}
	}
}
