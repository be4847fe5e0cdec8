package signature

import (
	"net/http"
	"strings"
)

// RequestTarget returns the raw request-target of r: path and query exactly
// as the client sent them. An absolute-form target ("http://host/path", sent
// to proxies) is cut to its path and query. A request that did not come from
// a server (RequestURI empty, as when a handler is called directly) falls
// back to the escaped path and raw query of r.URL.
func RequestTarget(r *http.Request) string {
	t := r.RequestURI
	if t == "" {
		t = r.URL.EscapedPath()
		if t == "" {
			t = "/"
		}
		if r.URL.RawQuery != "" || r.URL.ForceQuery {
			t += "?" + r.URL.RawQuery
		}
		return t
	}
	if strings.HasPrefix(t, "/") {
		return t
	}
	if _, rest, ok := strings.Cut(t, "://"); ok {
		if i := strings.IndexAny(rest, "/?"); i >= 0 {
			if rest[i] == '?' {
				return "/" + rest[i:]
			}
			return rest[i:]
		}
		return "/"
	}
	return t
}
