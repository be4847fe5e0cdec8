package signature

import (
	"crypto/subtle"
	"net/url"
	"sort"
	"strings"
)

// Diagnose explains a mismatch: called after [Check] returned [ErrMismatch]
// for the same arguments, it looks for a near miss, a small change to the
// URL or the parameters (http instead of https, a port dropped by a proxy, a
// different host case, a trailing slash, a re-encoded query, '+' left
// undecoded, a dropped empty parameter, ...) under which one of creds
// produces the signature, and returns a short hint for an operator naming
// it, or "" when it finds none. The hint never contains a secret or a
// parameter value. Diagnose never makes a request valid: a near miss is
// still a mismatch.
//
// Diagnose computes at most 256 MACs, so it costs up to about a hundred
// times as much as [Check]; a service that answers untrusted callers may
// want to limit how often it runs.
func Diagnose(req *Request, creds []Credential) string {
	d, ok := newDiagnosis(req, creds)
	if !ok {
		return ""
	}
	if d.matches(req.URL, d.pairs, true) {
		return "signature was made with an empty secret: the sender has no auth token configured"
	}
	for _, c := range urlNearMisses(d.u) {
		if d.matches(c.url, d.pairs, false) {
			return c.hint
		}
	}
	if !d.bodyMode {
		for _, c := range paramNearMisses(req, d.u, d.pairs, d.wire) {
			if d.matches(c.url, c.pairs, false) {
				return c.hint
			}
		}
	}
	return ""
}

// diagnosis is a request prepared for trying near misses.
type diagnosis struct {
	u        urlParts
	pairs    []kv // as signed, in no particular order
	wire     []kv // as sent
	bodyMode bool
	budget   int // MACs left to compute
	keys     []key
	want     [32]byte
	n        int
}

// newDiagnosis prepares req, or reports false when Check would not have
// returned ErrMismatch for a reason a near miss could explain.
func newDiagnosis(req *Request, creds []Credential) (diagnosis, bool) {
	d := diagnosis{budget: diagnoseBudget}
	var ok bool
	if d.n, ok = decodeSignature(req.Signature, &d.want); !ok {
		return d, false
	}
	var s scratch
	d.keys = append([]key(nil), s.keys(creds).list...)
	if len(d.keys) == 0 {
		return d, false
	}
	u, err := splitURL(req.URL)
	if err != nil {
		return d, false
	}
	d.u = u
	in, err := s.input(req, &u)
	if err != nil {
		return d, false
	}
	d.bodyMode = in.bodyMode
	d.pairs = append([]kv(nil), in.pairs...)
	switch {
	case d.bodyMode:
	case req.HasBody:
		d.wire, _ = decodeForm(req.Body, nil)
	default:
		for k, vs := range req.Params {
			for _, v := range vs {
				d.wire = append(d.wire, kv{k, v})
			}
		}
	}
	return d, true
}

// matches reports whether the signature is valid for rawURL (or one of its
// variants) and pairs under one of the credentials, or, with empty, under
// the empty secret of each credential's algorithm.
func (d *diagnosis) matches(rawURL string, pairs []kv, empty bool) bool {
	u, err := splitURL(rawURL)
	if err != nil {
		return false
	}
	var s scratch
	vs := u.variants(&s.variants)
	m := s.message(pairs, maxLen(vs))
	keys := d.keys
	if empty {
		var k1, k256 key
		k1.init(HMACSHA1, "")
		k256.init(HMACSHA256, "")
		keys = []key{k1, k256}
	}
	for _, v := range vs {
		for i := range keys {
			if keys[i].macLen() != d.n || d.budget <= 0 {
				continue
			}
			d.budget--
			mac, _ := m.sum(&keys[i], v)
			if subtle.ConstantTimeCompare(mac[:d.n], d.want[:d.n]) == 1 {
				return true
			}
		}
	}
	return false
}

// diagnoseBudget is the most MACs one Diagnose call computes.
const diagnoseBudget = 256

// nearMiss is a changed request and the hint that names the change.
type nearMiss struct {
	url   string
	pairs []kv
	hint  string
}

