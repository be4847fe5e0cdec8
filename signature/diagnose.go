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
// Its cost is bounded by what it hashes: [DiagnoseBudget] with
// [DefaultDiagnoseBudget] of the request's size, so that for a large
// request a diagnosis costs about twice a valid Check (and one over 1 MiB
// is not diagnosed), while every near miss of a typical webhook is tried.
func Diagnose(req *Request, creds []Credential) string {
	hint, _ := DiagnoseBudget(req, creds, -1)
	return hint
}

// maxDiagnosed is the largest request size Diagnose looks at.
const maxDiagnosed = 1 << 20

// DefaultDiagnoseBudget returns the bytes [Diagnose] may hash for a request
// of the given size: its URL plus its body, or plus the keys and values of
// its Params or Fields, which bounds the length of its signed string. That
// is 64 KiB, enough for every near miss of a typical webhook (an SMS or
// voice webhook needs under 30 KiB), plus twice the size, so that on a large
// request the most common near miss, the URL with the other scheme
// (https:// for http:// or the reverse) and its port variant, is still
// tried; and 0, no diagnosis, for a request over 1 MiB.
func DefaultDiagnoseBudget(size int) int {
	if size > maxDiagnosed {
		return 0
	}
	return 64<<10 + 2*size
}

// DiagnoseBudget is [Diagnose] with a bound: it tries near misses, most
// common first, while the bytes it hashes stay within maxBytes, and returns
// the hint ("" when it finds none within the bound) and how many bytes it
// hashed. Each MAC it computes hashes a URL and parameters: a signed
// string. A negative maxBytes means [DefaultDiagnoseBudget] of the
// request's size.
func DiagnoseBudget(req *Request, creds []Credential, maxBytes int) (hint string, hashed int) {
	if maxBytes < 0 {
		maxBytes = DefaultDiagnoseBudget(req.Size())
	}
	if maxBytes == 0 {
		return "", 0
	}
	d, ok := newDiagnosis(req, creds)
	if !ok {
		return "", 0
	}
	d.budget = maxBytes
	hint = d.run(req)
	return hint, d.hashed
}

// Size returns the length of req's URL plus its body, or plus the keys and
// values of its Params and Fields: the size [DefaultDiagnoseBudget] takes.
func (req *Request) Size() int {
	n := len(req.URL)
	if req.HasBody {
		return n + len(req.Body)
	}
	for k, vs := range req.Params {
		for _, v := range vs {
			n += len(k) + len(v)
		}
	}
	for _, f := range req.Fields {
		n += len(f.Key) + len(f.Value)
	}
	return n
}

// run tries the near misses of req in order: the URL's, an empty secret,
// then the parameters'.
func (d *diagnosis) run(req *Request) string {
	if !d.affordable() {
		return "" // not even one MAC: skip laying the parameters out
	}
	misses := urlNearMisses(d.u)
	room := len(req.URL)
	for _, c := range misses {
		room = max(room, len(c.url))
	}
	room += len(":443") // a variant may add the default port
	var s scratch
	m := s.message(d.pairs, room)
	// Check tried the URL as received and its variants already.
	for _, v := range d.u.variants(&s.variants) {
		d.tried[v.String()] = true
	}
	for _, c := range misses {
		if d.matches(&m, c.url, d.keys) {
			return c.hint
		}
	}
	var empty [2]key
	empty[0].init(HMACSHA1, "")
	empty[1].init(HMACSHA256, "")
	clear(d.tried)
	if d.matches(&m, req.URL, empty[:]) {
		return "signature was made with an empty secret: the sender has no auth token configured"
	}
	if d.bodyMode {
		return ""
	}
	return d.paramNearMisses(req)
}

// diagnosis is a request prepared for trying near misses.
type diagnosis struct {
	u        urlParts
	pairs    []kv // as signed, in no particular order
	size     int  // length of the parameters as signed
	bodyMode bool
	keys     []key
	want     [32]byte
	n        int
	budget   int             // bytes that may be hashed
	hashed   int             // bytes hashed so far
	spent    bool            // a MAC did not fit in the budget: stop
	tried    map[string]bool // URL variants tried with pairs
}

// newDiagnosis prepares req, or reports false when Check would not have
// returned ErrMismatch for a reason a near miss could explain.
func newDiagnosis(req *Request, creds []Credential) (diagnosis, bool) {
	d := diagnosis{tried: map[string]bool{}}
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
	for _, e := range d.pairs {
		d.size += len(e.k) + len(e.v)
	}
	return d, true
}

