package webhookreq

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/twilioguard/twilioguard/internal/bound"
	"github.com/twilioguard/twilioguard/signature"
)

// The forwarded headers the package knows. X-Forwarded-For is never a
// source of the URL; it only tells which hop wrote which list entry.
const (
	headerForwarded       = "Forwarded"
	headerXForwardedProto = "X-Forwarded-Proto"
	headerXForwardedHost  = "X-Forwarded-Host"
	headerXForwardedPort  = "X-Forwarded-Port"
	headerXOriginalHost   = "X-Original-Host"
	headerXForwardedFor   = "X-Forwarded-For"
)

// ProxyHeaders lists, in order of precedence, the forwarding headers read
// from a trusted proxy by default.
var ProxyHeaders = []string{
	headerForwarded, headerXForwardedProto, headerXForwardedHost,
	headerXForwardedPort, headerXOriginalHost,
}

// URLPolicy rebuilds the public URL Twilio requested from an incoming
// request. Create one with [NewURLPolicy]; it is safe for concurrent use.
type URLPolicy struct {
	// baseURL, when set, is the only source of scheme and host: the URL is
	// baseURL + the raw request-target. No header is read.
	baseURL string
	// trusted lists the peers whose forwarded headers are believed.
	trusted []netip.Prefix
	// headers is the set of forwarded headers read from trusted peers
	// (canonical names).
	headers map[string]bool
}

// URLConfig configures a [URLPolicy]. The zero value rebuilds URLs from the
// connection and trusts no proxy.
type URLConfig struct {
	// PublicBaseURL is the scheme, host and optional path prefix Twilio is
	// configured with ("https://example.com", or "https://example.com/twilio"
	// when a proxy strips /twilio). The URL is this base followed by the raw
	// request-target, and no header is read: the safest setting behind any
	// proxy. It wins over TrustedProxies.
	PublicBaseURL string
	// TrustedProxies lists the peers (CIDRs such as "10.0.0.0/8" or single
	// addresses such as "127.0.0.1") whose forwarding headers are believed.
	// Empty entries are skipped.
	TrustedProxies []string
	// ProxyHeaders restricts the forwarding headers read from trusted
	// proxies to a subset of [ProxyHeaders] (any case); nil reads them all.
	ProxyHeaders []string
}

