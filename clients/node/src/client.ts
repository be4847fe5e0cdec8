/**
 * The client of the twilioguard VerifierService, over Connect.
 *
 * @module
 */

import { create } from "@bufbuild/protobuf";
import { createClient, type Client as RPCClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { RequestOptions as HTTPRequestOptions } from "node:http";
import type { RequestOptions as HTTPSRequestOptions } from "node:https";

import { VerifierService, VerifyWebhookRequestSchema } from "./gen/twilioguard/v1/verifier_pb.js";
import { paramPairs, type Params } from "./sign.js";
import { toVerdict, type Verdict } from "./verdict.js";

/** The default timeout of one call, in milliseconds. */
export const DEFAULT_TIMEOUT_MS = 5000;

/** One webhook request as it reached the app. */
export interface VerifyWebhookInput {
  /** The full URL Twilio requested (scheme, host, optional port, path and query), byte for byte. */
  url: string;
  /** Decoded form fields; every value of a repeated key counts. */
  params?: Params | undefined;
  /**
   * The raw request body, instead of params (preferred: the service parses
   * form bodies itself and checks the bodySHA256 of JSON bodies).
   */
  body?: Uint8Array | undefined;
  /** The request's Content-Type; selects the raw body mode even for an empty body. */
  contentType?: string | undefined;
  /** The X-Twilio-Signature header. */
  signature?: string | undefined;
  /** The X-Twilio-Webhooks-Signature-Settings header, when present. */
  signatureSettings?: string | undefined;
  /** An account SID or alias; by default the request's AccountSid names the account. */
  account?: string | undefined;
  /** Only these accounts (SIDs or aliases) may have signed the request. */
  allowedAccounts?: readonly string[] | undefined;
  /** A label for the service's logs and metrics. */
  route?: string | undefined;
  /** The I-Twilio-Idempotency-Token header, for the service's duplicate check. */
  idempotencyToken?: string | undefined;
}

/** Options of a {@link Client}. */
export interface ClientOptions {
  /** The timeout of each call in milliseconds (default {@link DEFAULT_TIMEOUT_MS}). */
  timeoutMs?: number | undefined;
  /** Headers sent with every call (for example a gateway's credentials). */
  headers?: Readonly<Record<string, string>> | undefined;
  /** "1.1" (default) or "2" (HTTP/2, h2c for an http:// base URL). */
  httpVersion?: "1.1" | "2" | undefined;
  /** Options for Node's HTTP/1.1 requests, for example a CA for https:// (`{ ca }`). */
  nodeOptions?: Omit<HTTPRequestOptions, "signal"> | Omit<HTTPSRequestOptions, "signal"> | undefined;
}

/** Options of one call. */
export interface CallOptions {
  /** Aborts the call. */
  signal?: AbortSignal | undefined;
}

/**
 * A Verifier answers whether Twilio sent a webhook request: {@link Client},
 * or a fake in tests. A request that is not valid is a verdict; a rejected
 * promise means the verifier could not decide (a ConnectError with its code).
 */
export interface Verifier {
  /** Returns the verdict on one request. */
  verifyWebhook(input: VerifyWebhookInput, options?: CallOptions): Promise<Verdict>;
}

/**
 * Client calls a twilioguard service's VerifierService over the Connect
 * protocol. Errors are ConnectErrors: Code.InvalidArgument when the service
 * finds the request malformed, Code.Unavailable or Code.DeadlineExceeded when
 * it cannot be reached or does not answer in time. It keeps connections
 * alive and is safe to share.
 */
export class Client implements Verifier {
  /** The service's base URL, without a trailing slash. */
  readonly baseUrl: string;
  readonly #rpc: RPCClient<typeof VerifierService>;

  /**
   * Creates a client of the service at baseUrl, e.g. "http://twilioguard:8080"
   * (a path prefix is kept, for a service behind a gateway). Throws when
   * baseUrl is not an http:// or https:// URL without user info, query or
   * fragment, or an option is invalid.
   */
  constructor(baseUrl: string, options: ClientOptions = {}) {
    this.baseUrl = checkBaseURL(baseUrl);
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw new RangeError(`twilioguard client: timeoutMs must be a positive number, got ${timeoutMs}`);
    }
    const headers = Object.entries(options.headers ?? {});
    const interceptors: Interceptor[] = [
      (next) => (req) => {
        for (const [name, value] of headers) {
          req.header.set(name, value);
        }
        return next(req);
      },
    ];
    const common = { baseUrl: this.baseUrl, defaultTimeoutMs: timeoutMs, interceptors };
    const transport =
      options.httpVersion === "2"
        ? createConnectTransport({ ...common, httpVersion: "2" })
        : createConnectTransport({
            ...common,
            httpVersion: "1.1",
            ...(options.nodeOptions && { nodeOptions: options.nodeOptions }),
          });
    this.#rpc = createClient(VerifierService, transport);
  }

  /**
   * Asks the service whether Twilio really sent a webhook request. Throws a
   * TypeError when both params and body are given.
   */
  async verifyWebhook(input: VerifyWebhookInput, options: CallOptions = {}): Promise<Verdict> {
    if (input.params !== undefined && input.body !== undefined) {
      throw new TypeError("twilioguard: give params or body, not both");
    }
    const req = create(VerifyWebhookRequestSchema, {
      url: input.url,
      params: paramPairs(input.params).map(([key, value]) => ({ key, value })),
      body: input.body ?? new Uint8Array(0),
      contentType: input.contentType ?? "",
      signature: input.signature ?? "",
      signatureSettings: input.signatureSettings ?? "",
      account: input.account ?? "",
      allowedAccounts: input.allowedAccounts ? [...input.allowedAccounts] : [],
      route: input.route ?? "",
      idempotencyToken: input.idempotencyToken ?? "",
    });
    return toVerdict(await this.#rpc.verifyWebhook(req, options.signal && { signal: options.signal }));
  }
}

function checkBaseURL(baseUrl: string): string {
  let u: URL;
  try {
    u = new URL(baseUrl);
  } catch {
    throw new TypeError(`twilioguard service URL "${baseUrl}": not a URL (want e.g. http://twilioguard:8080)`);
  }
  if ((u.protocol !== "http:" && u.protocol !== "https:") || u.host === "") {
    throw new TypeError(`twilioguard service URL "${baseUrl}": must be http:// or https:// with a host`);
  }
  if (u.username !== "" || u.password !== "") {
    throw new TypeError("twilioguard service URL: must not carry user info");
  }
  if (u.search !== "" || u.hash !== "" || baseUrl.includes("?") || baseUrl.includes("#")) {
    throw new TypeError(`twilioguard service URL "${baseUrl}": must not carry a query or fragment`);
  }
  return baseUrl.replace(/\/+$/, "");
}
