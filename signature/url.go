package signature

import (
	"strconv"
	"strings"
)

// urlParts is a URL split, without decoding anything, into the pieces the
// variants recombine: scheme + userinfo + host + port + rest == raw.
type urlParts struct {
	raw      string
	scheme   string // "https://" or "http://", in the case received
	userinfo string // "user:pass@", or ""
	host     string // "example.com" or "[2001:db8::1]"
	port     string // ":8443", ":" (empty port), or "" (none)
	rest     string // path, query and fragment
	defPort  string // ":443" for https, ":80" for http
}

// query returns the query of u, without '?' and fragment.
func (u *urlParts) query() string {
	_, tail := splitPath(u.rest)
	q, ok := strings.CutPrefix(tail, "?")
	if !ok {
		return ""
	}
	q, _, _ = strings.Cut(q, "#")
	return q
}

// splitURL splits raw into its parts. It is the one check of a request's
// URL: raw must be an absolute http:// or https:// URL (the scheme in any
// case) with a host, a port that is a number up to 65535 when there is
// one, and no byte below 0x21 (a control character or a space, which a
// request-target cannot carry) and no DEL (0x7f). Errors wrap
// ErrMalformedRequest and never quote the URL, which may hold a password.
func splitURL(raw string) (urlParts, error) {
	if raw == "" {
		return urlParts{}, errorf("empty URL")
	}
	if i := controlAt(raw); i >= 0 {
		return urlParts{}, errorf("URL has a space or control character at byte " + strconv.Itoa(i))
	}
	u := urlParts{raw: raw}
	switch {
	case hasPrefixFold(raw, "https://"):
		u.scheme, u.defPort = raw[:len("https://")], ":443"
	case hasPrefixFold(raw, "http://"):
		u.scheme, u.defPort = raw[:len("http://")], ":80"
	default:
		return urlParts{}, errorf("URL does not start with http:// or https://")
	}
	after := raw[len(u.scheme):]
	end := 0
	for end < len(after) && after[end] != '/' && after[end] != '?' && after[end] != '#' {
		end++
	}
	authority := after[:end]
	u.rest = after[end:]
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		u.userinfo = authority[:at+1]
		authority = authority[at+1:]
	}
	hostEnd := strings.IndexByte(authority, ':')
	if strings.HasPrefix(authority, "[") {
		rb := strings.IndexByte(authority, ']')
		if rb < 0 {
			return urlParts{}, errorf("URL has an unterminated IPv6 literal")
		}
		if rb+1 < len(authority) && authority[rb+1] != ':' {
			return urlParts{}, errorf("URL has characters after the IPv6 literal")
		}
		hostEnd = rb + 1
	} else if hostEnd < 0 {
		hostEnd = len(authority)
	}
	u.host, u.port = authority[:hostEnd], authority[hostEnd:]
	if u.host == "" || u.host == "[]" {
		return urlParts{}, errorf("URL has no host")
	}
	inner := u.host
	if u.host[0] == '[' {
		inner = u.host[1 : len(u.host)-1] // ends in ']' by construction
	}
	if strings.IndexByte(inner, '[') >= 0 || strings.IndexByte(inner, ']') >= 0 {
		return urlParts{}, errorf("URL has a misplaced bracket in its host")
	}
	if !validPort(u.port) {
		return urlParts{}, errorf("URL has an invalid port")
	}
	return u, nil
}

// controlAt returns the offset of the first byte of s below 0x21 or equal
// to 0x7f, or -1 when there is none. It tests eight bytes at a time.
func controlAt(s string) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := s[i : i+8]
		x := uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
			uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
		del := x ^ 0x7f*ones
		// A byte below 0x21, or a byte of del that is zero, sets its high bit.
		if ((x-0x21*ones)&^x|(del-ones)&^del)&highs != 0 {
			break
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c == 0x7f {
			return i
		}
	}
	return -1
}

