package extauthz

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/internal/bound"
	"github.com/twilioguard/twilioguard/webhookreq"
)

// Context extension keys read from ExtAuthzPerRoute.check_settings.context_extensions.
// Any other key is a configuration error, so a misspelled key fails closed
// instead of silently dropping a restriction.
const (
	// ContextPublicBaseURL is the scheme, host and optional path prefix Twilio
	// used, e.g. "https://hooks.example.com". The signed URL is this plus the
	// request's path and query. Without it the URL is built from the
	// request's :scheme and :authority.
	ContextPublicBaseURL = "public_base_url"
	// ContextAccounts is a comma-separated list of account SIDs or aliases
	// the route accepts; a valid signature of any other account is denied.
	// With exactly one account, requests need not carry an AccountSid.
	ContextAccounts = "twilio_accounts"
	// ContextMode is "enforce" (the default) or "shadow". In shadow mode
	// every request goes upstream and the verdict is only reported.
	ContextMode = "mode"
	// ContextRoute is an optional label for logs, metrics and the
	// VerifyWebhookRequest.route field.
	ContextRoute = "route"
	// ContextDuplicates is "allow" (the default) or "reject". A valid
	// request the service reports as a duplicate (verified before within
	// its replay window) goes upstream with [HeaderDuplicate] when allowed,
	// and is denied with 409 when rejected. When the service cannot tell
	// (its duplicate store is unreachable) the request is allowed.
	ContextDuplicates = "duplicates"
)

// Headers set on (or removed from) requests sent upstream. Client-sent copies
// of all four, and of any other x-twilioguard-* header, are always removed
// or overwritten.
const (
	// HeaderAccountSID carries the SID of the account whose credential
	// verified the request.
	HeaderAccountSID = "x-twilio-account-sid"
	// HeaderVerified is "true" on requests whose signature was verified.
	HeaderVerified = "x-twilioguard-verified"
	// HeaderShadow carries the verdict on routes in shadow mode: "valid",
	// "invalid; reason=<REASON>", "duplicate", "malformed", "partial_body"
	// or "error".
	HeaderShadow = "x-twilioguard-shadow"
	// HeaderDuplicate is "true" on a valid request the service reports as
	// verified before within its replay window.
	HeaderDuplicate = "x-twilioguard-duplicate"
)

const (
	headerSignature         = "x-twilio-signature"
	headerSignatureSettings = "x-twilio-webhooks-signature-settings"
	headerIdempotencyToken  = "i-twilio-idempotency-token"
	headerContentType       = "content-type"
	headerContentLength     = "content-length"
	headerPartialBody       = "x-envoy-auth-partial-body"
	headerRequestID         = "x-request-id"
)

// result is what became of one Check, independent of the route's mode.
type result string

const (
	resultValid       result = "valid"        // the signature verified
	resultInvalid     result = "invalid"      // the verifier said no; see reason
	resultDuplicate   result = "duplicate"    // valid, but a duplicate on a route that rejects them
	resultMalformed   result = "malformed"    // the request cannot be a webhook (verifier InvalidArgument, no path...)
	resultPartialBody result = "partial_body" // Envoy sent a truncated body
	resultError       result = "error"        // the service could not decide
)

// route is the per-route configuration carried in context_extensions.
type route struct {
	baseURL          string   // public_base_url without a trailing slash; empty = from the request
	accounts         []string // twilio_accounts
	shadow           bool     // mode: shadow
	rejectDuplicates bool     // duplicates: reject
	name             string   // route name, as configured (VerifyWebhookRequest.route)
	label            string   // route name as a metric label (bounded)
}

// mode returns the route's mode as a label value.
func (r route) mode() string {
	if r.shadow {
		return webhookreq.ModeShadow
	}
	return webhookreq.ModeEnforce
}

// errBodyNotSent reports a request whose body Envoy did not send, which is a
// configuration error (with_request_body missing or disabled on the route).
var errBodyNotSent = errors.New("request has a body but the check request carries none: enable with_request_body on the ext_authz filter")

// routeKey is the raw context extensions of a route; has* say whether a key
// was present (present and empty is an error).
type routeKey struct {
	baseURL, accounts, mode, name, duplicates string
	hasBaseURL, hasAccounts                   bool
}

// routeCache caches parsed routes. Context extensions normally come from
// Envoy's configuration, so there are few distinct ones; but Check is
// reachable by any caller of the port, so only short keys are cached and the
// cache stops growing at maxRoutes entries. Cached routes are shared and
// never modified.
type routeCache struct {
	labels *bound.Labels // route names as metric labels
	routes *bound.Cache[routeKey, route]
}

