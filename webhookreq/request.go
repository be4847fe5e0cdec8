package webhookreq

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
)

// Request headers Twilio sends, and the headers adapters add to verified
// requests.
const (
	// HeaderSignature carries the signature of the request.
	HeaderSignature = "X-Twilio-Signature"
	// HeaderSignatureSettings names the SharedKey and algorithm, when
	// Twilio signs with a SharedKey.
	HeaderSignatureSettings = "X-Twilio-Webhooks-Signature-Settings"
	// HeaderIdempotencyToken is the same for every retry of one webhook.
	HeaderIdempotencyToken = "I-Twilio-Idempotency-Token"
	// HeaderAccountSID carries, on a verified request, the SID of the
	// account whose credential verified it.
	HeaderAccountSID = "X-Twilio-Account-Sid"
	// HeaderVerified is "true" on a verified request, and "false" in shadow
	// mode on a request that would have been refused.
	HeaderVerified = "X-Twilioguard-Verified"
	// HeaderDuplicate is "true" on a verified request that was verified
	// before within the replay window.
	HeaderDuplicate = "X-Twilioguard-Duplicate"
	// HeaderReason carries the reason of a refusal to a gateway.
	HeaderReason = "X-Twilioguard-Reason"
)

// DefaultMaxBodyBytes is the default limit on a webhook body (1 MiB);
// Twilio's webhooks are far smaller.
const DefaultMaxBodyBytes int64 = 1 << 20

// ErrBodyTooLarge is returned (wrapped) by [ReadBody] for a body over the
// limit. Adapters answer 413.
var ErrBodyTooLarge = errors.New("request body too large")

// ReadBody reads the body of r, at most limit bytes, and puts back a body
// that yields the same bytes, so the next handler can read or parse it.
// Beyond the limit it returns an error wrapping [ErrBodyTooLarge] and r.Body
// still yields the whole body; on a read error (a broken chunked encoding, a
// connection reset) the error says so and r.Body is left as it is.
func ReadBody(r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength > limit {
		return nil, fmt.Errorf("%w: Content-Length %d is over %d bytes", ErrBodyTooLarge, r.ContentLength, limit)
	}
	orig := r.Body
	b, err := io.ReadAll(io.LimitReader(orig, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read request body: %w", err)
	}
	if int64(len(b)) > limit {
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(b), orig), orig}
		return nil, fmt.Errorf("%w: more than %d bytes", ErrBodyTooLarge, limit)
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.ContentLength = int64(len(b))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	return b, nil
}

// BodyMode reports whether a request with this method, Content-Type and
// body length is verified by its raw body (a form body is signed through its
// parameters, any other body through the URL's bodySHA256) rather than by
// its URL alone: when it has a body, or declares a content type on a method
// other than GET and HEAD.
func BodyMode(method, contentType string, bodyLen int) bool {
	return bodyLen > 0 || (contentType != "" && method != http.MethodGet && method != http.MethodHead)
}

// Request returns the VerifyWebhookRequest for r, whose public URL is
// publicURL and whose body, already read, is body: the signature,
// signature-settings and idempotency headers, and the raw body with its
// content type when [BodyMode] says so. The caller adds the account, the
// allowed accounts and the route.
func Request(r *http.Request, publicURL string, body []byte) *twilioguardv1.VerifyWebhookRequest {
	req := &twilioguardv1.VerifyWebhookRequest{
		Url:               publicURL,
		Signature:         r.Header.Get(HeaderSignature),
		SignatureSettings: r.Header.Get(HeaderSignatureSettings),
		IdempotencyToken:  r.Header.Get(HeaderIdempotencyToken),
	}
	if ct := r.Header.Get("Content-Type"); BodyMode(r.Method, ct, len(body)) {
		req.Body, req.ContentType = body, ct
	}
	return req
}

// IsInjected reports whether a header name, in any spelling (any case, '_'
// for '-'), is one that adapters set on verified requests: X-Twilioguard-*
// or X-Twilio-Account-Sid. A client-sent copy must never reach an
// application or a gateway's decision.
func IsInjected(name string) bool {
	const prefix, accountSid = "x-twilioguard-", "x-twilio-account-sid"
	return hasPrefixFold(name, prefix) || len(name) == len(accountSid) && hasPrefixFold(name, accountSid)
}

// hasPrefixFold reports whether s starts with prefix, a lower-case header
// name, in any ASCII case and with '_' for '-'. It runs on every header of
// every request, so it neither allocates nor reads past the first byte
// that differs.
func hasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := range len(prefix) {
		c := s[i]
		switch {
		case c == '_':
			c = '-'
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// StripInjected removes from h every header [IsInjected] names.
func StripInjected(h http.Header) {
	for name := range h {
		if IsInjected(name) {
			delete(h, name)
		}
	}
}
