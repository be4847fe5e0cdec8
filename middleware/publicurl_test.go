package middleware

import (
	"crypto/tls"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRebuild(t *testing.T) {
	t.Parallel()
	trusted := []string{"10.0.0.0/8", "192.168.1.1", "2001:db8::/32"}
	tests := []struct {
		name       string
		opts       []Option // besides WithTrustedProxies(trusted...)
		remote     string
		tls        bool
		host       string
		target     string // RequestURI
		header     map[string][]string
		want       string
		wantFrom   string
		wantHintIn string // substring of proxyHint; "" means proxyHint must be empty
	}{
		{
			name: "direct plain HTTP", remote: "203.0.113.9:1234", host: "example.com", target: "/sms?x=1",
			want: "http://example.com/sms?x=1", wantFrom: "connection", wantHintIn: "plain-HTTP connection",
		},
		{
			name: "direct TLS", remote: "203.0.113.9:1234", tls: true, host: "example.com", target: "/sms",
			want: "https://example.com/sms", wantFrom: "connection",
		},
		{
			name: "untrusted peer: X-Forwarded-* ignored", remote: "203.0.113.9:1234", host: "example.com", target: "/sms",
			header: map[string][]string{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"evil.example"}},
			want:   "http://example.com/sms", wantFrom: "connection",
			wantHintIn: "ignored X-Forwarded-Proto, X-Forwarded-Host from peer 203.0.113.9",
		},
		{
			name: "untrusted peer: Forwarded and X-Original-Host ignored", remote: "[2001:db9::1]:1234", tls: true, host: "example.com", target: "/sms",
			header: map[string][]string{"Forwarded": {"for=10.0.0.1;proto=http;host=evil.example"}, "X-Original-Host": {"evil.example"}},
			want:   "https://example.com/sms", wantFrom: "connection",
			wantHintIn: "ignored Forwarded, X-Original-Host from peer 2001:db9::1",
		},
		{
			name: "unparseable peer is untrusted", remote: "@", host: "example.com", target: "/sms",
			header: map[string][]string{"X-Forwarded-Proto": {"https"}},
			want:   "http://example.com/sms", wantFrom: "connection", wantHintIn: "from peer @",
		},
		{
			name: "trusted peer without headers", remote: "10.1.2.3:5555", host: "internal:8080", target: "/sms",
			want: "http://internal:8080/sms", wantFrom: "connection",
		},
		{
			name: "trusted peer: X-Forwarded-Proto", remote: "10.1.2.3:5555", host: "example.com", target: "/sms",
			header: map[string][]string{"X-Forwarded-Proto": {"https"}},
			want:   "https://example.com/sms", wantFrom: "x-forwarded",
		},
		{
			name: "trusted peer: proto and host", remote: "192.168.1.1:5555", host: "internal:8080", target: "/sms?a=b",
			header: map[string][]string{"X-Forwarded-Proto": {"HTTPS"}, "X-Forwarded-Host": {"public.example"}},
			want:   "https://public.example/sms?a=b", wantFrom: "x-forwarded",
		},
		{
			name: "X-Forwarded-Host keeps its port", remote: "10.1.2.3:5555", host: "internal", target: "/sms",
			header: map[string][]string{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"public.example:8443"}},
			want:   "https://public.example:8443/sms", wantFrom: "x-forwarded",
		},
		{
			name: "X-Forwarded-Port default port dropped", remote: "10.1.2.3:5555", host: "internal:8080", target: "/sms",
			header: map[string][]string{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Port": {"443"}},
			want:   "https://internal/sms", wantFrom: "x-forwarded",
		},
		{
			name: "X-Forwarded-Port replaces port", remote: "10.1.2.3:5555", host: "internal:8080", target: "/sms",
			header: map[string][]string{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"public.example"}, "X-Forwarded-Port": {"8443"}},
			want:   "https://public.example:8443/sms", wantFrom: "x-forwarded",
		},
		{
			name: "X-Forwarded-Port on an IPv6 host", remote: "10.1.2.3:5555", host: "[2001:db8::80]:8080", target: "/sms",
			header: map[string][]string{"X-Forwarded-Port": {"9000"}},
			want:   "http://[2001:db8::80]:9000/sms", wantFrom: "x-forwarded",
		},
		{
			name: "X-Original-Host", remote: "10.1.2.3:5555", host: "internal", target: "/sms",
			header: map[string][]string{"X-Original-Host": {"orig.example"}},
			want:   "http://orig.example/sms", wantFrom: "x-original-host",
		},
		{
			name: "X-Forwarded-Host wins over X-Original-Host", remote: "10.1.2.3:5555", host: "internal", target: "/sms",
			header: map[string][]string{"X-Original-Host": {"orig.example"}, "X-Forwarded-Host": {"fwd.example"}},
			want:   "http://fwd.example/sms", wantFrom: "x-forwarded",
		},
		{
			name: "Forwarded", remote: "10.1.2.3:5555", host: "internal", target: "/sms",
			header: map[string][]string{"Forwarded": {"for=203.0.113.9;proto=https;host=public.example"}},
			want:   "https://public.example/sms", wantFrom: "forwarded",
		},
		{
			name: "Forwarded quoted IPv6 for and host with port", remote: "10.1.2.3:5555", host: "internal", target: "/sms",
			header: map[string][]string{"Forwarded": {`For="[2001:db9:cafe::17]:4711";PROTO=https;host="public.example:8443"`}},
			want:   "https://public.example:8443/sms", wantFrom: "forwarded",
		},
		{
			name: "Forwarded wins over X-Forwarded-*", remote: "10.1.2.3:5555", host: "internal", target: "/sms",
			header: map[string][]string{
				"Forwarded":         {"for=203.0.113.9;proto=https;host=public.example"},
				"X-Forwarded-Proto": {"http"}, "X-Forwarded-Host": {"other.example"}, "X-Forwarded-Port": {"81"},
			},
			want: "https://public.example/sms", wantFrom: "forwarded",
		},
		{
			name: "Forwarded without host: X-Forwarded-Host fills it", remote: "10.1.2.3:5555", host: "internal", target: "/sms",
			header: map[string][]string{"Forwarded": {"for=203.0.113.9;proto=https"}, "X-Forwarded-Host": {"public.example"}},
			want:   "https://public.example/sms", wantFrom: "x-forwarded",
		},
		{
			name: "Forwarded two hops, inner proxy trusted", remote: "10.1.2.3:5555", host: "internal", target: "/sms",
			header: map[string][]string{"Forwarded": {"for=203.0.113.9;proto=https;host=public.example, for=10.9.9.9;proto=http;host=mid.internal"}},
			want:   "https://public.example/sms", wantFrom: "forwarded",
		},
		{
			name: "Forwarded two header lines", remote: "10.1.2.3:5555", host: "internal", target: "/sms",
			header: map[string][]string{"Forwarded": {"for=203.0.113.9;proto=https;host=public.example", "for=10.9.9.9;proto=http;host=mid.internal"}},
			want:   "https://public.example/sms", wantFrom: "forwarded",
		},
		{
			name: "Forwarded forged element left of an untrusted hop is ignored", remote: "10.1.2.3:5555", host: "internal", target: "/sms",
			header: map[string][]string{"Forwarded": {"for=10.9.9.9;proto=https;host=evil.example, for=203.0.113.9;proto=http;host=example.com"}},
			want:   "http://example.com/sms", wantFrom: "forwarded",
		},
		{
			name: "Forwarded every hop trusted: left-most", remote: "10.1.2.3:5555", host: "internal", target: "/sms",
			header: map[string][]string{"Forwarded": {"for=10.0.0.7;proto=https;host=first.example, for=10.0.0.8;proto=http;host=second.example"}},
			want:   "https://first.example/sms", wantFrom: "forwarded",
		},
		{
			name: "Forwarded for=unknown stops the walk", remote: "10.1.2.3:5555", host: "internal", target: "/sms",
			header: map[string][]string{"Forwarded": {"for=10.0.0.7;proto=https;host=evil.example, for=unknown;proto=https;host=public.example"}},
			want:   "https://public.example/sms", wantFrom: "forwarded",
		},
		{
			name: "Forwarded obfuscated for stops the walk", remote: "10.1.2.3:5555", host: "internal", target: "/sms",
			header: map[string][]string{"Forwarded": {`for=10.0.0.7;host=evil.example, for="_hidden";proto=https;host=public.example`}},
			want:   "https://public.example/sms", wantFrom: "forwarded",
		},
		{
			name: "malformed Forwarded is ignored", remote: "10.1.2.3:5555", host: "internal", target: "/sms",
			header: map[string][]string{"Forwarded": {`for="203.0.113.9;proto=https;host=evil.example`}, "X-Forwarded-Proto": {"https"}},
			want:   "https://internal/sms", wantFrom: "x-forwarded",
		},
		{
			name: "X-Forwarded lists aligned with X-Forwarded-For", remote: "10.1.2.3:5555", host: "internal", target: "/sms",
			header: map[string][]string{
				"X-Forwarded-For":   {"203.0.113.9, 10.9.9.9"},
				"X-Forwarded-Proto": {"https, http"},
				"X-Forwarded-Host":  {"public.example", "mid.internal"},
			},
			want: "https://public.example/sms", wantFrom: "x-forwarded",
		},
		{
			name: "X-Forwarded lists: forged entries left of an untrusted hop ignored", remote: "10.1.2.3:5555", host: "internal", target: "/sms",
			header: map[string][]string{
				"X-Forwarded-For":   {"10.9.9.9, 203.0.113.9"},
				"X-Forwarded-Proto": {"https, http"},
				"X-Forwarded-Host":  {"evil.example, example.com"},
			},
			want: "http://example.com/sms", wantFrom: "x-forwarded",
		},
		{
			name: "X-Forwarded lists not aligned: right-most entry", remote: "10.1.2.3:5555", host: "internal", target: "/sms",
			header: map[string][]string{
				"X-Forwarded-For":   {"203.0.113.9, 10.9.9.9, 10.9.9.10"},
				"X-Forwarded-Proto": {"http, https"},
			},
			want: "https://internal/sms", wantFrom: "x-forwarded",
		},
		{
			name: "invalid forwarded values ignored", remote: "10.1.2.3:5555", host: "internal", target: "/sms",
			header: map[string][]string{
				"X-Forwarded-Proto": {"ftp"}, "X-Forwarded-Host": {"evil.example/x"}, "X-Forwarded-Port": {"99999"},
				"X-Original-Host": {"a b"},
			},
			want: "http://internal/sms", wantFrom: "connection",
		},
		{
			name: "host with userinfo ignored", remote: "10.1.2.3:5555", host: "internal", target: "/sms",
			header: map[string][]string{"X-Forwarded-Host": {"user:pw@evil.example"}},
			want:   "http://internal/sms", wantFrom: "connection",
		},
		{
			name: "IPv6 peer trusted", remote: "[2001:db8::5]:443", host: "internal", target: "/sms",
			header: map[string][]string{"X-Forwarded-Proto": {"https"}},
			want:   "https://internal/sms", wantFrom: "x-forwarded",
		},
		{
			name: "IPv4-mapped peer trusted", remote: "[::ffff:10.1.2.3]:443", host: "internal", target: "/sms",
			header: map[string][]string{"X-Forwarded-Proto": {"https"}},
			want:   "https://internal/sms", wantFrom: "x-forwarded",
		},
		{
			name: "proxy headers restricted", opts: []Option{WithProxyHeaders("x-forwarded-proto")},
			remote: "10.1.2.3:5555", host: "example.com", target: "/sms",
			header: map[string][]string{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"evil.example"}, "Forwarded": {"host=evil.example"}},
			want:   "https://example.com/sms", wantFrom: "x-forwarded",
		},
		{
			name: "base URL ignores every header", opts: []Option{WithPublicBaseURL("https://public.example/twilio/")},
			remote: "10.1.2.3:5555", host: "internal", target: "/sms?x=1",
			header: map[string][]string{"X-Forwarded-Proto": {"http"}, "X-Forwarded-Host": {"evil.example"}, "Forwarded": {"host=evil.example"}},
			want:   "https://public.example/twilio/sms?x=1", wantFrom: "base_url",
		},
		{
			name: "raw request-target kept byte for byte", opts: []Option{WithPublicBaseURL("https://public.example")},
			remote: "203.0.113.9:1", host: "internal", target: "/a%2Fb/c?q=it's+a%2Btest&e=&x=%7e&x=%7E",
			want: "https://public.example/a%2Fb/c?q=it's+a%2Btest&e=&x=%7e&x=%7E", wantFrom: "base_url",
		},
		{
			name: "absolute-form request-target", remote: "203.0.113.9:1", tls: true, host: "example.com", target: "https://example.com/sms?x=1",
			want: "https://example.com/sms?x=1", wantFrom: "connection",
		},
		{
			name: "absolute-form request-target without path", remote: "203.0.113.9:1", tls: true, host: "example.com", target: "https://example.com?x=1",
			want: "https://example.com/?x=1", wantFrom: "connection",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := New(VerifierFunc(nil), append([]Option{WithTrustedProxies(trusted...)}, tt.opts...)...)
			if err := m.Err(); err != nil {
				t.Fatal(err)
			}
			r := &http.Request{
				Method:     http.MethodPost,
				Host:       tt.host,
				RemoteAddr: tt.remote,
				RequestURI: tt.target,
				Header:     http.Header{},
				URL:        &url.URL{Path: "/ignored"},
			}
			for k, vs := range tt.header {
				for _, v := range vs {
					r.Header.Add(k, v)
				}
			}
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			got := m.policy.rebuild(r)
			if got.url != tt.want {
				t.Errorf("url = %q; want %q", got.url, tt.want)
			}
			if got.from != tt.wantFrom {
				t.Errorf("from = %q; want %q", got.from, tt.wantFrom)
			}
			if tt.wantHintIn == "" && got.proxyHint != "" {
				t.Errorf("proxyHint = %q; want none", got.proxyHint)
			}
			if tt.wantHintIn != "" && !strings.Contains(got.proxyHint, tt.wantHintIn) {
				t.Errorf("proxyHint = %q; want it to contain %q", got.proxyHint, tt.wantHintIn)
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
		got, err := parseBaseURL(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseBaseURL(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("parseBaseURL(%q) error %q leaks the password", tt.in, err)
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
	var pol urlPolicy
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

func TestOptionErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts []Option
	}{
		{"bad CIDR", []Option{WithTrustedProxies("10.0.0.0/8", "nope")}},
		{"bad base URL", []Option{WithPublicBaseURL("https://u:p@example.com")}},
		{"bad proxy header", []Option{WithProxyHeaders("X-Real-IP")}},
		{"bad body limit", []Option{WithMaxBodyBytes(0)}},
		{"nil option", []Option{nil}},
	}
	for _, tt := range tests {
		if err := New(VerifierFunc(nil), tt.opts...).Err(); err == nil {
			t.Errorf("%s: Err() = nil; want an error", tt.name)
		}
	}
	if err := New(nil).Err(); err == nil {
		t.Errorf("New(nil).Err() = nil; want an error")
	}
	ok := New(VerifierFunc(nil), WithTrustedProxies("", " "), WithPublicBaseURL(""), WithAccounts("", "AC1"))
	if err := ok.Err(); err != nil {
		t.Errorf("empty values: Err() = %v; want nil", err)
	}
	if diff := cmp.Diff([]string{"AC1"}, ok.accounts); diff != "" {
		t.Errorf("accounts mismatch (-want +got):\n%s", diff)
	}
}