const (
	maxRoutes = 1024
	// maxCachedKey is the longest context extensions (all values together)
	// whose parsed route is cached.
	maxCachedKey = 1024
	// maxExtensionBytes bounds one context extension value; a longer one is
	// a configuration error.
	maxExtensionBytes = 8 << 10
)

func newRouteCache() *routeCache {
	return &routeCache{labels: bound.NewLabels(""), routes: bound.NewCache[routeKey, route](maxRoutes)}
}

// parse reads the route configuration from context extensions. An error
// means the Envoy configuration is wrong and the request cannot be decided.
func (c *routeCache) parse(ext map[string]string) (route, error) {
	var k routeKey
	for name, v := range ext {
		if len(v) > maxExtensionBytes {
			return route{}, fmt.Errorf("context extension %s is longer than %d bytes", bound.Text(name, bound.LabelBytes), maxExtensionBytes)
		}
		switch name {
		case ContextPublicBaseURL:
			k.baseURL, k.hasBaseURL = v, true
		case ContextAccounts:
			k.accounts, k.hasAccounts = v, true
		case ContextMode:
			k.mode = v
		case ContextRoute:
			k.name = v
		case ContextDuplicates:
			k.duplicates = v
		default:
			return route{}, fmt.Errorf("unknown context extension %q (known: %s, %s, %s, %s, %s)",
				bound.Text(name, bound.LabelBytes), ContextPublicBaseURL, ContextAccounts, ContextMode, ContextRoute, ContextDuplicates)
		}
	}
	cacheable := len(k.baseURL)+len(k.accounts)+len(k.mode)+len(k.name)+len(k.duplicates) <= maxCachedKey
	if cacheable {
		if r, ok := c.routes.Get(k); ok {
			return r, nil
		}
	}
	r, err := k.parse()
	if err != nil {
		return route{}, err
	}
	r.label = c.labels.Value(r.name)
	if cacheable {
		c.routes.Add(k, r)
	}
	return r, nil
}

// parse checks the context extension values.
func (k routeKey) parse() (route, error) {
	r := route{name: k.name}
	if k.hasBaseURL {
		base, err := parseBaseURL(k.baseURL)
		if err != nil {
			return route{}, err
		}
		r.baseURL = base
	}
	if k.hasAccounts {
		for a := range strings.SplitSeq(k.accounts, ",") {
			if a = strings.TrimSpace(a); a != "" {
				r.accounts = append(r.accounts, a)
			}
		}
		if len(r.accounts) == 0 {
			return route{}, fmt.Errorf("context extension %s is empty", ContextAccounts)
		}
	}
	var err error
	if r.shadow, err = webhookreq.ParseMode(k.mode); err != nil {
		return route{}, fmt.Errorf("context extension %s: %w", ContextMode, err)
	}
	if r.rejectDuplicates, err = webhookreq.ParseDuplicates(k.duplicates); err != nil {
		return route{}, fmt.Errorf("context extension %s: %w", ContextDuplicates, err)
	}
	return r, nil
}

// parseBaseURL checks a public_base_url and returns it without a trailing slash.
func parseBaseURL(s string) (string, error) {
	base, err := webhookreq.ParseBaseURL(s)
	if err != nil {
		return "", fmt.Errorf("context extension %s: %w", ContextPublicBaseURL, err)
	}
	return base, nil
}

// headers looks up request headers by lower-case name, in the headers map
// or, with encode_raw_headers, in header_map.
type headers struct {
	m   map[string]string
	raw []*corev3.HeaderValue
}

func newHeaders(h *authv3.AttributeContext_HttpRequest) headers {
	if raw := h.GetHeaderMap().GetHeaders(); len(h.GetHeaders()) == 0 && len(raw) > 0 {
		return headers{raw: raw}
	}
	return headers{m: h.GetHeaders()}
}

// get returns the value of the header name; repeated headers are joined
// with commas, as Envoy does in the headers map.
func (hs headers) get(name string) string {
	if hs.raw == nil {
		return hs.m[name]
	}
	var vals []string
	for _, hv := range hs.raw {
		if strings.EqualFold(hv.GetKey(), name) {
			v := hv.GetValue()
			if raw := hv.GetRawValue(); len(raw) > 0 {
				v = string(raw)
			}
			vals = append(vals, v)
		}
	}
	return strings.Join(vals, ",")
}

// translation is a CheckRequest turned into a VerifyWebhookRequest.
type translation struct {
	req       *twilioguardv1.VerifyWebhookRequest
	requestID string // x-request-id, for logs
	path      string // path without the query, for logs
}

