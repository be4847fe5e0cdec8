package signature

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"unsafe"
)

// Sentinel errors returned (possibly wrapped) by this package. Test them with
// [errors.Is]. None of them, wrapped or not, ever carries a secret.
var (
	// ErrMissingSignature means the request carries no X-Twilio-Signature.
	ErrMissingSignature = errors.New("signature: missing X-Twilio-Signature")
	// ErrMalformedSignature means the signature is not exactly the standard,
	// padded base64 of a MAC of a length that some credential's algorithm
	// produces (28 characters for HMAC-SHA1, 44 for HMAC-SHA256).
	ErrMalformedSignature = errors.New("signature: malformed X-Twilio-Signature")
	// ErrMismatch means the signature is well formed but no credential
	// produces it for any accepted URL variant.
	ErrMismatch = errors.New("signature: signature mismatch")
	// ErrBodyHashMismatch means the signature over the URL is valid but the
	// SHA-256 of the body differs from the URL's bodySHA256 parameter.
	ErrBodyHashMismatch = errors.New("signature: body does not match bodySHA256")
	// ErrMissingBodyHash means a request with a body that is not form encoded
	// has no bodySHA256 query parameter, so its body is not covered.
	ErrMissingBodyHash = errors.New("signature: non-form body without bodySHA256 query parameter")
	// ErrAlgorithmNotAllowed means the algorithm named for a SharedKey is
	// unknown or not among the algorithms the key allows.
	ErrAlgorithmNotAllowed = errors.New("signature: algorithm not allowed")
	// ErrNoCredentials means no usable credential was given: every secret is
	// empty (or the list is).
	ErrNoCredentials = errors.New("signature: no credentials")
	// ErrMalformedRequest means the request cannot be verified as given: the
	// URL, the body or the signature settings header is malformed. It is
	// always wrapped with a message that says what is wrong.
	ErrMalformedRequest = errors.New("signature: malformed request")
)

// Algorithm is a MAC algorithm Twilio signs webhooks with.
type Algorithm uint8

const (
	// HMACSHA1 is HMAC-SHA1, used with the auth token and optionally with a
	// SharedKey. A [Credential] whose Algorithm is zero uses HMACSHA1.
	HMACSHA1 Algorithm = 1
	// HMACSHA256 is HMAC-SHA256, used only with a SharedKey.
	HMACSHA256 Algorithm = 2
)

// String returns the name Twilio uses for the algorithm: "HMAC_SHA1" or
// "HMAC_SHA256".
func (a Algorithm) String() string {
	switch a {
	case HMACSHA1:
		return "HMAC_SHA1"
	case HMACSHA256:
		return "HMAC_SHA256"
	}
	return "Algorithm(" + strconv.Itoa(int(a)) + ")"
}

// macLen returns the MAC size of a (0 means HMAC-SHA1), or 0 when a is unknown.
func (a Algorithm) macLen() int {
	switch a {
	case 0, HMACSHA1:
		return 20
	case HMACSHA256:
		return 32
	}
	return 0
}

// Credential is one secret a request may be signed with.
//
// A Credential written as a struct literal works everywhere; one made by
// [NewCredential] also carries its HMAC key prepared, which saves every
// [Check] that uses it two hash blocks and makes each MAC start from a
// stored state. Keep such credentials (for example in an account cache)
// rather than making them for each request. The prepared key is used only
// while Secret and Algorithm keep the values it was made for.
type Credential struct {
	// Name says which secret this is, for example "auth_token",
	// "previous_auth_token" or a SharedKey id. It is not used by the package.
	Name string
	// Secret is the auth token or SharedKey secret. An empty secret never
	// verifies anything.
	Secret string
	// Algorithm is the MAC algorithm; zero means HMACSHA1.
	Algorithm Algorithm

	prepared *preparedKey // from NewCredential
}

// NewCredential returns the credential {name, secret, alg} with its HMAC
// key prepared (see [Credential]). An empty secret or an unknown algorithm
// gives a credential that never verifies anything, as a struct literal
// would.
func NewCredential(name, secret string, alg Algorithm) Credential {
	c := Credential{Name: name, Secret: secret, Algorithm: alg}
	if alg == 0 {
		alg = HMACSHA1
	}
	if secret != "" && alg.macLen() != 0 {
		c.prepared = &preparedKey{secret: secret}
		c.prepared.init(alg, secret)
	}
	return c
}