// urlNearMisses returns the URLs close to u that a proxy, a framework or a
// configuration mistake commonly turns into u.
func urlNearMisses(u urlParts) []nearMiss {
	var out []nearMiss
	add := func(rawURL, hint string) {
		if rawURL != u.raw {
			out = append(out, nearMiss{url: rawURL, hint: hint})
		}
	}
	scheme := strings.ToLower(strings.TrimSuffix(u.scheme, "://"))
	afterScheme := u.raw[len(u.scheme):]
	switch scheme {
	case "http":
		add("https://"+afterScheme, "signature matches the https:// form of this URL: a proxy terminates TLS; "+
			"configure the public base URL or trust X-Forwarded-Proto from the proxy")
	case "https":
		add("http://"+afterScheme, "signature matches the http:// form of this URL: "+
			"the webhook is configured in Twilio with http://")
	}
	if lower := strings.ToLower(u.scheme); lower != u.scheme {
		add(lower+afterScheme, "signature matches this URL with a lower-case scheme: pass the scheme exactly as configured in Twilio")
	}
	if lower := strings.ToLower(u.host); lower != u.host {
		add(u.scheme+u.userinfo+lower+u.port+u.rest, "signature matches this URL with the host in lower case: "+
			"pass the host exactly as configured in Twilio")
	}
	if u.port == "" {
		for _, p := range []string{":8443", ":8080", ":8000", ":3000", ":5000", ":443", ":80"} {
			if p != u.defPort {
				add(u.scheme+u.userinfo+u.host+p+u.rest, "signature matches this URL with port "+p+
					": a proxy dropped the port Twilio requested; include it in the public base URL")
			}
		}
	}
	path, tail := splitPath(u.rest)
	if strings.HasSuffix(path, "/") {
		add(u.scheme+u.userinfo+u.host+u.port+strings.TrimSuffix(path, "/")+tail,
			"signature matches this URL without its trailing slash: pass the path exactly as Twilio requested it")
	} else {
		add(u.scheme+u.userinfo+u.host+u.port+path+"/"+tail,
			"signature matches this URL with a trailing slash: pass the path exactly as Twilio requested it")
	}
	if q := strings.IndexByte(u.rest, '?'); q >= 0 {
		base := u.raw[:len(u.raw)-len(u.rest)+q]
		query, frag := u.rest[q:], ""
		if h := strings.IndexByte(query, '#'); h >= 0 {
			query, frag = query[:h], query[h:]
		}
		reencoded := "signature matches this URL with its query encoded differently (%s): " +
			"pass the URL exactly as received, without decoding or re-encoding it"
		add(base+strings.ReplaceAll(query, "+", "%20")+frag, strings.Replace(reencoded, "%s", "%20 for +", 1))
		add(base+strings.ReplaceAll(query, "%20", "+")+frag, strings.Replace(reencoded, "%s", "+ for %20", 1))
		add(base+strings.ReplaceAll(query, "'", "%27")+frag, strings.Replace(reencoded, "%s", "%27 for '", 1))
		add(base+strings.ReplaceAll(query, "%27", "'")+frag, strings.Replace(reencoded, "%s", "' for %27", 1))
		add(base+hexCase(query, strings.ToUpper)+frag, strings.Replace(reencoded, "%s", "upper-case %-escapes", 1))
		add(base+hexCase(query, strings.ToLower)+frag, strings.Replace(reencoded, "%s", "lower-case %-escapes", 1))
		add(base+sortQuery(query)+frag, "signature matches this URL with its query parameters in another order: "+
			"pass the query exactly as Twilio requested it")
		add(base+frag, "signature matches this URL without its query string: the query was added after Twilio signed")
		add(base+query, "signature matches this URL without its fragment")
	} else if h := strings.IndexByte(u.raw, '#'); h >= 0 {
		add(u.raw[:h], "signature matches this URL without its fragment")
	}
	return out
}

// splitPath splits rest into the path and what follows it (query, fragment).
func splitPath(rest string) (path, tail string) {
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		return rest[:i], rest[i:]
	}
	return rest, ""
}

// hexCase applies conv to the two hex digits of every %-escape in s.
func hexCase(s string, conv func(string) string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '%')
		if i < 0 || i+2 >= len(s) {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i+1])
		b.WriteString(conv(s[i+1 : i+3]))
		s = s[i+3:]
	}
}

// sortQuery sorts the '&'-separated fields of query ("?a=1&b=2").
func sortQuery(query string) string {
	fields := strings.Split(strings.TrimPrefix(query, "?"), "&")
	sort.Strings(fields)
	return "?" + strings.Join(fields, "&")
}

// droppable are Twilio parameters that are often empty, and so dropped by
// frameworks that discard empty form fields.
var droppable = func() []string {
	var names []string
	for _, who := range []string{"From", "To", "Called", "Caller"} {
		for _, what := range []string{"City", "State", "Zip", "Country"} {
			names = append(names, who+what)
		}
	}
	return append(names, "CallerName", "ForwardedFrom", "ParentCallSid", "MessagingServiceSid", "AddOns")
}()