// verifyRequest builds the VerifyWebhookRequest for a CheckRequest on route r.
// It returns result "" and the translation, or a non-empty result
// (resultMalformed, resultPartialBody or resultError) and an error saying why
// no request could be built.
func verifyRequest(check *authv3.CheckRequest, r route) (translation, result, error) {
	h := check.GetAttributes().GetRequest().GetHttp()
	if h == nil {
		return translation{}, resultMalformed, errors.New("check request has no HTTP attributes")
	}
	hs := newHeaders(h)
	header := hs.get
	t := translation{requestID: header(headerRequestID)}

	path := h.GetPath()
	if path == "" {
		path = header(":path")
	}
	if !strings.HasPrefix(path, "/") {
		return t, resultMalformed, fmt.Errorf("request path %q is not an origin-form path", path)
	}
	t.path, _, _ = strings.Cut(path, "?")

	body := h.GetRawBody()
	if len(body) == 0 && h.GetBody() != "" {
		body = []byte(h.GetBody()) // pack_as_bytes: false; fine for ASCII form bodies
	}
	if header(headerPartialBody) == "true" {
		return t, resultPartialBody, errors.New("partial body from Envoy (allow_partial_message is on and the body is over max_request_bytes)")
	}
	if cl := header(headerContentLength); cl != "" {
		n, err := strconv.ParseInt(cl, 10, 64)
		switch {
		case err != nil:
			return t, resultMalformed, fmt.Errorf("content-length %q: %w", cl, err)
		case n > 0 && len(body) == 0:
			return t, resultError, errBodyNotSent
		case n != int64(len(body)):
			return t, resultPartialBody, fmt.Errorf("content-length is %d but Envoy sent %d body bytes", n, len(body))
		}
	}

	base := r.baseURL
	if base == "" {
		scheme, host := h.GetScheme(), h.GetHost()
		if scheme == "" {
			scheme = header(":scheme")
		}
		if host == "" {
			host = header(":authority")
		}
		if scheme == "" || host == "" {
			return t, resultMalformed, errors.New("request has no scheme or host and the route sets no public_base_url")
		}
		base = scheme + "://" + host
	}

	t.req = &twilioguardv1.VerifyWebhookRequest{
		Url:               base + path,
		Body:              body,
		ContentType:       header(headerContentType),
		Signature:         header(headerSignature),
		SignatureSettings: header(headerSignatureSettings),
		IdempotencyToken:  header(headerIdempotencyToken),
		AllowedAccounts:   r.accounts,
		Route:             r.name,
	}
	return t, "", nil
}

// verdict is the decision on one Check, ready to become a CheckResponse.
type verdict struct {
	result     result
	reason     string // VerifyWebhookResponse.reason enum name, when invalid
	hint       string // diagnosis for logs and dynamic metadata, never for the client
	accountSID string // set when valid
	duplicate  bool   // valid, and verified before within the replay window
	firstSeen  time.Time
	route      route
}

// allowed reports whether the request goes upstream.
func (v verdict) allowed() bool { return v.result == resultValid || v.route.shadow }

// verified reports whether the signature is genuine (the request may still
// be a rejected duplicate).
func (v verdict) verified() bool { return v.result == resultValid || v.result == resultDuplicate }

// shadowValue is the HeaderShadow value for v.
func (v verdict) shadowValue() string {
	if v.result == resultInvalid && v.reason != "" {
		return string(resultInvalid) + "; reason=" + v.reason
	}
	return string(v.result)
}

// fromVerifyResponse turns a verifier's answer into a verdict.
func fromVerifyResponse(r route, resp *twilioguardv1.VerifyWebhookResponse) verdict {
	if resp.GetValid() {
		v := verdict{result: resultValid, accountSID: resp.GetAccountSid(), duplicate: resp.GetDuplicate(), route: r}
		if v.duplicate {
			v.firstSeen = resp.GetFirstSeenTime().AsTime()
			if r.rejectDuplicates {
				v.result = resultDuplicate
			}
		}
		return v
	}
	reason := resp.GetReason()
	if reason == twilioguardv1.Reason_REASON_UNSPECIFIED {
		reason = twilioguardv1.Reason_SIGNATURE_MISMATCH // invalid without a reason: still invalid
	}
	return verdict{result: resultInvalid, reason: reason.String(), hint: resp.GetHint(), accountSID: resp.GetAccountSid(), route: r}
}

// denyStatus is the HTTP status, gRPC code and body of a denied request.
func denyStatus(res result) (typev3.StatusCode, codes.Code, string) {
	switch res {
	case resultMalformed:
		return typev3.StatusCode_BadRequest, codes.InvalidArgument, "Bad Request\n"
	case resultPartialBody:
		return typev3.StatusCode_PayloadTooLarge, codes.InvalidArgument, "Payload Too Large\n"
	case resultDuplicate:
		return typev3.StatusCode_Conflict, codes.AlreadyExists, "Conflict\n"
	default:
		return typev3.StatusCode_Forbidden, codes.PermissionDenied, "Forbidden\n"
	}
}

