package signature

import (
	"bytes"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
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
	pairs, err := decodeForm(body, buf[:0])
	if err != nil {
		return nil, err
	}
	vals := make(url.Values, len(pairs))
	for _, p := range pairs {
		vals[p.k] = append(vals[p.k], p.v)
	}
	return vals, nil
}

// decodeForm appends the fields of body to dst in wire order. All decoded
// keys and values share one string, so the call allocates once (unless some
// field is not UTF-8, a path Twilio never takes).
func decodeForm(body []byte, dst []kv) ([]kv, error) {
	var sb strings.Builder
	sb.Grow(len(body))
	var lensBuf [stackPairs]uint64
	lens := lensBuf[:0] // key length << 32 | value length
	valid := true
	// Pass 1: decode every key and value, back to back.
	for off := 0; off < len(body); {
		seg, next := field(body, off)
		if len(seg) > 0 {
			k, v, vOff := splitField(seg, off)
			start := sb.Len()
			kHigh, err := unescapeTo(&sb, k, off)
			if err != nil {
				return dst, err
			}
			kl := sb.Len() - start
			vHigh, err := unescapeTo(&sb, v, vOff)
			if err != nil {
				return dst, err
			}
			vl := sb.Len() - start - kl
			if valid && (kHigh || vHigh) {
				all := sb.String()
				valid = utf8.ValidString(all[start:start+kl]) && utf8.ValidString(all[start+kl:])
			}
			lens = append(lens, uint64(kl)<<32|uint64(vl))
		}
		off = next
	}
	// Pass 2: cut the decoded string into pairs.
	all := sb.String()
	pos := 0
	for _, l := range lens {
		kl, vl := int(l>>32), int(uint32(l))
		k, v := all[pos:pos+kl], all[pos+kl:pos+kl+vl]
		pos += kl + vl
		if !valid {
			k, v = toValidUTF8(k), toValidUTF8(v)
		}
		dst = append(dst, kv{k, v})
	}
	return dst, nil
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

// field returns the field of body starting at off and the offset of the next.
func field(body []byte, off int) (seg []byte, next int) {
	end := bytes.IndexByte(body[off:], '&')
	if end < 0 {
		return body[off:], len(body)
	}
	return body[off : off+end], off + end + 1
}

// splitField splits a field at its first '=' and returns the value's offset
// in the body.
func splitField(seg []byte, off int) (k, v []byte, vOff int) {
	eq := bytes.IndexByte(seg, '=')
	if eq < 0 {
		return seg, nil, off + len(seg)
	}
	return seg[:eq], seg[eq+1:], off + eq + 1
}

// unescapeTo writes b, with '+' as a space and %XX decoded, to sb, and
// reports whether it wrote a byte outside ASCII. off is the offset of b in
// the body, for the error message.
func unescapeTo(sb *strings.Builder, b []byte, off int) (nonASCII bool, err error) {
	var high byte
	for i := 0; i < len(b); {
		j := i
		for j < len(b) && b[j] != '%' && b[j] != '+' {
			high |= b[j]
			j++
		}
		sb.Write(b[i:j])
		if j == len(b) {
			break
		}
		if b[j] == '+' {
			sb.WriteByte(' ')
			i = j + 1
			continue
		}
		if j+2 >= len(b) || !isHex(b[j+1]) || !isHex(b[j+2]) {
			return false, errorf("invalid percent-escape at byte " + strconv.Itoa(off+j) + " of the form body")
		}
		c := unhex(b[j+1])<<4 | unhex(b[j+2])
		high |= c
		sb.WriteByte(c)
		i = j + 3
	}
	return high >= utf8.RuneSelf, nil
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