// NewURLPolicy checks cfg and returns its policy. Errors name the bad
// setting and never repeat a password.
func NewURLPolicy(cfg URLConfig) (*URLPolicy, error) {
	p := &URLPolicy{headers: map[string]bool{}}
	var errs []error
	if cfg.PublicBaseURL != "" {
		base, err := ParseBaseURL(cfg.PublicBaseURL)
		if err != nil {
			errs = append(errs, err)
		}
		p.baseURL = base
	}
	for _, s := range cfg.TrustedProxies {
		if strings.TrimSpace(s) == "" {
			continue
		}
		pfx, err := parsePrefix(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.trusted = append(p.trusted, pfx)
	}
	names := cfg.ProxyHeaders
	if names == nil {
		names = ProxyHeaders
	}
	for _, n := range names {
		canon := http.CanonicalHeaderKey(strings.TrimSpace(n))
		if !slices.Contains(ProxyHeaders, canon) {
			errs = append(errs, fmt.Errorf("proxy header %q: not one of %s", bound.Text(n, 64), strings.Join(ProxyHeaders, ", ")))
			continue
		}
		p.headers[canon] = true
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

// HasBaseURL reports whether the policy uses a public base URL.
func (p *URLPolicy) HasBaseURL() bool { return p.baseURL != "" }

// TrustsProxies reports whether any proxy is trusted.
func (p *URLPolicy) TrustsProxies() bool { return len(p.trusted) > 0 }

// PublicURL is the public URL of one request and how it was found.
type PublicURL struct {
	// URL is the URL Twilio requested, as far as the request tells.
	URL string
	// From names the source of scheme and host: "base_url", "forwarded",
	// "x-forwarded", "x-original-host" or "connection".
	From string
	// ProxyHint, when not empty, tells an operator why the URL may not be
	// the one Twilio signed (for example headers ignored from an untrusted
	// peer). It never contains a secret.
	ProxyHint string
}

// Rebuild returns the URL Twilio requested for r.
//
// With a base URL the result is the base URL followed by the raw
// request-target (r.RequestURI, never a re-encoded URL).
//
// Otherwise scheme and host come from the connection (TLS or not, the Host
// header), and, only when the direct peer (r.RemoteAddr) is in a trusted
// prefix, from the forwarded headers. For each part the first source present
// wins:
//
//	scheme: Forwarded proto, X-Forwarded-Proto, the connection
//	host:   Forwarded host, X-Forwarded-Host, X-Original-Host, the Host header
//	port:   X-Forwarded-Port replaces the port of a host not taken from Forwarded
//
// Multiple hops use the right-most untrusted rule. In a Forwarded header the
// element used is the right-most one whose for= node is not a trusted proxy
// (that element was written by a trusted proxy about a hop it did not trust;
// elements further left may be forged); when every for= node is trusted the
// left-most element is used. X-Forwarded-Proto/Host/Port lists are read the
// same way when they have exactly as many entries as X-Forwarded-For (the
// entries are then taken to be written hop by hop); otherwise their
// right-most entry (the one the direct peer wrote) is used. Values that are
// not a valid scheme (http or https), host or port are ignored.
func (p *URLPolicy) Rebuild(r *http.Request) PublicURL {
	target := signature.RequestTarget(r)
	if p.baseURL != "" {
		return PublicURL{URL: p.baseURL + target, From: "base_url"}
	}
	scheme, host, from := "http", r.Host, "connection"
	if r.TLS != nil {
		scheme = "https"
	}
	peer, peerOK := parseNode(r.RemoteAddr)
	if !peerOK || !p.isTrusted(peer) {
		var hint string
		if present := p.presentHeaders(r.Header); len(present) > 0 {
			hint = fmt.Sprintf("ignored %s from peer %s, which is not a trusted proxy; "+
				"if it is your proxy, add it to the trusted proxies, or configure the public base URL",
				strings.Join(present, ", "), Peer(r.RemoteAddr))
		} else if scheme == "http" {
			hint = "URL rebuilt from a plain-HTTP connection with no forwarded headers; " +
				"behind a TLS-terminating proxy configure the public base URL or trusted proxies"
		}
		return PublicURL{URL: scheme + "://" + host + target, From: from, ProxyHint: hint}
	}

	var schemeSet, hostFromForwarded bool
	if p.headers[headerForwarded] {
		if lines := r.Header.Values(headerForwarded); len(lines) > 0 {
			if elems, err := parseForwarded(lines); err == nil && len(elems) > 0 {
				e := elems[0]
				for i := len(elems) - 1; i >= 0; i-- {
					if a, ok := parseNode(elems[i].forNode); !ok || !p.isTrusted(a) {
						e = elems[i]
						break
					}
				}
				if s, ok := validScheme(e.proto); ok {
					scheme, schemeSet, from = s, true, "forwarded"
				}
				if validHost(e.host) {
					host, hostFromForwarded, from = e.host, true, "forwarded"
				}
			}
		}
	}

	// Which X-Forwarded-* entry belongs to the right-most untrusted hop.
	xff := listValues(r.Header, headerXForwardedFor)
	hop := len(xff) - 1
	for hop > 0 {
		if a, ok := parseNode(xff[hop]); ok && p.isTrusted(a) {
			hop--
			continue
		}
		break
	}
	pick := func(name string) string {
		if !p.headers[name] {
			return ""
		}
		vals := listValues(r.Header, name)
		switch {
		case len(vals) == 0:
			return ""
		case len(vals) == len(xff):
			return vals[hop]
		default:
			return vals[len(vals)-1]
		}
	}
	if !schemeSet {
		if s, ok := validScheme(pick(headerXForwardedProto)); ok {
			scheme, from = s, "x-forwarded"
		}
	}
	if !hostFromForwarded {
		if h := pick(headerXForwardedHost); validHost(h) {
			host, from = h, "x-forwarded"
		} else if h := lastValue(r.Header, headerXOriginalHost); p.headers[headerXOriginalHost] && validHost(h) {
			host = h
			if from == "connection" {
				from = "x-original-host"
			}
		}
		if port := pick(headerXForwardedPort); validPort(port) {
			host = withPort(host, port, scheme)
			if from == "connection" {
				from = "x-forwarded"
			}
		}
	}
	return PublicURL{URL: scheme + "://" + host + target, From: from}
}

func (p *URLPolicy) isTrusted(a netip.Addr) bool {
	for _, pfx := range p.trusted {
		if pfx.Contains(a) {
			return true
		}
	}
	return false
}

// presentHeaders returns the enabled forwarded headers r carries.
func (p *URLPolicy) presentHeaders(h http.Header) []string {
	var present []string
	for _, name := range ProxyHeaders {
		if p.headers[name] && len(h.Values(name)) > 0 {
			present = append(present, name)
		}
	}
	return present
}

// ParseBaseURL checks a public base URL ("https://example.com" or
// "https://example.com/prefix": scheme http or https in any case, a host, an
// optional port and path, no user info, query or fragment) and returns it
// without a trailing slash. The string is kept as written, never
// re-serialised. Errors never repeat user info.
func ParseBaseURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", errors.New("public base URL does not parse: want http(s)://host[:port][/prefix]")
	}
	if u.User != nil || strings.Contains(u.Opaque, "@") {
		return "", errors.New("public base URL must not contain user info (Twilio signs the URL without it)")
	}
	quoted := strconv.Quote(bound.Text(s, bound.TextBytes))
	switch {
	case !strings.EqualFold(u.Scheme, "http") && !strings.EqualFold(u.Scheme, "https"):
		return "", fmt.Errorf("public base URL %s: scheme must be http or https", quoted)
	case u.Host == "" || u.Opaque != "":
		return "", fmt.Errorf("public base URL %s: no host", quoted)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.ContainsAny(s, "?#"):
		return "", fmt.Errorf("public base URL %s: must not have a query or fragment", quoted)
	}
	return strings.TrimRight(s, "/"), nil
}

// parsePrefix accepts a CIDR ("10.0.0.0/8", "fd00::/8") or a single address
// ("127.0.0.1", "::1").
func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("trusted proxy %q: %w", s, err)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("trusted proxy %q: %w", s, err)
	}
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// listValues returns the comma-separated entries of every line of header
// name, trimmed, in order.
func listValues(h http.Header, name string) []string {
	var out []string
	for _, line := range h.Values(name) {
		for v := range strings.SplitSeq(line, ",") {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

// lastValue returns the right-most entry of header name, or "".
func lastValue(h http.Header, name string) string {
	vals := listValues(h, name)
	if len(vals) == 0 {
		return ""
	}
	return vals[len(vals)-1]
}

func validScheme(s string) (string, bool) {
	s = strings.TrimSpace(s)
	switch {
	case strings.EqualFold(s, "https"):
		return "https", true
	case strings.EqualFold(s, "http"):
		return "http", true
	}
	return "", false
}

// validHost reports whether h is a host with an optional port: a name or
// IPv4 address of unreserved characters, or a bracketed IPv6 address.
func validHost(h string) bool {
	if h == "" || len(h) > 300 {
		return false
	}
	name, port := h, ""
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return false
		}
		if a, err := netip.ParseAddr(h[1:end]); err != nil || !a.Is6() {
			return false
		}
		rest := h[end+1:]
		if rest == "" {
			return true
		}
		if rest[0] != ':' {
			return false
		}
		return validPort(rest[1:])
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		name, port = h[:i], h[i+1:]
		if !validPort(port) {
			return false
		}
	}
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-' || c == '.' || c == '_' || c == '~' || c == '%':
		default:
			return false
		}
	}
	return true
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535
}

// withPort replaces the port of host with port, or drops it when port is the
// default port of scheme.
func withPort(host, port, scheme string) string {
	if strings.HasPrefix(host, "[") {
		if end := strings.IndexByte(host, ']'); end >= 0 {
			host = host[:end+1]
		}
	} else if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		return host
	}
	return host + ":" + port
}

// Peer returns the address part of a RemoteAddr (the direct peer) for logs.
func Peer(remoteAddr string) string {
	if a, ok := parseNode(remoteAddr); ok {
		return a.String()
	}
	if remoteAddr == "" {
		return "(unknown)"
	}
	return remoteAddr
}
