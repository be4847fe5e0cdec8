package webhookreq

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/twilioguard/twilioguard/internal/bound"
	"github.com/twilioguard/twilioguard/signature"
)

// Headers a forward-auth gateway sets on its auth request to describe the
// request it received (Traefik's convention, also Caddy's and APISIX's),
// next to X-Forwarded-Proto and X-Forwarded-Host.
const (
	// HeaderForwardedMethod is the method of the original request.
	HeaderForwardedMethod = "X-Forwarded-Method"
	// HeaderForwardedURI is the request-target (path and query) of the
	// original request.
	HeaderForwardedURI = "X-Forwarded-Uri"
)

// Original is the request a gateway asks a forward-auth endpoint about,
// rebuilt by [ForwardAuthOriginal].
type Original struct {
	// Method is the original request's method.
	Method string
	// Origin is "scheme://host[:port]" of the original request as the
	// gateway received it.
	Origin string
	// Target is the original raw request-target: path and query, never
	// re-encoded.
	Target string
	// FromHeaders is true when the request-target came from
	// X-Forwarded-Uri; the query of the auth URL is then the gateway's own
	// (free for settings), otherwise it is the original request's.
	FromHeaders bool
}

// ForwardAuthOriginal rebuilds the original request from a forward-auth
// request r that arrived at path prefix (for example "/forward-auth"):
//
//   - with an X-Forwarded-Uri header (Traefik's forwardAuth, Caddy's
//     forward_auth, APISIX's forward-auth): the method from
//     X-Forwarded-Method (else r's), the scheme from X-Forwarded-Proto
//     (else the connection's), the host from X-Forwarded-Host (else the
//     Host header) and the request-target from X-Forwarded-Uri;
//   - without one (Envoy's HTTP ext_authz with path_prefix, Istio's
//     envoyExtAuthzHttp): r's method, the host from the Host header, the
//     scheme from X-Forwarded-Proto (else the connection's), and the
//     request-target from r's raw request-target after prefix.
//
// Of a comma-separated X-Forwarded-Proto or X-Forwarded-Host the right-most
// entry (the one the gateway wrote) is used. The gateway is the direct peer
// and sets these headers itself, so they are believed: configure it not to
// pass its clients' copies through. An error says which part is malformed;
// the request cannot be decided.
func ForwardAuthOriginal(r *http.Request, prefix string) (Original, error) {
	o := Original{Method: r.Method}
	target := signature.RequestTarget(r)
	if uris := r.Header.Values(HeaderForwardedURI); len(uris) > 0 {
		if len(uris) > 1 {
			return o, fmt.Errorf("%s is repeated", HeaderForwardedURI)
		}
		target, o.FromHeaders = uris[0], true
		if m := r.Header.Get(HeaderForwardedMethod); m != "" {
			o.Method = m
		}
	} else {
		rest, ok := strings.CutPrefix(target, prefix)
		if !ok || (rest != "" && rest[0] != '/' && rest[0] != '?') {
			return o, fmt.Errorf("request-target %s is not under %s and there is no %s",
				strconv.Quote(bound.Text(target, bound.TextBytes)), prefix, HeaderForwardedURI)
		}
		if rest == "" || rest[0] == '?' {
			rest = "/" + rest
		}
		target = rest
	}
	if !validTarget(target) {
		return o, fmt.Errorf("original request-target %s: want an origin-form path and query",
			strconv.Quote(bound.Text(target, bound.TextBytes)))
	}
	o.Target = target
	if !validMethod(o.Method) {
		return o, fmt.Errorf("%s %s: not an HTTP method", HeaderForwardedMethod, strconv.Quote(bound.Text(o.Method, bound.LabelBytes)))
	}

	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if v := lastValue(r.Header, headerXForwardedProto); v != "" {
		s, ok := validScheme(v)
		if !ok {
			return o, fmt.Errorf("%s %s: want http or https", headerXForwardedProto, strconv.Quote(bound.Text(v, bound.LabelBytes)))
		}
		scheme = s
	}
	host := r.Host
	if o.FromHeaders {
		if v := lastValue(r.Header, headerXForwardedHost); v != "" {
			host = v
		}
	}
	if !validHost(host) {
		return o, fmt.Errorf("original host %s: want host[:port]", strconv.Quote(bound.Text(host, bound.TextBytes)))
	}
	o.Origin = scheme + "://" + host
	return o, nil
}

// validTarget reports whether t is an origin-form request-target: it starts
// with "/" and holds only visible ASCII characters.
func validTarget(t string) bool {
	if !strings.HasPrefix(t, "/") {
		return false
	}
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] >= 0x7f {
			return false
		}
	}
	return true
}

// validMethod reports whether m is an RFC 9110 token of reasonable length.
func validMethod(m string) bool {
	if m == "" || len(m) > 32 {
		return false
	}
	for i := 0; i < len(m); i++ {
		if !isTchar(m[i]) {
			return false
		}
	}
	return true
}

// BodyNotForwarded reports whether a forward-auth request is about a form
// POST whose body did not arrive: the original method is POST, its content
// type is a form or absent, and the auth request carried no body. Twilio
// never sends such a POST without a body, so its signature covers
// parameters that are missing here (Caddy's forward_auth and nginx's
// auth_request never send the body; Traefik sends it only with
// forwardBody).
func BodyNotForwarded(method, contentType string, bodyLen int) bool {
	if method != http.MethodPost || bodyLen > 0 {
		return false
	}
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.TrimSpace(mt)
	return mt == "" || strings.EqualFold(mt, "application/x-www-form-urlencoded")
}
