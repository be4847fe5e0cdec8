package webhookreq

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// forwardedElement is one forwarded-element of an RFC 7239 Forwarded header:
// what one proxy saw of the request it received.
type forwardedElement struct {
	forNode string // the for= node as written (may be "unknown" or obfuscated)
	proto   string
	host    string
}

var errMalformedForwarded = errors.New("malformed Forwarded header")

// parseForwarded parses the Forwarded header lines (RFC 7239 §4) into their
// elements, left (first proxy) to right (last proxy). Several header lines
// form one list. Quoted strings may contain ',' and ';' and quoted pairs.
// Parameter names are case-insensitive. As a leniency for proxies that forget
// to quote, an unquoted value may hold any visible character except
// ',', ';' and '"' (so for=[2001:db8::1]:80 and host=example.com:8443 parse).
// A parameter repeated within one element is an error, as RFC 7239 §4 says.
func parseForwarded(lines []string) ([]forwardedElement, error) {
	s := strings.Join(lines, ",")
	var (
		elems []forwardedElement
		cur   forwardedElement
		seen  = map[string]bool{}
		empty = true
	)
	finish := func() {
		if !empty {
			elems = append(elems, cur)
		}
		cur, empty = forwardedElement{}, true
		clear(seen)
	}
	i := 0
	for {
		i = skipOWS(s, i)
		if i >= len(s) {
			finish()
			return elems, nil
		}
		if s[i] == ',' { // an empty list element, allowed by the #rule
			finish()
			i++
			continue
		}
		// forwarded-pair = token "=" value
		j := i
		for j < len(s) && isTchar(s[j]) {
			j++
		}
		if j == i || j >= len(s) || s[j] != '=' {
			return nil, fmt.Errorf("%w: expected a parameter name at offset %d", errMalformedForwarded, i)
		}
		name := strings.ToLower(s[i:j])
		i = j + 1
		var value string
		if i < len(s) && s[i] == '"' {
			var b strings.Builder
			i++
			closed := false
			for i < len(s) {
				c := s[i]
				if c == '\\' && i+1 < len(s) {
					b.WriteByte(s[i+1])
					i += 2
					continue
				}
				if c == '"' {
					closed = true
					i++
					break
				}
				b.WriteByte(c)
				i++
			}
			if !closed {
				return nil, fmt.Errorf("%w: unterminated quoted string", errMalformedForwarded)
			}
			value = b.String()
		} else {
			j = i
			for j < len(s) && s[j] > ' ' && s[j] < 0x7f && s[j] != ',' && s[j] != ';' && s[j] != '"' {
				j++
			}
			value = s[i:j]
			i = j
		}
		if seen[name] {
			return nil, fmt.Errorf("%w: parameter %q repeated in one element", errMalformedForwarded, name)
		}
		seen[name] = true
		empty = false
		switch name {
		case "for":
			cur.forNode = value
		case "proto":
			cur.proto = value
		case "host":
			cur.host = value
		}
		i = skipOWS(s, i)
		switch {
		case i >= len(s):
			finish()
			return elems, nil
		case s[i] == ';':
			i++
		case s[i] == ',':
			finish()
			i++
		default:
			return nil, fmt.Errorf("%w: unexpected %q at offset %d", errMalformedForwarded, s[i], i)
		}
	}
}

func skipOWS(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

// isTchar reports whether c is an RFC 9110 token character.
func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// parseNode returns the IP address of a node as written in a Forwarded for=
// parameter or an X-Forwarded-For entry: "192.0.2.43", "192.0.2.43:47011",
// "[2001:db8:cafe::17]", "[2001:db8:cafe::17]:4711" or a bare IPv6 address.
// "unknown", obfuscated identifiers ("_hidden") and anything else report
// false: such a hop is never a trusted proxy.
func parseNode(node string) (netip.Addr, bool) {
	node = strings.TrimSpace(node)
	if strings.HasPrefix(node, "[") {
		end := strings.IndexByte(node, ']')
		if end < 0 {
			return netip.Addr{}, false
		}
		rest := node[end+1:]
		if rest != "" && (rest[0] != ':' || !validPort(rest[1:])) {
			return netip.Addr{}, false
		}
		node = node[1:end]
	} else if strings.Count(node, ":") == 1 {
		host, port, _ := strings.Cut(node, ":")
		if !validPort(port) {
			return netip.Addr{}, false
		}
		node = host
	}
	a, err := netip.ParseAddr(node)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}
