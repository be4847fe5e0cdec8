package webhookreq

import (
	"github.com/twilioguard/twilioguard/internal/urlcases"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRebuild(t *testing.T) {
	t.Parallel()
	for _, tt := range urlcases.Load(t) {
		t.Run(tt.Name, func(t *testing.T) {
			t.Parallel()
			p, err := NewURLPolicy(URLConfig{TrustedProxies: tt.TrustedProxies, PublicBaseURL: tt.PublicBaseURL, ProxyHeaders: tt.ProxyHeaders})
			if err != nil {
				t.Fatal(err)
			}
			got := p.Rebuild(tt.Request(""))
			if got.URL != tt.Want {
				t.Errorf("URL = %q; want %q", got.URL, tt.Want)
			}
			if got.From != tt.WantFrom {
				t.Errorf("From = %q; want %q", got.From, tt.WantFrom)
			}
			if tt.WantHint == "" && got.ProxyHint != "" {
				t.Errorf("ProxyHint = %q; want none", got.ProxyHint)
			}
			if tt.WantHint != "" && !strings.Contains(got.ProxyHint, tt.WantHint) {
				t.Errorf("ProxyHint = %q; want it to contain %q", got.ProxyHint, tt.WantHint)
			}
		})
	}
}

func TestParseForwarded(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      []string
		want    []forwardedElement
		wantErr bool
	}{
		{in: []string{`for="_gazonk"`}, want: []forwardedElement{{forNode: "_gazonk"}}},
		{in: []string{`For="[2001:db8:cafe::17]:4711"`}, want: []forwardedElement{{forNode: "[2001:db8:cafe::17]:4711"}}},
		{in: []string{`for=192.0.2.60;proto=http;by=203.0.113.43`}, want: []forwardedElement{{forNode: "192.0.2.60", proto: "http"}}},
		{in: []string{`for=192.0.2.43, for=198.51.100.17`}, want: []forwardedElement{{forNode: "192.0.2.43"}, {forNode: "198.51.100.17"}}},
		{in: []string{`for=192.0.2.43`, `for=198.51.100.17;host=b`}, want: []forwardedElement{{forNode: "192.0.2.43"}, {forNode: "198.51.100.17", host: "b"}}},
		{in: []string{` for=a ; proto=https ,, host="x\"y,z;w" `}, want: []forwardedElement{{forNode: "a", proto: "https"}, {host: `x"y,z;w`}}},
		{in: []string{`host=example.com:8443;for=[::1]:80`}, want: []forwardedElement{{forNode: "[::1]:80", host: "example.com:8443"}}},
		{in: []string{`host=""`}, want: []forwardedElement{{}}},
		{in: []string{""}, want: nil},
		{in: []string{`for=1;FOR=2`}, wantErr: true},
		{in: []string{`=x`}, wantErr: true},
		{in: []string{`for`}, wantErr: true},
		{in: []string{`for="x`}, wantErr: true},
		{in: []string{`for=x y`}, wantErr: true},
		{in: []string{`for=x"y"`}, wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseForwarded(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseForwarded(%q) error = %v; want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(forwardedElement{})); diff != "" {
			t.Errorf("parseForwarded(%q) mismatch (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestParseNode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want string // "" means not an address
	}{
		{"192.0.2.43", "192.0.2.43"},
		{"192.0.2.43:47011", "192.0.2.43"},
		{" 192.0.2.43 ", "192.0.2.43"},
		{"[2001:db8:cafe::17]", "2001:db8:cafe::17"},
		{"[2001:db8:cafe::17]:4711", "2001:db8:cafe::17"},
		{"2001:db8:cafe::17", "2001:db8:cafe::17"},
		{"[::ffff:192.0.2.1]:80", "192.0.2.1"},
		{"[fe80::1%eth0]:80", "fe80::1"},
		{"unknown", ""},
		{"_hidden", ""},
		{"192.0.2.43:http", ""},
		{"[2001:db8::1]x", ""},
		{"[2001:db8::1", ""},
		{"", ""},
	}
	for _, tt := range tests {
		a, ok := parseNode(tt.in)
		got := ""
		if ok {
			got = a.String()
		}
		if got != tt.want {
			t.Errorf("parseNode(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseBaseURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "https://example.com", want: "https://example.com"},
		{in: "https://example.com/", want: "https://example.com"},
		{in: "HTTP://Example.com:8080/twilio/", want: "HTTP://Example.com:8080/twilio"},
		{in: "https://[2001:db8::1]:8443", want: "https://[2001:db8::1]:8443"},
		{in: "ftp://example.com", wantErr: true},
		{in: "example.com", wantErr: true},
		{in: "https://", wantErr: true},
		{in: "https://user:pw@example.com", wantErr: true},
		{in: "https://example.com/?x=1", wantErr: true},
		{in: "https://example.com/?", wantErr: true},
		{in: "https://example.com/#f", wantErr: true},
		{in: "https://exa mple.com", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseBaseURL(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseBaseURL(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("ParseBaseURL(%q) error %q leaks the password", tt.in, err)
		}
	}
}

func TestParsePrefix(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "10.0.0.0/8", want: "10.0.0.0/8"},
		{in: "10.1.2.3/8", want: "10.0.0.0/8"},
		{in: " 127.0.0.1 ", want: "127.0.0.1/32"},
		{in: "::1", want: "::1/128"},
		{in: "::ffff:10.0.0.0/104", want: "10.0.0.0/8"},
		{in: "::ffff:10.0.0.1", want: "10.0.0.1/32"},
		{in: "fd00::/8", want: "fd00::/8"},
		{in: "10.0.0.0/33", wantErr: true},
		{in: "localhost", wantErr: true},
	}
	for _, tt := range tests {
		p, err := parsePrefix(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("parsePrefix(%q) error = %v; want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if err == nil && p.String() != tt.want {
			t.Errorf("parsePrefix(%q) = %s; want %s", tt.in, p, tt.want)
		}
	}
	if _, err := parsePrefix("10.0.0.0/8"); err != nil {
		t.Fatal(err)
	}
	var pol URLPolicy
	p, _ := parsePrefix("::ffff:10.0.0.0/104")
	pol.trusted = []netip.Prefix{p}
	if a, _ := parseNode("[::ffff:10.2.3.4]:1"); !pol.isTrusted(a) {
		t.Errorf("mapped peer not trusted by mapped prefix")
	}
}

func TestValidHost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want bool
	}{
		{"example.com", true},
		{"Example.COM:8443", true},
		{"127.0.0.1:80", true},
		{"[2001:db8::1]", true},
		{"[2001:db8::1]:443", true},
		{"xn--bcher-kva.example", true},
		{"", false},
		{":80", false},
		{"example.com:", false},
		{"example.com:0", false},
		{"example.com:65536", false},
		{"[10.0.0.1]", false},
		{"[2001:db8::1]x", false},
		{"a/b", false},
		{"a?b", false},
		{"a#b", false},
		{"u@h", false},
		{"a b", false},
		{"a\tb", false},
		{strings.Repeat("a", 301), false},
	}
	for _, tt := range tests {
		if got := validHost(tt.in); got != tt.want {
			t.Errorf("validHost(%q) = %v; want %v", tt.in, got, tt.want)
		}
	}
}

func TestNewURLPolicyErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  URLConfig
		want string
	}{
		{"bad CIDR", URLConfig{TrustedProxies: []string{"10.0.0.0/8", "nope"}}, `trusted proxy "nope"`},
		{"bad base URL", URLConfig{PublicBaseURL: "https://u:secretpw@example.com"}, "user info"},
		{"bad proxy header", URLConfig{ProxyHeaders: []string{"X-Real-IP"}}, "X-Real-IP"},
	}
	for _, tt := range tests {
		_, err := NewURLPolicy(tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error = %v; want it to mention %q", tt.name, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "secretpw") {
			t.Errorf("%s: error %q leaks the password", tt.name, err)
		}
	}
	p, err := NewURLPolicy(URLConfig{TrustedProxies: []string{"", " "}})
	if err != nil || p.TrustsProxies() || p.HasBaseURL() {
		t.Errorf("empty values: policy %+v, error %v; want no proxies, no base URL, no error", p, err)
	}
}