// hasPrefixFold reports whether s starts with prefix, a lower-case scheme
// and "://", ignoring ASCII case. s must have no control character:
// setting bit 0x20 folds upper-case letters, leaves ':' and '/' as they
// are, and would map only control characters onto them.
func hasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := range len(prefix) {
		if s[i]|0x20 != prefix[i] {
			return false
		}
	}
	return true
}

// validPort reports whether p is "", ":" or ':' and a port number up to 65535.
func validPort(p string) bool {
	if p == "" {
		return true
	}
	digits := p[1:]
	if len(digits) > 5 {
		return false
	}
	n := 0
	for i := range len(digits) {
		c := digits[i]
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n <= 65535
}

// variant is one URL Twilio may have signed, as pieces of the received URL.
type variant struct {
	scheme, userinfo, host, port, rest string
}

// len returns the length of the variant's URL.
func (v variant) len() int {
	return len(v.scheme) + len(v.userinfo) + len(v.host) + len(v.port) + len(v.rest)
}

// write copies the variant's URL into dst, which must be v.len() long.
func (v variant) write(dst []byte) {
	n := copy(dst, v.scheme)
	n += copy(dst[n:], v.userinfo)
	n += copy(dst[n:], v.host)
	n += copy(dst[n:], v.port)
	copy(dst[n:], v.rest)
}

// String returns the variant's URL.
func (v variant) String() string {
	if v.scheme == "" && v.userinfo == "" && v.host == "" && v.port == "" {
		return v.rest // the URL as received: no copy
	}
	return v.scheme + v.userinfo + v.host + v.port + v.rest
}

// variants returns, in the order they are tried, the URLs Twilio may have
// signed for u: as received; with the default port added (when u has no
// port) or with the port removed (when it has one); and, when u carries user
// information, the same without it. No two are equal.
func (u *urlParts) variants(dst *[maxVariants]variant) []variant {
	vs := append(dst[:0], variant{rest: u.raw})
	vs = u.appendPortVariant(vs, u.userinfo)
	if u.userinfo != "" {
		vs = append(vs, variant{u.scheme, "", u.host, u.port, u.rest})
		vs = u.appendPortVariant(vs, "")
	}
	return vs
}

// appendPortVariant appends the variant of u with the given userinfo whose
// port differs from the received one: the default port added, or the port
// removed.
func (u *urlParts) appendPortVariant(vs []variant, userinfo string) []variant {
	if u.port != "" {
		return append(vs, variant{u.scheme, userinfo, u.host, "", u.rest})
	}
	return append(vs, variant{u.scheme, userinfo, u.host, u.defPort, u.rest})
}

// URLVariants returns the URLs a signature for rawURL is checked against, in
// order: rawURL as received; with the scheme's default port added (when it
// has no port) or with its port removed (when it has one); and, when rawURL
// carries user information (user:pass@), each of those without it. They are
// built by string surgery on rawURL, so nothing is re-encoded and no case is
// changed; IPv6 literals and user information are handled. A URL that
// [Validate] refuses gives its error, which wraps [ErrMalformedRequest].
func URLVariants(rawURL string) ([]string, error) {
	u, err := splitURL(rawURL)
	if err != nil {
		return nil, err
	}
	var buf [maxVariants]variant
	vs := u.variants(&buf)
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.String()
	}
	return out, nil
}

// RedactURL returns rawURL with the password of its user information, if
// any, replaced by "xxxxx", for logs and responses. Nothing else changes. A
// URL that does not split is returned with everything after its scheme
// replaced, since it may hold a password that cannot be located.
func RedactURL(rawURL string) string {
	u, err := splitURL(rawURL)
	if err != nil {
		if i := strings.Index(rawURL, "://"); i >= 0 && strings.Contains(rawURL[i:], "@") {
			return rawURL[:i+3] + "xxxxx"
		}
		return rawURL
	}
	user, _, hasPassword := strings.Cut(strings.TrimSuffix(u.userinfo, "@"), ":")
	if !hasPassword {
		return rawURL
	}
	return u.scheme + user + ":xxxxx@" + u.host + u.port + u.rest
}
