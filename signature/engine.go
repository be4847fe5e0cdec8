package signature

import (
	"crypto/sha1" //nolint:gosec // Twilio signs with HMAC-SHA1.
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// Sizes of the stack buffers that keep a typical verification free of heap
// allocations. Larger requests fall back to the heap.
const (
	blockSize   = 64   // HMAC block size of SHA-1 and SHA-256
	stackBytes  = 4096 // signed string plus room for a URL variant
	stackPairs  = 64   // form parameters
	stackKeys   = 4    // credentials
	maxVariants = 6    // see urlParts.variants
	maxState    = 108  // a marshaled SHA-256 state; SHA-1's is shorter
)

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// getScratch returns working memory for one call; give it back with
// putScratch.
func getScratch() *scratch { return scratchPool.Get().(*scratch) }

// putScratch wipes the key material of s (HMAC pads derived from secrets),
// drops its references to the caller's parameters and body, and returns it
// to the pool.
func putScratch(s *scratch) {
	clear(s.keyList[:])
	clear(s.pairs[:s.held])
	s.held = 0
	scratchPool.Put(s)
}

// kv is one form parameter.
type kv struct{ k, v string }

// scratch is the working memory of one verification, about 12 KiB. It comes
// from a pool ([getScratch]) rather than the caller's stack: a server runs
// each request on a new goroutine, whose small stack would otherwise be
// grown (copied) on every call.
type scratch struct {
	pairs    [stackPairs]kv
	held     int  // pairs[:held] may refer to the caller's memory
	listed   bool // the pairs come in an order that repeats from call to call
	order    [stackPairs]uint64
	last     [stackPairs]uint8 // the signing order of the last pairs laid out, if lastN > 0
	lastN    int               // how many pairs that was; 0 if they had duplicates or were many
	keyList  [stackKeys]key
	variants [maxVariants]variant
	buf      [stackBytes]byte
	text     [stackBytes]byte // decoded form fields
}

// collect returns the parameters of params and fields, in no particular
// order.
func (s *scratch) collect(params url.Values, fields []Field) []kv {
	pairs := s.pairs[:0]
	for k, vs := range params {
		for _, v := range vs {
			pairs = append(pairs, kv{k, v})
		}
	}
	for _, f := range fields {
		pairs = append(pairs, kv{f.Key, f.Value})
	}
	return s.hold(pairs, len(params) == 0)
}

// hold returns pairs, read into s.pairs, after noting that s.pairs may now
// refer to the caller's memory (see putScratch) and whether the pairs come
// in an order that repeats from call to call, as a list's or a body's does
// (see signingOrder) and a map's does not.
func (s *scratch) hold(pairs []kv, listed bool) []kv {
	s.held = min(len(pairs), stackPairs)
	s.listed = listed
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

// prefix8 returns the first 8 bytes of k, zero padded, as a big-endian
// integer, so that prefix8(a) < prefix8(b) implies a < b.
func prefix8(k string) uint64 {
	if len(k) < 8 {
		var b [8]byte
		copy(b[:], k)
		return binary.BigEndian.Uint64(b[:])
	}
	_ = k[7]
	return uint64(k[0])<<56 | uint64(k[1])<<48 | uint64(k[2])<<40 | uint64(k[3])<<32 |
		uint64(k[4])<<24 | uint64(k[5])<<16 | uint64(k[6])<<8 | uint64(k[7])
}

// mask8 masks the index out of a sort key made of a key prefix and the
// index of its pair.
const mask8 = 0xff

// signingOrder returns the indices of pairs (masked by mask) in the order
// Twilio signs them, by key, then by value, with duplicate pairs removed,
// and an upper bound of the length of the parameters' part of the signed
// string. The parameters themselves are not moved: sorting plain integers
// is fast. Pairs listed in a repeatable order are often listed as the last
// ones were, so their order is remembered and tried first.
func (s *scratch) signingOrder(pairs []kv) (order []uint64, mask uint64, size int) {
	if !s.listed {
		return s.sortOrder(pairs)
	}
	if len(pairs) == s.lastN {
		if order, size, ok := s.reuseOrder(pairs); ok {
			return order, mask8, size
		}
	}
	order, mask, size = s.sortOrder(pairs)
	s.lastN = 0
	if len(order) == len(pairs) && len(order) <= stackPairs {
		for i, o := range order {
			s.last[i] = uint8(o & mask8)
		}
		s.lastN = len(order)
	}
	return order, mask, size
}

// reuseOrder returns the signing order of the last pairs laid out if it is
// also the signing order of pairs, with the length of their part of the
// signed string. Webhooks of one kind list their fields in the same order,
// so it usually is, and checking it costs one comparison per pair where
// sorting costs several.
func (s *scratch) reuseOrder(pairs []kv) (order []uint64, size int, ok bool) {
	order = s.order[:len(pairs)]
	var prev *kv
	var prevKey uint64
	for i, o := range s.last[:len(pairs)] {
		e := &pairs[o]
		key := prefix8(e.k)
		if prev != nil && key <= prevKey && compareKV(prev, e) >= 0 {
			return nil, 0, false // out of order, or a duplicate
		}
		order[i] = uint64(o)
		size += len(e.k) + len(e.v)
		prev, prevKey = e, key
	}
	return order, size, true
}

// sortOrder computes the result of signingOrder by sorting.
func (s *scratch) sortOrder(pairs []kv) (order []uint64, mask uint64, size int) {
	order = s.order[:0]
	if len(pairs) > 256 {
		for i := range pairs {
			order = append(order, uint64(i))
			size += len(pairs[i].k) + len(pairs[i].v)
		}
		slices.SortFunc(order, func(a, b uint64) int { return compareKV(&pairs[a], &pairs[b]) })
		n := min(len(order), 1)
		for i := 1; i < len(order); i++ {
			if compareKV(&pairs[order[i]], &pairs[order[n-1]]) != 0 {
				order[n] = order[i]
				n++
			}
		}
		return order[:n], ^uint64(0), size
	}
	// Sort on (7-byte key prefix, index): the index fits in the low byte.
	for i := range pairs {
		e := &pairs[i]
		order = append(order, prefix8(e.k)&^0xff|uint64(i))
		size += len(e.k) + len(e.v)
	}
	ties := true // some keys may share their 7-byte prefix
	if len(order) <= 32 {
		ties = insertionSort(order)
	} else {
		slices.Sort(order)
	}
	if !ties {
		return order, mask8, size // no two pairs alike: no duplicates either
	}
	// Order each run of equal prefixes by the whole key and value, dropping
	// duplicate pairs: order[run:n] is the run being built.
	n, run := 0, 0
	for _, o := range order {
		if n == 0 || o>>8 != order[n-1]>>8 {
			run = n
			order[n] = o
			n++
			continue
		}
		e := &pairs[o&mask8]
		j := n
		for ; j > run; j-- {
			if c := compareKV(e, &pairs[order[j-1]&mask8]); c >= 0 {
				if c == 0 {
					j = -1 // a duplicate
				}
				break
			}
		}
		if j >= 0 {
			copy(order[j+1:n+1], order[j:n])
			order[j] = o
			n++
		}
	}
	return order[:n], mask8, size
}

// insertionSort sorts a few (7-byte key prefix, index) sort keys faster
// than a general sort, and reports whether two of them share their prefix.
// Keys that share a prefix are adjacent once sorted, and each such pair was
// adjacent when the later of the two was inserted.
func insertionSort(a []uint64) (ties bool) {
	for i := 1; i < len(a); i++ {
		v, j := a[i], i
		for ; j > 0 && a[j-1] > v; j-- {
			a[j] = a[j-1]
		}
		a[j] = v
		ties = ties || j > 0 && a[j-1]>>8 == v>>8 || j < i && a[j+1]>>8 == v>>8
	}
	return ties
}

// message is the signed string minus its URL: the parameters, at buf[p:],
// with room before them for any URL variant.
type message struct {
	buf []byte
	p   int
}

// message lays out pairs, in signing order, for URLs of up to maxURL bytes.
func (s *scratch) message(pairs []kv, maxURL int) message {
	order, mask, size := s.signingOrder(pairs)
	p := maxURL
	var buf []byte
	if p+size <= len(s.buf) {
		buf = s.buf[:p+size]
	} else {
		buf = make([]byte, p+size)
	}
	off := p
	for _, o := range order {
		e := &pairs[o&mask]
		off += copy(buf[off:], e.k)
		off += copy(buf[off:], e.v)
	}
	return message{buf: buf[:off], p: p}
}

// sum returns the HMAC of v followed by the message under k, and its length.
// v must not be longer than the maxURL the message was laid out for.
func (m *message) sum(k *key, v variant) (mac [32]byte, n int) {
	start := m.p - v.len()
	v.write(m.buf[start:m.p])
	n = k.sum(m.buf[start:], &mac)
	return mac, n
}

// hmacState is an HMAC key made ready for use: the marshaled states of the
// hash after it has absorbed the inner pad block and the outer pad block,
// so that each MAC starts from them instead of hashing the pads again.
type hmacState struct {
	alg          Algorithm // HMACSHA1 or HMACSHA256
	n            int       // length of each marshaled state
	inner, outer [maxState]byte
}

// init prepares st for alg (zero meaning HMACSHA1) and secret.
func (st *hmacState) init(alg Algorithm, secret string) {
	if alg == 0 {
		alg = HMACSHA1
	}
	st.alg = alg
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
	var ipad, opad [blockSize]byte
	for i := 0; i < blockSize; i += 8 {
		w := binary.LittleEndian.Uint64(kb[i:])
		binary.LittleEndian.PutUint64(ipad[i:], w^0x3636363636363636)
		binary.LittleEndian.PutUint64(opad[i:], w^0x5c5c5c5c5c5c5c5c)
	}
	// The hashes stay on the stack only when their concrete type is known
	// here, so each algorithm has its own branch (likewise in sum).
	var in, out []byte
	if alg == HMACSHA256 {
		h := sha256.New()
		h.Write(ipad[:])
		in, _ = h.(encoding.BinaryAppender).AppendBinary(st.inner[:0])
		h.Reset()
		h.Write(opad[:])
		out, _ = h.(encoding.BinaryAppender).AppendBinary(st.outer[:0])
	} else {
		h := sha1.New() //nolint:gosec // Twilio signs with HMAC-SHA1.
		h.Write(ipad[:])
		in, _ = h.(encoding.BinaryAppender).AppendBinary(st.inner[:0])
		h.Reset()
		h.Write(opad[:])
		out, _ = h.(encoding.BinaryAppender).AppendBinary(st.outer[:0])
	}
	if len(in) != len(out) || len(in) > maxState { // AppendBinary grew a copy
		panic("signature: unexpected hash state size") //nolint:forbidigo // an invariant of the standard library's hash encoding, checked when a key is prepared; no input reaches it
	}
	st.n = len(in)
}

// sum writes the HMAC of msg to mac and returns its length.
func (st *hmacState) sum(msg []byte, mac *[32]byte) int {
	var inner [32]byte
	if st.alg == HMACSHA256 {
		h := sha256.New()
		_ = h.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.inner[:st.n])
		h.Write(msg)
		h.Sum(inner[:0])
		_ = h.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.outer[:st.n])
		h.Write(inner[:sha256.Size])
		h.Sum(mac[:0])
		return sha256.Size
	}
	h := sha1.New() //nolint:gosec // Twilio signs with HMAC-SHA1.
	_ = h.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.inner[:st.n])
	h.Write(msg)
	h.Sum(inner[:0])
	_ = h.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.outer[:st.n])
	h.Write(inner[:sha1.Size])
	h.Sum(mac[:0])
	return sha1.Size
}