// forgedHeaders returns, for removal, the request headers a client may
// have sent to look verified that an answer does not set or remove anyway:
// other x-twilioguard-* names (x-twilioguard-reason), and spellings Envoy
// does not match to the injected ones (an underscore for a dash:
// x_twilioguard_verified).
func forgedHeaders(h *authv3.AttributeContext_HttpRequest) []string {
	var out []string
	check := func(name string) {
		if !webhookreq.IsInjected(name) {
			return
		}
		if name = strings.ToLower(name); !slices.Contains(injected[:], name) && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	for name := range h.GetHeaders() {
		check(name)
	}
	for _, hv := range h.GetHeaderMap().GetHeaders() {
		check(hv.GetKey())
	}
	return out
}

// setHeader returns a header mutation that replaces every client-sent copy.
func setHeader(key, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: key, Value: value},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// injected are the headers an allowed request's answer sets or removes:
// each is always one or the other, so no client-sent copy goes upstream.
var injected = [...]string{HeaderVerified, HeaderAccountSID, HeaderShadow, HeaderDuplicate}

// Bits of a set of injected headers, in the order of injected.
const (
	setsVerified = 1 << iota
	setsAccount
	setsShadow
	setsDuplicate
)

// Parts of responses that never change, shared by all responses (marshalling
// only reads them).
var (
	verifiedTrue    = setHeader(HeaderVerified, "true")
	duplicateTrue   = setHeader(HeaderDuplicate, "true")
	denyContentType = []*corev3.HeaderValueOption{setHeader("content-type", "text/plain; charset=utf-8")}
	// removals[set] lists the injected headers not in set, to strip.
	removals = func() (r [1 << len(injected)][]string) {
		for set := range r {
			for i, h := range injected {
				if set&(1<<i) == 0 {
					r[set] = append(r[set], h)
				}
			}
		}
		return r
	}()
)

// metadata returns the dynamic metadata Envoy stores for its access log
// (namespace envoy.filters.http.ext_authz): the verdict on a request that
// was not verified, nil for a verified one. A verified request is visible in
// the access log through the headers sent upstream
// (%REQ(X-TWILIO-ACCOUNT-SID)%), and leaving the Struct out of the most
// common answer saves a good part of its encoding and decoding cost.
func metadata(v verdict) *structpb.Struct {
	if v.result == resultValid {
		return nil
	}
	fields := make(map[string]*structpb.Value, 5)
	fields["result"] = structpb.NewStringValue(string(v.result))
	if v.route.shadow {
		fields["mode"] = structpb.NewStringValue(webhookreq.ModeShadow)
	}
	if v.reason != "" {
		fields["reason"] = structpb.NewStringValue(v.reason)
	}
	if v.hint != "" {
		fields["hint"] = structpb.NewStringValue(v.hint)
	}
	if v.accountSID != "" {
		fields["account_sid"] = structpb.NewStringValue(v.accountSID)
	}
	return &structpb.Struct{Fields: fields}
}

// checkResponse builds the CheckResponse for v. It never contains the hint
// or reason in anything the client sees; those go to dynamic metadata only.
func checkResponse(v verdict) *authv3.CheckResponse {
	meta := metadata(v)

	if !v.allowed() {
		status, code, body := denyStatus(v.result)
		return &authv3.CheckResponse{
			Status: &rpcstatus.Status{Code: int32(code)},
			HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
				Status:  &typev3.HttpStatus{Code: status},
				Headers: denyContentType,
				Body:    body,
			}},
			DynamicMetadata: meta,
		}
	}

	ok := &authv3.OkHttpResponse{Headers: make([]*corev3.HeaderValueOption, 0, len(injected))}
	set := 0
	if v.verified() {
		ok.Headers, set = append(ok.Headers, verifiedTrue), set|setsVerified
		if v.accountSID != "" {
			ok.Headers, set = append(ok.Headers, setHeader(HeaderAccountSID, v.accountSID)), set|setsAccount
		}
	}
	if v.route.shadow {
		ok.Headers, set = append(ok.Headers, setHeader(HeaderShadow, v.shadowValue())), set|setsShadow
	}
	if v.duplicate {
		ok.Headers, set = append(ok.Headers, duplicateTrue), set|setsDuplicate
	}
	ok.HeadersToRemove = removals[set]
	return &authv3.CheckResponse{
		Status:          &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse:    &authv3.CheckResponse_OkResponse{OkResponse: ok},
		DynamicMetadata: meta,
	}
}
