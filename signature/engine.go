package signature

import (
	"crypto/sha1" //nolint:gosec // Twilio signs with HMAC-SHA1.
	"crypto/sha256"
	"encoding/binary"
	"net/url"
	"slices"
	"strings"
)

// Sizes of the stack buffers that keep a typical verification free of heap
// allocations. Larger requests fall back to the heap.
const (
	blockSize   = 64   // HMAC block size of SHA-1 and SHA-256
	stackBytes  = 4096 // signed string plus room for a URL variant and a pad
	stackPairs  = 64   // form parameters
	stackKeys   = 4    // credentials
	maxVariants = 6    // see urlParts.variants
)

// kv is one form parameter.
type kv struct{ k, v string }

// scratch is the working memory of one verification. It is meant to live on
// the caller's stack.
type scratch struct {
	pairs    [stackPairs]kv
	order    [stackPairs]uint64
	keyList  [stackKeys]key
	variants [maxVariants]variant
	buf      [stackBytes]byte
}

// collect returns the parameters of params, in no particular order.
func (s *scratch) collect(params url.Values) []kv {
	pairs := s.pairs[:0]
	for k, vs := range params {
		for _, v := range vs {
			pairs = append(pairs, kv{k, v})
		}
	}
	return pairs
}

// compareKV orders parameters by key, then by value, both in byte order
// (which for UTF-8 is code-point order).
func compareKV(a, b *kv) int {
	if c := strings.Compare(a.k, b.k); c != 0 {
		return c
	}
	return strings.Compare(a.v, b.v)
}

// prefix7 returns the first 7 bytes of k, zero padded, as the top 56 bits
// of an integer, so that prefix7(a) < prefix7(b) implies a < b.
func prefix7(k string) uint64 {
	if len(k) >= 7 {
		return uint64(k[0])<<56 | uint64(k[1])<<48 | uint64(k[2])<<40 | uint64(k[3])<<32 |
			uint64(k[4])<<24 | uint64(k[5])<<16 | uint64(k[6])<<8
	}
	var p uint64
	for i := range len(k) {
		p |= uint64(k[i]) << (56 - 8*i)
	}
	return p
}

// signingOrder returns the indices of pairs (masked by mask) in the order
// Twilio signs them: by key, then by value, with duplicate pairs removed.
// The parameters themselves are not moved: sorting plain integers is fast.
func (s *scratch) signingOrder(pairs []kv) (order []uint64, mask uint64) {
	order = s.order[:0]
	if len(pairs) > 256 {
		for i := range pairs {
			order = append(order, uint64(i))
		}
		slices.SortFunc(order, func(a, b uint64) int { return compareKV(&pairs[a], &pairs[b]) })
		mask = ^uint64(0)
	} else {
		// Sort on (7-byte key prefix, index), then sort each run of equal
		// prefixes by the whole key and value.
		for i := range pairs {
			order = append(order, prefix7(pairs[i].k)|uint64(i))
		}
		slices.Sort(order)
		mask = 0xff
		for lo := 0; lo < len(order); {
			hi := lo + 1
			for hi < len(order) && order[hi]>>8 == order[lo]>>8 {
				hi++
			}
			for i := lo + 1; i < hi; i++ {
				for j := i; j > lo && compareKV(&pairs[order[j]&mask], &pairs[order[j-1]&mask]) < 0; j-- {
					order[j], order[j-1] = order[j-1], order[j]
				}
			}
			lo = hi
		}
	}
	// Remove duplicate pairs, which are now adjacent.
	n := min(len(order), 1)
	for i := 1; i < len(order); i++ {
		p, q := &pairs[order[i]&mask], &pairs[order[n-1]&mask]
		if p.k != q.k || p.v != q.v {
			order[n] = order[i]
			n++
		}
	}
	return order[:n], mask
}

// message is the signed string minus its URL: the parameters, at buf[p:],
// with room before them for an HMAC pad and any URL variant.
type message struct {
	buf []byte
	p   int
}

// message lays out pairs, in signing order, for URLs of up to maxURL bytes.
func (s *scratch) message(pairs []kv, maxURL int) message {
	order, mask := s.signingOrder(pairs)
	n := 0
	for _, o := range order {
		e := &pairs[o&mask]
		n += len(e.k) + len(e.v)
	}
	p := blockSize + maxURL
	var buf []byte
	if p+n <= len(s.buf) {
		buf = s.buf[:p+n]
	} else {
		buf = make([]byte, p+n)
	}
	off := p
	for _, o := range order {
		e := &pairs[o&mask]
		off += copy(buf[off:], e.k)
		off += copy(buf[off:], e.v)
	}
	return message{buf: buf, p: p}
}