// preparedKey is the prepared HMAC key of a [Credential] made by
// [NewCredential], with the secret it was made from.
type preparedKey struct {
	secret string
	hmacState
}

// key is a credential ready for one call.
type key struct {
	hmacState
	index int // position in the caller's credential list
}

// macLen returns the length of k's MACs.
func (k *key) macLen() int { return k.alg.macLen() }

// keySet is the usable credentials of a call.
type keySet struct {
	list         []key
	n            int
	sha1, sha256 bool // some credential uses the algorithm
}

// keys prepares every credential that can verify something: a non-empty
// secret and a known algorithm. A credential made by NewCredential brings
// its prepared key, used as long as its Secret and Algorithm are unchanged.
func (s *scratch) keys(creds []Credential) keySet {
	ks := keySet{list: s.keyList[:0]}
	for i := range creds {
		c := &creds[i]
		alg := c.Algorithm
		if alg == 0 {
			alg = HMACSHA1
		}
		if c.Secret == "" || alg.macLen() == 0 {
			continue
		}
		ks.list = append(ks.list, key{index: i})
		k := &ks.list[len(ks.list)-1]
		if p := c.prepared; p != nil && p.secret == c.Secret && p.alg == alg {
			k.hmacState = p.hmacState
		} else {
			k.init(alg, c.Secret)
		}
		if alg == HMACSHA256 {
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