// paramNearMisses returns parameter lists close to pairs that a framework or
// a hand-written signer commonly turns into pairs.
func paramNearMisses(req *Request, u urlParts, pairs, wire []kv) []nearMiss {
	var out []nearMiss
	add := func(rawURL string, p []kv, hint string) {
		out = append(out, nearMiss{url: rawURL, pairs: p, hint: hint})
	}
	if len(pairs) > 0 {
		add(req.URL, nil, "signature covers the URL only, as for a GET or JSON webhook: do not pass the form fields as params")
	} else if u.query() != "" {
		if vals, err := url.ParseQuery(u.query()); err == nil {
			var p []kv
			for k, vs := range vals {
				for _, v := range vs {
					p = append(p, kv{k, v})
				}
			}
			add(u.raw[:len(u.raw)-len(u.rest)]+strings.SplitN(u.rest, "?", 2)[0], p,
				"signature matches a form POST of this URL's query parameters: pass them as params, not in the URL")
		}
	}
	mapped := func(f func(string) (string, bool)) ([]kv, bool) {
		changed := false
		p := make([]kv, len(pairs))
		for i, e := range pairs {
			v, ok := f(e.v)
			changed = changed || ok
			p[i] = kv{e.k, v}
		}
		return p, changed
	}
	if p, ok := mapped(func(v string) (string, bool) {
		return strings.ReplaceAll(v, "+", " "), strings.Contains(v, "+")
	}); ok {
		add(req.URL, p, "signature matches the params with '+' decoded as a space: decode form fields as "+
			"application/x-www-form-urlencoded, or send the raw body")
	}
	if p, ok := mapped(func(v string) (string, bool) {
		d, err := url.QueryUnescape(v)
		return d, err == nil && d != v
	}); ok {
		add(req.URL, p, "signature matches the params percent-decoded: pass decoded form fields, or send the raw body")
	}
	present := map[string]bool{}
	for _, e := range pairs {
		present[e.k] = true
	}
	var missing []string
	for _, name := range droppable {
		if !present[name] {
			missing = append(missing, name)
		}
	}
	withEmpty := func(names []string) []kv {
		p := append([]kv(nil), pairs...)
		for _, n := range names {
			p = append(p, kv{n, ""})
		}
		return p
	}
	if len(pairs) > 0 && len(missing) > 0 {
		var sets [][]string
		sets = append(sets, missing)
		for _, group := range []string{"From", "To", "Called", "Caller"} {
			var g []string
			for _, n := range missing {
				if strings.HasPrefix(n, group) && len(n) > len(group) && strings.Contains("CSZ", n[len(group):len(group)+1]) {
					g = append(g, n)
				}
			}
			if len(g) > 0 {
				sets = append(sets, g)
			}
		}
		var cities []string
		for _, n := range missing {
			if strings.HasSuffix(n, "City") || strings.HasSuffix(n, "State") || strings.HasSuffix(n, "Zip") {
				cities = append(cities, n)
			}
		}
		sets = append(sets, cities)
		for _, n := range missing {
			sets = append(sets, []string{n})
		}
		for _, set := range sets {
			if len(set) == 0 {
				continue
			}
			add(req.URL, withEmpty(set), "signature matches with the empty parameter(s) "+strings.Join(set, ", ")+
				" added: pass every form field, including empty ones (or send the raw body)")
		}
	}
	if repeated(pairs) {
		add(req.URL, firstOrLast(wire, false), "signature covers only the first value of each repeated parameter: "+
			"the signer does not follow Twilio's algorithm (it signs every distinct value, sorted)")
		add(req.URL, firstOrLast(wire, true), "signature covers only the last value of each repeated parameter: "+
			"the signer does not follow Twilio's algorithm (it signs every distinct value, sorted)")
	}
	return out
}

// repeated reports whether some key of pairs has several distinct values.
func repeated(pairs []kv) bool {
	first := map[string]string{}
	for _, e := range pairs {
		if v, ok := first[e.k]; ok && v != e.v {
			return true
		}
		first[e.k] = e.v
	}
	return false
}

// firstOrLast keeps one value per key of pairs, in the order sent: the
// first, or the last.
func firstOrLast(pairs []kv, last bool) []kv {
	pos := map[string]int{}
	var out []kv
	for _, e := range pairs {
		i, seen := pos[e.k]
		switch {
		case !seen:
			pos[e.k] = len(out)
			out = append(out, e)
		case last:
			out[i] = e
		}
	}
	return out
}