// Request is a webhook request to verify.
type Request struct {
	// URL is the full URL Twilio requested, as received: scheme, host,
	// optional port, path and query.
	URL string
	// Params are the decoded form fields (params mode). They are nil for GET
	// webhooks, whose parameters are in the URL.
	Params url.Values
	// Fields are the decoded form fields as a list, in any order, repeated
	// keys included: params mode without building a map, for callers that
	// hold the fields as pairs. Give Params or Fields, not both.
	Fields []Field
	// Body is the raw request body (body mode, when HasBody is set).
	Body []byte
	// ContentType is the Content-Type of Body. A form body
	// (application/x-www-form-urlencoded) is parsed into parameters; any
	// other body is covered by the URL's bodySHA256 parameter. An empty
	// body without a content type (a GET) adds nothing to the signed string.
	ContentType string
	// HasBody selects body mode: verify Body instead of Params.
	HasBody bool
	// Signature is the X-Twilio-Signature header value.
	Signature string
}

// Field is one decoded form field.
type Field struct {
	Key, Value string
}

// Match says how a request verified.
type Match struct {
	// Credential is the index, in the list given to [Check], of the
	// credential that produced the signature.
	Credential int
	// URL is the URL variant the signature covers.
	URL string
}

// Sign returns the X-Twilio-Signature Twilio sends for a request to rawURL
// with the given form parameters, signed with HMAC-SHA1 under secret (an
// auth token). Pass nil params for GET and JSON webhooks.
func Sign(secret, rawURL string, params url.Values) string {
	return SignWith(HMACSHA1, secret, rawURL, params)
}

// SignWith is like [Sign] with the MAC algorithm alg, as used for SharedKey
// signatures. It returns "" for an unknown algorithm.
func SignWith(alg Algorithm, secret, rawURL string, params url.Values) string {
	if alg.macLen() == 0 {
		return ""
	}
	s := getScratch()
	defer putScratch(s)
	pairs := s.collect(params, nil)
	m := s.message(pairs, len(rawURL))
	var k key
	k.init(alg, secret)
	mac, n := m.sum(&k, variant{rest: rawURL})
	return base64.StdEncoding.EncodeToString(mac[:n])
}

// Verify reports whether sig is the signature Twilio sends for a request to
// rawURL with the given form parameters under the auth token secret
// (HMAC-SHA1). It returns nil when valid, trying the URL as received first
// and then its variants. Otherwise the error is [ErrMissingSignature],
// [ErrMalformedSignature], [ErrMismatch], [ErrNoCredentials] (empty secret)
// or a wrapped [ErrMalformedRequest] (bad URL).
func Verify(secret, rawURL string, params url.Values, sig string) error {
	creds := [1]Credential{{Secret: secret}}
	req := Request{URL: rawURL, Params: params, Signature: sig}
	_, err := Check(&req, creds[:])
	return err
}

// VerifyBody is like [Verify] for a raw request body: a form body
// (contentType application/x-www-form-urlencoded) is parsed into parameters
// exactly as Twilio encodes them; any other body must match the URL's
// bodySHA256 parameter ([ErrMissingBodyHash], [ErrBodyHashMismatch]).
func VerifyBody(secret, rawURL, contentType string, body []byte, sig string) error {
	creds := [1]Credential{{Secret: secret}}
	req := Request{URL: rawURL, Body: body, ContentType: contentType, HasBody: true, Signature: sig}
	_, err := Check(&req, creds[:])
	return err
}

