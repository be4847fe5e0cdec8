// Package extauthz serves Envoy's external authorization API
// (envoy.service.auth.v3.Authorization/Check) on top of a webhook [Verifier],
// so Envoy can refuse webhook requests that Twilio did not sign before they
// reach an application.
//
// Envoy's ext_authz filter must run in gRPC mode and send the body as bytes
// (with_request_body with pack_as_bytes: true); deploy/envoy/envoy.yaml is a
// complete configuration. Per-route context_extensions configure the check:
//
//   - public_base_url: the scheme, host and optional path prefix Twilio
//     used; the signed URL is this plus the request's path and query.
//     Without it the URL is built from the request's :scheme and :authority,
//     which is wrong behind a TLS-terminating proxy.
//   - twilio_accounts: a comma-separated list of the accounts the route
//     accepts.
//   - mode: "shadow" lets every request through and reports the verdict in
//     the x-twilioguard-shadow request header, the metrics and the log.
//   - route: a label for logs and metrics.
//
// Any other key is a configuration error, answered with a gRPC error so that
// Envoy fails closed.
//
// On a valid signature the request goes upstream with x-twilioguard-verified:
// true and x-twilio-account-sid set, replacing any copies the client sent. A
// bad signature is denied with 403, a malformed request with 400 and a
// partial body with 413; the client sees only the status text, while the
// reason and diagnosis of a request that was not verified go to the log and
// to Envoy's dynamic metadata (namespace envoy.filters.http.ext_authz, keys
// result, reason, hint, account_sid, and mode on shadow routes) for the
// access log. When the verifier cannot decide, Check returns a gRPC error and
// Envoy applies status_on_error.
//
// Translation is kept apart from serving: the same Check is served by a
// connect handler ([Server.Handler]) on the service's port and, where the
// lower per-call cost matters, by a native grpc-go server
// ([Server.RegisterGRPC]).
package extauthz
