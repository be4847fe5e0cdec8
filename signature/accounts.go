package signature

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// maxAccountSids is the most values [AccountSids] returns. A request that
// names more than one account is refused whatever the others are, so a few
// are enough, and the bound keeps the cost linear in the request's size.
const maxAccountSids = 8

// AccountSids returns every distinct AccountSid value req names, in order of
// first appearance, looking where an application might read it from:
//
//   - every value of Params["AccountSid"], and of Fields whose key is
//     AccountSid;
//   - with a form body, every field whose decoded key is AccountSid, so
//     that Account%53id=… and %41ccountSid=… count ('+' is a space, %XX
//     the byte XX), as Go's url.ParseQuery and Request.FormValue and
//     Django's request.POST decode it; a '%' that does not start an escape
//     is kept as it is, as Python keeps it;
//   - with any other body that is a JSON object, the string value of every
//     top-level key AccountSid or account_sid, compared ignoring case as
//     Go's encoding/json matches struct fields (escapes in keys and values
//     decoded; a key given twice counts twice; nested objects, values that
//     are not strings, and bodies that are not valid JSON or not an object
//     name nothing);
//   - every field of the URL's query (after '?', before '#') whose decoded
//     key is AccountSid, as for a form body.
//
// A service refuses a request whose verified account differs from any of
// them: the signature covers them all, but an application may read any
// one. Values are returned as decoded, not checked to be SIDs. At most 8
// values are returned (a request naming more names several accounts
// anyway), and the cost is linear in the size of the URL and body. nil
// means the request names no account.
func AccountSids(req *Request) []string {
	var c accountSids
	for _, v := range req.Params["AccountSid"] {
		c.addString(v)
	}
	for _, f := range req.Fields {
		if f.Key == "AccountSid" {
			c.addString(f.Value)
		}
	}
	if req.HasBody {
		if isForm(req.ContentType) {
			c.addForm(req.Body)
		} else {
			c.addJSON(req.Body)
		}
	}
	if q := rawQuery(req.URL); q != "" {
		c.addForm([]byte(q))
	}
	return c.list
}

// accountSids collects distinct values, up to maxAccountSids.
type accountSids struct {
	list []string
	buf  []byte // scratch for decoding
}

// full reports whether no more values can be added.
func (c *accountSids) full() bool { return len(c.list) >= maxAccountSids }

// add appends v unless it is already listed or the list is full.
func (c *accountSids) add(v []byte) {
	if c.full() {
		return
	}
	for _, s := range c.list {
		if s == string(v) {
			return
		}
	}
	c.list = append(c.list, string(v))
}

// addString is add for a string.
func (c *accountSids) addString(v string) {
	if !c.full() && !slices.Contains(c.list, v) {
		c.list = append(c.list, v)
	}
}

// rawQuery returns the query of rawURL: what follows the first '?' before
// any '#'.
func rawQuery(rawURL string) string {
	rawURL, _, _ = strings.Cut(rawURL, "#")
	_, q, _ := strings.Cut(rawURL, "?")
	return q
}

// addForm adds the value of every field of an
// application/x-www-form-urlencoded form whose decoded key is AccountSid.
func (c *accountSids) addForm(form []byte) {
	const name = "AccountSid"
	for len(form) > 0 && !c.full() {
		var seg []byte
		seg, form, _ = bytes.Cut(form, []byte("&"))
		k, v, _ := bytes.Cut(seg, []byte("="))
		if string(k) != name {
			// Only a %-escape can make another key decode to name ('+'
			// decodes to a space, which name lacks), and it shortens the
			// key: a key decodes to between a third of its length and
			// its length.
			if len(k) <= len(name) || len(k) > 3*len(name) || bytes.IndexByte(k, '%') < 0 {
				continue
			}
			if c.buf = appendUnescaped(c.buf[:0], k); string(c.buf) != name {
				continue
			}
		}
		c.buf = appendUnescaped(c.buf[:0], v)
		c.add(c.buf)
	}
}

// appendUnescaped appends b to dst with '+' as a space and %XX as the byte
// XX; a '%' not followed by two hex digits is kept as it is.
func appendUnescaped(dst, b []byte) []byte {
	dst = slices.Grow(dst, len(b))
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '+':
			dst = append(dst, ' ')
		case c == '%' && i+2 < len(b) && isHex(b[i+1]) && isHex(b[i+2]):
			dst = append(dst, unhex(b[i+1])<<4|unhex(b[i+2]))
			i += 2
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// addJSON adds the string value of every top-level key of a JSON object
// body that is AccountSid or account_sid, ignoring case.
func (c *accountSids) addJSON(body []byte) {
	if !json.Valid(body) {
		return
	}
	i := skipJSONSpace(body, 0)
	if body[i] != '{' {
		return
	}
	// body is valid JSON: every index below stays in range.
	for i = skipJSONSpace(body, i+1); body[i] != '}' && !c.full(); {
		keyEnd := jsonStringEnd(body, i)
		key := body[i:keyEnd]
		i = skipJSONSpace(body, keyEnd) // at ':'
		i = skipJSONSpace(body, i+1)    // at the value
		end := skipJSONValue(body, i)
		if body[i] == '"' && len(key) <= 2+6*len("account_sid") {
			c.buf = appendJSONString(c.buf[:0], key)
			if bytes.EqualFold(c.buf, []byte("AccountSid")) || bytes.EqualFold(c.buf, []byte("account_sid")) {
				c.buf = appendJSONString(c.buf[:0], body[i:end])
				c.add(c.buf)
			}
		}
		i = skipJSONSpace(body, end) // at ',' or '}'
		if body[i] == ',' {
			i = skipJSONSpace(body, i+1)
		}
	}
}

// skipJSONSpace returns the index of the first byte at or after i that is
// not JSON white space.
func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// jsonStringEnd returns the index just past the valid JSON string that
// starts at b[i] ('"').
func jsonStringEnd(b []byte, i int) int {
	for i++; ; i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
}

// skipJSONValue returns the index just past the valid JSON value that
// starts at b[i].
func skipJSONValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return jsonStringEnd(b, i)
	case '{', '[':
		for depth := 0; ; i++ {
			switch b[i] {
			case '"':
				i = jsonStringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	}
	// A number, true, false or null.
	for i < len(b) && strings.IndexByte(",}] \t\n\r", b[i]) < 0 {
		i++
	}
	return i
}

// appendJSONString appends the decoded content of the valid JSON string
// literal q (quotes included) to dst, as encoding/json decodes it except
// that bytes that are not UTF-8 are kept.
func appendJSONString(dst, q []byte) []byte {
	s := q[1 : len(q)-1]
	dst = slices.Grow(dst, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			dst = append(dst, s[i])
			continue
		}
		i++
		switch s[i] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(s[i+1:])
			i += 4
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if i+6 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
					r2 = hex4(s[i+3:])
				}
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					r = d
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, s[i])
		}
	}
	return dst
}

// hex4 returns the value of the four hex digits at the start of b.
func hex4(b []byte) rune {
	return rune(unhex(b[0]))<<12 | rune(unhex(b[1]))<<8 | rune(unhex(b[2]))<<4 | rune(unhex(b[3]))
}