// sum returns the HMAC of v followed by the message under k, and its length.
// v must not be longer than the maxURL the message was laid out for.
func (m *message) sum(k *key, v variant) (mac [32]byte, n int) {
	start := m.p - v.len() - blockSize
	copy(m.buf[start:], k.ipad[:])
	v.write(m.buf[start+blockSize : m.p])
	data := m.buf[start:]
	var outer [blockSize + 32]byte
	copy(outer[:], k.opad[:])
	if k.alg == HMACSHA256 {
		inner := sha256.Sum256(data)
		copy(outer[blockSize:], inner[:])
		mac = sha256.Sum256(outer[:blockSize+sha256.Size])
		return mac, sha256.Size
	}
	inner := sha1.Sum(data) //nolint:gosec // Twilio signs with HMAC-SHA1.
	copy(outer[blockSize:], inner[:])
	sum := sha1.Sum(outer[:blockSize+sha1.Size]) //nolint:gosec // as above
	copy(mac[:], sum[:])
	return mac, sha1.Size
}

// key is a credential prepared for HMAC: its inner and outer pads.
type key struct {
	ipad, opad [blockSize]byte
	alg        Algorithm
	macLen     int
	index      int // position in the caller's credential list
}

// init prepares k for alg (zero meaning HMACSHA1) and secret.
func (k *key) init(alg Algorithm, secret string) {
	if alg == 0 {
		alg = HMACSHA1
	}
	k.alg = alg
	k.macLen = alg.macLen()
	var kb [blockSize]byte
	switch {
	case len(secret) <= blockSize:
		copy(kb[:], secret)
	case alg == HMACSHA256:
		h := sha256.Sum256([]byte(secret))
		copy(kb[:], h[:])
	default:
		h := sha1.Sum([]byte(secret)) //nolint:gosec // HMAC-SHA1 key reduction.
		copy(kb[:], h[:])
	}
	for i := 0; i < blockSize; i += 8 {
		w := binary.LittleEndian.Uint64(kb[i:])
		binary.LittleEndian.PutUint64(k.ipad[i:], w^0x3636363636363636)
		binary.LittleEndian.PutUint64(k.opad[i:], w^0x5c5c5c5c5c5c5c5c)
	}
}

// keySet is the usable credentials of a call.
type keySet struct {
	list         []key
	n            int
	sha1, sha256 bool // some credential uses the algorithm
}

// keys prepares every credential that can verify something: a non-empty
// secret and a known algorithm.
func (s *scratch) keys(creds []Credential) keySet {
	ks := keySet{list: s.keyList[:0]}
	for i := range creds {
		c := &creds[i]
		if c.Secret == "" || c.Algorithm.macLen() == 0 {
			continue
		}
		ks.list = append(ks.list, key{})
		k := &ks.list[len(ks.list)-1]
		k.init(c.Algorithm, c.Secret)
		k.index = i
		if k.macLen == sha256.Size {
			ks.sha256 = true
		} else {
			ks.sha1 = true
		}
	}
	ks.n = len(ks.list)
	return ks
}

// decodeMap maps a standard base64 character to its value, 0xff otherwise.
var decodeMap = func() (m [256]byte) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := range m {
		m[i] = 0xff
	}
	for i := range len(alphabet) {
		m[alphabet[i]] = byte(i)
	}
	return m
}()

// decodeSignature decodes sig into dst when it is exactly the standard,
// padded, canonical base64 of a 20-byte (HMAC-SHA1) or 32-byte (HMAC-SHA256)
// MAC, and returns the MAC's length.
func decodeSignature(sig string, dst *[32]byte) (int, bool) {
	var n int
	switch len(sig) {
	case 28:
		n = 20
	case 44:
		n = 32
	default:
		return 0, false
	}
	// n = 3*groups + 2: whole 4-character groups, then 3 characters and '='.
	groups := n / 3
	var bad byte
	for g := range groups {
		a, b, c, d := decodeMap[sig[4*g]], decodeMap[sig[4*g+1]], decodeMap[sig[4*g+2]], decodeMap[sig[4*g+3]]
		bad |= a | b | c | d
		dst[3*g] = a<<2 | b>>4
		dst[3*g+1] = b<<4 | c>>2
		dst[3*g+2] = c<<6 | d
	}
	t := sig[4*groups:]
	a, b, c := decodeMap[t[0]], decodeMap[t[1]], decodeMap[t[2]]
	bad |= a | b | c
	if bad&0xc0 != 0 || t[3] != '=' || c&3 != 0 {
		return 0, false
	}
	dst[3*groups] = a<<2 | b>>4
	dst[3*groups+1] = b<<4 | c>>2
	return n, true
}

// maxLen returns the length of the longest variant.
func maxLen(vs []variant) int {
	m := 0
	for _, v := range vs {
		m = max(m, v.len())
	}
	return m
}
