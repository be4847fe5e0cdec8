/**
 * twilioguard: verify Twilio webhook signatures with a twilioguard service,
 * which holds the auth tokens, so the app holds none.
 *
 * - {@link Client} calls the service's VerifierService over Connect.
 * - `twilioguard/express` has the Express middleware `webhook()`, and
 *   `twilioguard/fastify` the Fastify plugin.
 * - {@link sign} and {@link bodySHA256} make Twilio's signatures for tests.
 *
 * @module
 */

export { Code, ConnectError } from "@connectrpc/connect";

export { DEFAULT_MAX_BODY_BYTES } from "./body.js";
export { Client, DEFAULT_TIMEOUT_MS, type CallOptions, type ClientOptions, type Verifier, type VerifyWebhookInput } from "./client.js";
export { isInjected, type WebhookOptions } from "./guard.js";
export { consoleLogger, type LogFields, type Logger } from "./log.js";
export { PROXY_HEADERS, URLPolicy, type PublicURL, type RequestFacts, type URLPolicyOptions, type URLSource } from "./publicurl.js";
export { bodySHA256, sign, type Algorithm, type Params } from "./sign.js";
export type { Reason, Verdict } from "./verdict.js";
