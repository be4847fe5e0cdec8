package signature

import (
	"bytes"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// ParseForm decodes an application/x-www-form-urlencoded body exactly as
// Twilio encodes it: fields are separated by '&' only (';' is an ordinary
// character), a field without '=' is a key with an empty value, empty values
// and repeated keys are kept (values in the order sent), '+' is a space and
// %XX is the byte XX. Empty fields ("a=1&&b=2") are skipped. Decoded bytes
// that are not UTF-8 (Twilio sends only UTF-8) become U+FFFD, one per maximal
// ill-formed subsequence, as twilio-node and twilio-python decode them. A '%'
// not followed by two hex digits is an error wrapping [ErrMalformedRequest]
// that gives its byte offset.
func ParseForm(body []byte) (url.Values, error) {
	var buf [stackPairs]kv
	pairs, err := decodeForm(string(body), buf[:0], nil)
	if err != nil {
		return nil, err
	}
	vals := make(url.Values, len(pairs))
	for _, p := range pairs {
		vals[p.k] = append(vals[p.k], p.v)
	}
	return vals, nil
}

// decodeForm appends the fields of body to dst in wire order. A key or
// value that needs no decoding is a substring of body; the others are
// decoded into text, which must not be used for anything else while the
// fields are: the returned strings share its memory. text is replaced by a
// new buffer when its capacity is less than len(body), so it never grows
// (and never moves) during the call. Given enough text, the call does not
// allocate unless some field is not UTF-8, a path Twilio never takes.
func decodeForm(body string, dst []kv, text []byte) ([]kv, error) {
	if cap(text) < len(body) {
		text = make([]byte, 0, len(body))
	}
	text = text[:0]
	var err error
	for off := 0; off < len(body); {
		end := strings.IndexByte(body[off:], '&')
		if end < 0 {
			end = len(body) - off
		}
		if end > 0 {
			field := body[off : off+end]
			kTo, vFrom := len(field), len(field)
			if eq := strings.IndexByte(field, '='); eq >= 0 {
				kTo, vFrom = eq, eq+1
			}
			k, v := field[:kTo], field[vFrom:]
			kc, vc := classOf(k), classOf(v)
			if kc|vc != 0 {
				if k, text, err = decodeComponent(k, kc, off, text); err != nil {
					return dst, err
				}
				if v, text, err = decodeComponent(v, vc, off+vFrom, text); err != nil {
					return dst, err
				}
			}
			dst = append(dst, kv{k, v})
		}
		off += end + 1
	}
	return dst, nil
}

// Classes of the bytes of a form field, as bit flags; most bytes have none.
const (
	escapeByte = 1 << iota // '%' or '+'
	highByte               // outside ASCII
)

// formClass maps each byte of a form field to its class.
var formClass = func() (t [256]byte) {
	t['%'], t['+'] = escapeByte, escapeByte
	for c := utf8.RuneSelf; c < len(t); c++ {
		t[c] = highByte
	}
	return t
}()

// classOf returns the classes of the bytes of s.
func classOf(s string) byte {
	var c byte
	for i := range len(s) {
		c |= formClass[s[i]]
	}
	return c
}

// decodeComponent returns raw, a key or value at byte off of the body
// whose bytes have the classes in class, decoded: raw itself when it has
// no escape, else its decoding appended to text. Bytes that are not UTF-8
// become U+FFFD (see [ParseForm]).
func decodeComponent(raw string, class byte, off int, text []byte) (string, []byte, error) {
	s := raw
	if class&escapeByte != 0 {
		start := len(text)
		var high bool
		var err error
		if text, high, err = unescape(text, raw, off); err != nil {
			return "", text, err
		}
		if high {
			class |= highByte
		}
		// text never grows beyond its capacity (see decodeForm), so this
		// memory stays put and is written once. raw has an escape, so it
		// decodes to at least one byte.
		s = unsafe.String(&text[start], len(text)-start) //nolint:gosec // see above
	}
	if class&highByte != 0 {
		s = toValidUTF8(s)
	}
	return s, text, nil
}

// unescape appends raw, with '+' as a space and %XX decoded, to text, whose
// capacity must have room for len(raw) more bytes, and reports whether it
// decoded a byte outside ASCII. off is the offset of raw in the body, for
// the error message.
func unescape(text []byte, raw string, off int) (_ []byte, high bool, err error) {
	start := len(text)
	out := text[start : start+len(raw)]
	n := 0
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch c {
		case '+':
			c = ' '
		case '%':
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return text, false, errorf("invalid percent-escape at byte " + strconv.Itoa(off+i) + " of the form body")
			}
			c = unhex(raw[i+1])<<4 | unhex(raw[i+2])
			high = high || c >= utf8.RuneSelf
			i += 2
		}
		out[n] = c
		n++
	}
	return text[:start+n], high, nil
}

// toValidUTF8 replaces each maximal ill-formed subsequence of s with U+FFFD,
// as the WHATWG and Unicode recommend and as twilio-node (Buffer) and
// twilio-python (errors="replace") decode form bodies.
func toValidUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			b.WriteByte(c)
			i++
			continue
		}
		need, lo, hi := 0, byte(0x80), byte(0xbf)
		switch {
		case 0xc2 <= c && c <= 0xdf:
			need = 1
		case 0xe0 <= c && c <= 0xef:
			need = 2
			if c == 0xe0 {
				lo = 0xa0
			} else if c == 0xed {
				hi = 0x9f
			}
		case 0xf0 <= c && c <= 0xf4:
			need = 3
			if c == 0xf0 {
				lo = 0x90
			} else if c == 0xf4 {
				hi = 0x8f
			}
		}
		j := i + 1
		for n := 0; n < need && j < len(s) && lo <= s[j] && s[j] <= hi; n++ {
			j++
			lo, hi = 0x80, 0xbf
		}
		if need > 0 && j-i == need+1 {
			b.WriteString(s[i:j]) // a complete, valid sequence
		} else {
			b.WriteString("\uFFFD") // the maximal subpart s[i:j], or one bad byte
		}
		i = j
	}
	return b.String()
}

// isHex reports whether c is a hex digit.
func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// unhex returns the value of the hex digit c.
func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// isForm reports whether contentType is application/x-www-form-urlencoded,
// with any parameters (such as charset).
func isForm(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "application/x-www-form-urlencoded")
}

// lastQueryValue returns the decoded value of the last parameter called name
// in query. A value that does not decode is returned as is.
func lastQueryValue(query, name string) (string, bool) {
	var val string
	found := false
	for query != "" {
		var f string
		f, query, _ = strings.Cut(query, "&")
		k, v, _ := strings.Cut(f, "=")
		if k != name {
			if !strings.ContainsAny(k, "%+") {
				continue
			}
			if dk, err := url.QueryUnescape(k); err != nil || dk != name {
				continue
			}
		}
		val, found = v, true
	}
	if found && strings.ContainsAny(val, "%+") {
		if dv, err := url.QueryUnescape(val); err == nil {
			val = dv
		}
	}
	return val, found
}

// checkEscapes reports the first '%' in a form body that is not followed by
// two hex digits, with the error [decodeForm] would give, without decoding.
func checkEscapes(body []byte) error {
	for j := bytes.IndexByte(body, '%'); j >= 0; {
		if j+2 >= len(body) || !isHex(body[j+1]) || !isHex(body[j+2]) {
			return errorf("invalid percent-escape at byte " + strconv.Itoa(j) + " of the form body")
		}
		next := bytes.IndexByte(body[j+3:], '%')
		if next < 0 {
			break
		}
		j += 3 + next
	}
	return nil
}
