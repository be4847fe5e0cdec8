// Package webhookreq turns an incoming HTTP request into a VerifyWebhook
// request. It is the one place every adapter (the net/http middleware, the
// inline proxy, the forward-auth handler, the CLI) uses for:
//
//   - rebuilding the public URL Twilio requested ([URLPolicy]): a
//     configured public base URL followed by the raw request-target, or the
//     connection's scheme and Host, overridden by the Forwarded (RFC 7239),
//     X-Forwarded-Proto, X-Forwarded-Host, X-Forwarded-Port and
//     X-Original-Host headers only when the direct peer is a trusted proxy
//     (right-most untrusted rule over several hops);
//   - reading the body within a limit and restoring it byte for byte
//     ([ReadBody]);
//   - deciding whether a request is verified by its raw body or by its URL
//     only ([BodyMode]), and carrying the signature, signature-settings and
//     idempotency headers ([Request]);
//   - removing headers a client may forge to look verified
//     ([StripInjected]);
//   - rebuilding the original request a gateway asks a forward-auth
//     endpoint about, from X-Forwarded-* headers or the path after the
//     endpoint's prefix ([ForwardAuthOriginal]), and telling when the
//     gateway did not forward a form POST's body ([BodyNotForwarded]).
//
// The URL rules are shared with the Python and Node packages through one
// case file, testdata/publicurl_cases.json, which all three test suites read.
package webhookreq
