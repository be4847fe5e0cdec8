// Package signature computes and verifies the X-Twilio-Signature header that
// Twilio sends with every webhook request.
//
// The signed string is the URL Twilio requested, byte for byte, followed by
// key+value for every form parameter: keys in byte order and, for a key that
// repeats, each distinct value in code-point order. Twilio signs it with
// HMAC-SHA1 under the account's auth token (or, for a webhook signed with a
// SharedKey, with HMAC-SHA1 or HMAC-SHA256 under the key's secret, as named by
// the X-Twilio-Webhooks-Signature-Settings header) and sends the standard,
// padded base64 of the MAC. GET webhooks and JSON webhooks add no parameters;
// a JSON webhook's URL instead carries bodySHA256, the lowercase hex SHA-256
// of the raw body.
//
// Verification accepts a small, fixed set of URL variants, tried in order
// and only after the URL as received fails: the scheme's default port added,
// any port removed, and, when the URL carries user information, each of
// those without it. The variants are built by string surgery on the URL as
// received, never by re-serialising a parsed URL, so nothing is re-encoded
// and no case is changed. Signatures are compared in constant time on their
// decoded bytes; an empty secret never verifies anything; a signature that is
// not exactly standard padded base64 of the length the algorithm produces is
// malformed.
//
// [Sign] and [Verify] cover the common case. [Check] verifies a [Request]
// (decoded parameters, or the raw body) against several [Credential] values
// at once and reports which one matched and under which URL; credentials
// made by [NewCredential] carry their HMAC key prepared, for callers that
// keep them. [Validate] is the one check of a request's form that all of
// these apply: an absolute http:// or https:// URL with a host and no space
// or control character, not both parameters and a body, valid escapes in a
// form body. [AccountSids] lists every account a request names, so that a
// service can refuse one that names an account other than the one whose
// credential verified it. [Diagnose] explains a mismatch to an operator,
// within a bound on what it hashes ([DiagnoseBudget]).
//
// The package uses only the standard library and allocates little: [Verify]
// on a typical webhook, and [Check] with prepared credentials, do not
// allocate at all.
package signature