// matches reports whether the signature is valid for a variant of rawURL
// followed by the parameters laid out in m, under one of keys. It skips
// variants tried before with the same parameters and stops, setting
// d.spent, at the first MAC that would take the bytes hashed over the
// budget.
func (d *diagnosis) matches(m *message, rawURL string, keys []key) bool {
	if d.spent {
		return false
	}
	u, err := splitURL(rawURL)
	if err != nil {
		return false
	}
	var buf [maxVariants]variant
	for _, v := range u.variants(&buf) {
		vs := v.String()
		if d.tried[vs] {
			continue
		}
		d.tried[vs] = true
		for i := range keys {
			if keys[i].macLen() != d.n {
				continue
			}
			cost := v.len() + len(m.buf) - m.p
			if d.hashed+cost > d.budget {
				d.spent = true
				return false
			}
			d.hashed += cost
			mac, _ := m.sum(&keys[i], v)
			if subtle.ConstantTimeCompare(mac[:d.n], d.want[:d.n]) == 1 {
				return true
			}
		}
	}
	return false
}

// matchesParams is matches for the URL as received and other parameters.
func (d *diagnosis) matchesParams(rawURL string, pairs []kv) bool {
	if d.spent {
		return false
	}
	clear(d.tried)
	var s scratch
	m := s.message(pairs, len(rawURL)+len(":443"))
	return d.matches(&m, rawURL, d.keys)
}

// affordable reports whether one more MAC over about the request's signed
// string fits in the budget; it is asked before a candidate's parameters
// are built, which costs as much as the request is long.
func (d *diagnosis) affordable() bool {
	if d.hashed+len(d.u.raw)+d.size > d.budget {
		d.spent = true
	}
	return !d.spent
}

// nearMiss is a changed URL and the hint that names the change.
type nearMiss struct {
	url  string
	hint string
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

// paramNearMisses tries the parameter lists close to d.pairs that a
// framework or a hand-written signer commonly turns into them, and returns
// the hint of the first that matches. Each list is built only if a MAC over
// it fits in the budget.
func (d *diagnosis) paramNearMisses(req *Request) string {
	pairs := d.pairs
	if len(pairs) > 0 {
		if d.matchesParams(req.URL, nil) {
			return "signature covers the URL only, as for a GET or JSON webhook: do not pass the form fields as params"
		}
	} else if q := d.u.query(); q != "" {
		if vals, err := url.ParseQuery(q); err == nil && d.affordable() {
			var p []kv
			for k, vs := range vals {
				for _, v := range vs {
					p = append(p, kv{k, v})
				}
			}
			if d.matchesParams(d.u.raw[:len(d.u.raw)-len(d.u.rest)]+strings.SplitN(d.u.rest, "?", 2)[0], p) {
				return "signature matches a form POST of this URL's query parameters: pass them as params, not in the URL"
			}
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
	if d.affordable() {
		if p, ok := mapped(func(v string) (string, bool) {
			return strings.ReplaceAll(v, "+", " "), strings.Contains(v, "+")
		}); ok && d.matchesParams(req.URL, p) {
			return "signature matches the params with '+' decoded as a space: decode form fields as " +
				"application/x-www-form-urlencoded, or send the raw body"
		}
	}
	if d.affordable() {
		if p, ok := mapped(func(v string) (string, bool) {
			dv, err := url.QueryUnescape(v)
			return dv, err == nil && dv != v
		}); ok && d.matchesParams(req.URL, p) {
			return "signature matches the params percent-decoded: pass decoded form fields, or send the raw body"
		}
	}
	if repeated(pairs) && d.affordable() {
		wire := wirePairs(req)
		if d.matchesParams(req.URL, firstOrLast(wire, false)) {
			return "signature covers only the first value of each repeated parameter: " +
				"the signer does not follow Twilio's algorithm (it signs every distinct value, sorted)"
		}
		if d.affordable() && d.matchesParams(req.URL, firstOrLast(wire, true)) {
			return "signature covers only the last value of each repeated parameter: " +
				"the signer does not follow Twilio's algorithm (it signs every distinct value, sorted)"
		}
	}
	if len(pairs) == 0 {
		return ""
	}
	for _, set := range droppedSets(pairs) {
		if !d.affordable() {
			return ""
		}
		p := append([]kv(nil), pairs...)
		for _, n := range set {
			p = append(p, kv{n, ""})
		}
		if d.matchesParams(req.URL, p) {
			return "signature matches with the empty parameter(s) " + strings.Join(set, ", ") +
				" added: pass every form field, including empty ones (or send the raw body)"
		}
	}
	return ""
}

// wirePairs returns the parameters of req in the order sent.
func wirePairs(req *Request) []kv {
	if req.HasBody {
		wire, _ := decodeForm(string(req.Body), nil, nil)
		return wire
	}
	var wire []kv
	for k, vs := range req.Params {
		for _, v := range vs {
			wire = append(wire, kv{k, v})
		}
	}
	for _, f := range req.Fields {
		wire = append(wire, kv{f.Key, f.Value})
	}
	return wire
}

// droppedSets returns the sets of often-empty Twilio parameters missing
// from pairs to try adding back, largest first: all of them, each caller
// or callee group, the city/state/zip ones, then each alone.
func droppedSets(pairs []kv) [][]string {
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
	if len(missing) == 0 {
		return nil
	}
	sets := [][]string{missing}
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
	if len(cities) > 0 {
		sets = append(sets, cities)
	}
	for _, n := range missing {
		sets = append(sets, []string{n})
	}
	return sets
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