// BodySHA256 returns the lowercase hex SHA-256 of body, the value Twilio puts
// in the bodySHA256 query parameter of a JSON webhook.
func BodySHA256(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// Check verifies req against creds. It tries the URL as received with every
// credential, in order, then each other URL variant (see [URLVariants]) with
// every credential, and returns the first match.
//
// Credentials with an empty secret or an unknown algorithm are skipped. The
// checks run in this order, and the first that fails decides the error:
// [ErrMissingSignature] (empty Signature); [ErrNoCredentials] (no credential
// left); [ErrMalformedSignature] (not the canonical padded base64 of a MAC
// of a length some credential's algorithm produces); a wrapped
// [ErrMalformedRequest] (bad URL, bad form body, or parameters given in
// more than one of Params, Fields and a body);
// [ErrMissingBodyHash] (a non-form body without bodySHA256); then
// [ErrMismatch] when nothing matches, or [ErrBodyHashMismatch] when the
// signature matches but the body's SHA-256 does not. On ErrBodyHashMismatch
// the returned Match says which credential and URL the valid signature came
// from; on any other error the Match is meaningless.
//
// Credentials made by [NewCredential] are cheaper to use than struct
// literals. With up to 4 credentials, up to 64 parameters (Params, Fields,
// or the fields of a form body of up to 4 KiB) and a signed string that fits in
// 4 KiB, Check does not allocate, except for the Match URL of a variant
// other than the URL as received. It keeps no reference to req.
func Check(req *Request, creds []Credential) (Match, error) {
	s := getScratch()
	defer putScratch(s)
	return s.check(req, creds)
}

// Validate reports whether req is well formed. It is the one input check
// of the package: [Check], [Verify], [VerifyBody] and [URLVariants] apply
// the same rules and give the same errors, all wrapping
// [ErrMalformedRequest]. A request is well formed when
//   - its URL is absolute, starts with http:// or https:// (in any case),
//     names a host, has a port that is a number up to 65535 when it has one,
//     and has no byte below 0x21 and no 0x7f (no space and no control
//     character: a request-target cannot carry them);
//   - it gives its parameters in at most one of Params, Fields and a body;
//   - a form body has only valid percent-escapes.
//
// The messages say what is wrong and where, and never quote the URL, which
// may hold a password. Validate computes no MAC and allocates nothing unless
// it fails, so a caller can refuse malformed input before it decides
// anything else.
func Validate(req *Request) error {
	if _, err := splitURL(req.URL); err != nil {
		return err
	}
	if err := mixedParams(req); err != nil {
		return err
	}
	if req.HasBody && isForm(req.ContentType) {
		return checkEscapes(req.Body)
	}
	return nil
}

// mixedParams refuses a request that gives its parameters in more than one
// way.
func mixedParams(req *Request) error {
	switch {
	case len(req.Params) > 0 && len(req.Fields) > 0:
		return errorf("request has both params and fields")
	case req.HasBody && (len(req.Params) > 0 || len(req.Fields) > 0):
		return errorf("request has both params and a body")
	}
	return nil
}

// check implements Check with s as scratch space.
func (s *scratch) check(req *Request, creds []Credential) (Match, error) {
	if req.Signature == "" {
		return Match{}, ErrMissingSignature
	}
	keys := s.keys(creds)
	if keys.n == 0 {
		return Match{}, ErrNoCredentials
	}
	var want [32]byte
	n, ok := decodeSignature(req.Signature, &want)
	if !ok || (n == 20 && !keys.sha1) || (n == 32 && !keys.sha256) {
		return Match{}, ErrMalformedSignature
	}
	u, err := splitURL(req.URL)
	if err != nil {
		return Match{}, err
	}
	in, err := s.input(req, &u)
	if err != nil {
		return Match{}, err
	}
	vs := u.variants(&s.variants)
	m := s.message(in.pairs, maxLen(vs))
	for _, v := range vs {
		for i := range keys.list {
			k := &keys.list[i]
			if k.macLen() != n {
				continue
			}
			mac, _ := m.sum(k, v)
			if subtle.ConstantTimeCompare(mac[:n], want[:n]) != 1 {
				continue
			}
			match := Match{Credential: k.index, URL: v.String()}
			if in.bodyMode && !in.bodyOK {
				return match, ErrBodyHashMismatch
			}
			return match, nil
		}
	}
	return Match{}, ErrMismatch
}

// input is what is signed besides the URL.
type input struct {
	pairs    []kv
	bodyMode bool // a non-form body, covered by bodySHA256
	bodyOK   bool // bodySHA256 matches the body
}

// input extracts the signed parameters of req, and for a non-form body checks
// the body hash.
func (s *scratch) input(req *Request, u *urlParts) (input, error) {
	if err := mixedParams(req); err != nil {
		return input{}, err
	}
	if !req.HasBody {
		return input{pairs: s.collect(req.Params, req.Fields)}, nil
	}
	if len(req.Body) == 0 && strings.TrimSpace(req.ContentType) == "" {
		return input{}, nil // no body at all: only the URL is signed
	}
	if isForm(req.ContentType) {
		// The body is read as a string without a copy: the fields decoded
		// from it do not outlive the call.
		body := unsafe.String(unsafe.SliceData(req.Body), len(req.Body)) //nolint:gosec // see above
		pairs, err := decodeForm(body, s.pairs[:0], s.text[:0])
		s.hold(pairs, true)
		if err != nil {
			return input{}, err
		}
		return input{pairs: pairs}, nil
	}
	hash, ok := lastQueryValue(u.query(), "bodySHA256")
	if !ok {
		return input{}, ErrMissingBodyHash
	}
	return input{bodyMode: true, bodyOK: hashMatches(req.Body, hash)}, nil
}

// hashMatches reports whether want is the lowercase hex SHA-256 of body.
func hashMatches(body []byte, want string) bool {
	if len(want) != 2*sha256.Size {
		return false
	}
	sum := sha256.Sum256(body)
	var got [2 * sha256.Size]byte
	hex.Encode(got[:], sum[:])
	// The hash is not a secret; a plain comparison is fine.
	return string(got[:]) == want
}

// errorf returns ErrMalformedRequest wrapped with msg.
func errorf(msg string) error {
	return &malformedError{msg: msg}
}

// malformedError is an ErrMalformedRequest with a precise message.
type malformedError struct{ msg string }

func (e *malformedError) Error() string { return "signature: malformed request: " + e.msg }
func (e *malformedError) Unwrap() error { return ErrMalformedRequest }
