/**
 * The framework-neutral core of the Express and Fastify middleware: options
 * and their environment fallbacks, the decision on one request, its log
 * line, and the request facts Node's HTTP server gives.
 *
 * @module
 */

import { Code, ConnectError } from "@connectrpc/connect";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { TLSSocket } from "node:tls";

import { DEFAULT_MAX_BODY_BYTES } from "./body.js";
import { Client, type VerifyWebhookInput, type Verifier } from "./client.js";
import { bound, consoleLogger, LABEL_BYTES, TEXT_BYTES, type LogFields, type Logger } from "./log.js";
import { peerString, URLPolicy, type RequestFacts } from "./publicurl.js";
import type { Verdict } from "./verdict.js";

/** Options of the Express middleware and the Fastify plugin. */
export interface WebhookOptions {
  /** The twilioguard service, e.g. "http://twilioguard:8080". Default: TWILIOGUARD_URL. */
  serviceUrl?: string | undefined;
  /**
   * Accounts (SIDs or aliases) allowed to have signed requests, as a list or
   * a comma-separated string; a signature of any other account is refused.
   * Default: TWILIOGUARD_ACCOUNTS, else any account the service knows.
   */
  accounts?: string | readonly string[] | undefined;
  /**
   * The public base URL Twilio calls ("https://hooks.example.com", maybe
   * with a path prefix): the signed URL is this base + the raw request path
   * and query, and no forwarding header is read. Default:
   * TWILIOGUARD_PUBLIC_BASE_URL.
   */
  publicBaseUrl?: string | undefined;
  /**
   * Proxies (CIDRs or addresses, as a list or a comma- or space-separated
   * string) whose Forwarded, X-Forwarded-Proto/Host/Port and X-Original-Host
   * headers are believed; from any other peer they are ignored. Default:
   * TWILIOGUARD_TRUSTED_PROXIES, else none.
   */
  trustedProxies?: string | readonly string[] | undefined;
  /** The forwarding headers read from trusted proxies (default all five). */
  proxyHeaders?: readonly string[] | undefined;
  /**
   * "enforce" (default) refuses requests; "shadow" lets every request
   * through and only logs what it would have refused.
   */
  mode?: "enforce" | "shadow" | undefined;
  /**
   * "allow" (default) lets a duplicate through with verdict.duplicate set;
   * "reject" refuses it with 409.
   */
  duplicates?: "allow" | "reject" | undefined;
  /** A route label for the service's logs and metrics and the log lines. */
  route?: string | undefined;
  /** The largest body read for verification (default 1 MiB); larger is refused with 413. */
  maxBodyBytes?: number | undefined;
  /** The timeout of each call to the service in milliseconds (default 5000). */
  timeoutMs?: number | undefined;
  /** The verifier to ask, instead of a client of serviceUrl (a shared Client, or a fake in tests). */
  verifier?: Verifier | undefined;
  /**
   * Where decision lines go; null discards them. Default: Fastify's
   * request.log, or for Express info and error lines on the console.
   */
  logger?: Logger | null | undefined;
}

/** The body of a request, as the adapter found it. */
export type BodyState =
  /** The raw bytes: the preferred mode. */
  | { kind: "raw"; bytes: Uint8Array }
  /** Form fields recovered exactly from a body the app's parser already read. */
  | { kind: "params"; pairs: [string, string][] }
  /** The body is over the limit. */
  | { kind: "tooLarge" }
  /** The body was read by the app's parser and cannot be recovered. */
  | { kind: "lost"; why: string };

/** One request to decide on. */
export interface IncomingWebhook extends RequestFacts {
  /** The request method. */
  method: string;
  /** Its body. */
  body: BodyState;
  /** Aborted when the client goes away. */
  signal?: AbortSignal | undefined;
}

/** A refusal: the status to answer with (400, 403, 409, 413, 500 or 503). */
export type RefusalStatus = 400 | 403 | 409 | 413 | 500 | 503;

/** The decision on one request. */
export interface Decision {
  /** When set, answer with this status; otherwise let the request through. */
  status?: RefusalStatus;
  /** The service's verdict, when there is one. */
  verdict?: Verdict;
}

/**
 * Guard decides on webhook requests. Create one per middleware; it throws
 * at creation on invalid options, so a misconfiguration fails at start.
 */
export class Guard {
  /** The largest body read. */
  readonly maxBodyBytes: number;
  /** Whether refusals are only logged. */
  readonly shadow: boolean;
  readonly #verifier: Verifier;
  readonly #policy: URLPolicy;
  readonly #accounts: readonly string[];
  readonly #route: string;
  readonly #rejectDuplicates: boolean;
  readonly #logger: Logger | null;

  /**
   * Creates a Guard from options, each falling back to its TWILIOGUARD_*
   * environment variable; defaultLogger is used when options.logger is
   * undefined.
   */
  constructor(options: WebhookOptions = {}, defaultLogger: Logger | null = consoleLogger) {
    const env = process.env;
    const pick = <T>(value: T | undefined, name: string): T | string | undefined => (value !== undefined ? value : env[name]);
    try {
      this.#policy = new URLPolicy({
        publicBaseUrl: pick(options.publicBaseUrl, "TWILIOGUARD_PUBLIC_BASE_URL"),
        trustedProxies: list(pick(options.trustedProxies, "TWILIOGUARD_TRUSTED_PROXIES"), /[\s,]+/),
        proxyHeaders: options.proxyHeaders,
      });
      this.#accounts = list(pick(options.accounts, "TWILIOGUARD_ACCOUNTS"), /,/);
      if (options.verifier !== undefined) {
        this.#verifier = options.verifier;
      } else {
        const url = pick(options.serviceUrl, "TWILIOGUARD_URL");
        if (!url) {
          throw new Error("serviceUrl (or TWILIOGUARD_URL) must name the twilioguard service, e.g. http://twilioguard:8080");
        }
        this.#verifier = new Client(url, { timeoutMs: options.timeoutMs });
      }
      this.maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
      if (!Number.isSafeInteger(this.maxBodyBytes) || this.maxBodyBytes <= 0) {
        throw new Error(`maxBodyBytes must be a positive integer, got ${options.maxBodyBytes}`);
      }
      this.shadow = oneOf(options.mode, "mode", ["enforce", "shadow"]) === "shadow";
      this.#rejectDuplicates = oneOf(options.duplicates, "duplicates", ["allow", "reject"]) === "reject";
    } catch (err) {
      throw new Error(`twilioguard: invalid configuration: ${(err as Error).message}`, { cause: err });
    }
    this.#route = options.route ?? "";
    this.#logger = options.logger !== undefined ? options.logger : defaultLogger;
  }

  /**
   * check decides on one request and logs the decision: a refusal at info,
   * a request the service could not decide on (or a misconfiguration) at
   * error, a verified request at debug. In shadow mode the decision never
   * refuses. logger, when given, replaces the Guard's logger.
   */
  async check(req: IncomingWebhook, logger: Logger | null = this.#logger): Promise<Decision> {
    const pub = this.#policy.rebuild(req);
    const fields: LogFields = {};
    if (this.#route !== "") {
      fields.route = bound(this.#route, LABEL_BYTES);
    }
    fields.url = bound(pub.url, TEXT_BYTES);
    fields.url_from = pub.from;
    const log = new DecisionLog(logger, this.shadow, fields);

    const input: VerifyWebhookInput = {
      url: pub.url,
      signature: req.header("x-twilio-signature")[0],
      signatureSettings: req.header("x-twilio-webhooks-signature-settings")[0],
      idempotencyToken: req.header("i-twilio-idempotency-token")[0],
      allowedAccounts: this.#accounts,
      route: this.#route || undefined,
    };
    switch (req.body.kind) {
      case "tooLarge":
        fields.max_body_bytes = this.maxBodyBytes;
        return log.refuse(413, "info", "twilio webhook refused: request body too large");
      case "lost":
        fields.error = bound(req.body.why, TEXT_BYTES);
        return log.refuse(500, "error", "twilio webhook refused: request body not available (middleware misconfigured)");
      case "params":
        input.params = req.body.pairs;
        break;
      case "raw": {
        const contentType = req.header("content-type")[0] ?? "";
        const method = req.method.toUpperCase();
        if (req.body.bytes.length > 0 || (contentType !== "" && method !== "GET" && method !== "HEAD")) {
          input.body = req.body.bytes;
          input.contentType = contentType;
        }
        break;
      }
    }

    let verdict: Verdict;
    try {
      verdict = await this.#verifier.verifyWebhook(input, { signal: req.signal });
    } catch (err) {
      const e = ConnectError.from(err);
      fields.error = bound(e.message, TEXT_BYTES);
      switch (e.code) {
        case Code.InvalidArgument:
          return log.refuse(400, "info", "twilio webhook refused: malformed request");
        case Code.Unauthenticated:
        case Code.PermissionDenied:
          return log.refuse(503, "error", "twilio webhook refused: the service refused this caller (check its configuration)");
        default:
          // When the client went away nobody reads the answer.
          return log.refuse(503, req.signal?.aborted ? "info" : "error", "twilio webhook refused: service unavailable");
      }
    }

    fields.account_sid = bound(verdict.accountSid, LABEL_BYTES);
    if (!verdict.valid) {
      fields.reason = verdict.reason ?? "SIGNATURE_MISMATCH";
      if (verdict.hint !== "") {
        fields.hint = bound(verdict.hint, TEXT_BYTES);
      }
      if (pub.proxyHint !== "") {
        fields.proxy_hint = bound(pub.proxyHint, TEXT_BYTES);
        fields.peer = bound(peerString(req.peer), LABEL_BYTES);
      }
      return log.refuse(403, "info", "twilio webhook refused", verdict);
    }
    if (verdict.duplicate === true && this.#rejectDuplicates) {
      if (verdict.firstSeenTime !== undefined) {
        fields.first_seen = verdict.firstSeenTime.toISOString();
      }
      return log.refuse(409, "info", "twilio webhook refused: duplicate", verdict);
    }
    fields.credential = bound(verdict.credential, LABEL_BYTES);
    if (verdict.duplicate !== undefined) {
      fields.duplicate = verdict.duplicate;
    }
    logger?.debug(fields, "twilio webhook verified");
    return { verdict };
  }
}

/** DecisionLog writes the one line of a refusal (or, in shadow mode, a let-through). */
class DecisionLog {
  constructor(
    readonly logger: Logger | null,
    readonly shadow: boolean,
    readonly fields: LogFields,
  ) {}

  refuse(status: RefusalStatus, level: "info" | "error", message: string, verdict?: Verdict): Decision {
    if (this.shadow) {
      this.logger?.[level](this.fields, `${message} (shadow mode: let through)`);
      return verdict === undefined ? {} : { verdict };
    }
    this.logger?.[level](this.fields, message);
    return verdict === undefined ? { status } : { status, verdict };
  }
}

function list(value: string | readonly string[] | undefined, sep: RegExp): string[] {
  const items = typeof value === "string" ? value.split(sep) : (value ?? []);
  return items.map((s) => s.trim()).filter((s) => s !== "");
}

function oneOf<T extends string>(value: string | undefined, name: string, allowed: readonly T[]): T {
  if (value === undefined) {
    return allowed[0] as T;
  }
  if (!(allowed as readonly string[]).includes(value)) {
    throw new Error(`${name} must be one of ${allowed.map((a) => `"${a}"`).join(", ")}, got "${value}"`);
  }
  return value as T;
}

/**
 * isInjected reports whether a header name, in any spelling (any case, "_"
 * for "-"), is one twilioguard adapters set on verified requests:
 * X-Twilioguard-* or X-Twilio-Account-Sid. A client-sent copy must never
 * reach the app.
 */
export function isInjected(name: string): boolean {
  const n = name.toLowerCase().replaceAll("_", "-");
  return n.startsWith("x-twilioguard-") || n === "x-twilio-account-sid";
}

/**
 * stripInjected removes every header {@link isInjected} names from a Node
 * request: from req.headers, req.headersDistinct and req.rawHeaders.
 */
export function stripInjected(req: IncomingMessage): void {
  // Node builds headers and headersDistinct from rawHeaders on first use:
  // build them before rawHeaders changes.
  for (const headers of [req.headers, req.headersDistinct]) {
    for (const name of Object.keys(headers)) {
      if (isInjected(name)) {
        Reflect.deleteProperty(headers, name);
      }
    }
  }
  const raw = req.rawHeaders;
  for (let k = raw.length - 2; k >= 0; k -= 2) {
    if (isInjected(raw[k] ?? "")) {
      raw.splice(k, 2);
    }
  }
}

/**
 * nodeFacts returns what the URL rules need of a Node request whose raw
 * request-target is target (Express and Fastify may rewrite req.url when
 * routing; the adapters pass the original).
 */
export function nodeFacts(req: IncomingMessage, target: string): RequestFacts {
  const socket = req.socket as Partial<TLSSocket> | undefined;
  const address = socket?.remoteAddress ?? "";
  const port = socket?.remotePort ?? 0;
  const peer = address === "" ? "" : address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
  const authority = req.headers[":authority"];
  return {
    peer,
    tls: socket?.encrypted === true,
    host: req.headers.host ?? (typeof authority === "string" ? authority : ""),
    target,
    header: (name) => req.headersDistinct[name] ?? [],
  };
}

/** The short plain-text answer of a refusal: no diagnosis, which goes to the log. */
export function refusalText(status: RefusalStatus): string {
  return {
    400: "Bad Request",
    403: "Forbidden",
    409: "Conflict",
    413: "Payload Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
  }[status];
}

/** refusalHeaders are the headers of a refusal: 413 closes the connection, 503 asks to retry. */
export function refusalHeaders(status: RefusalStatus): Record<string, string> {
  if (status === 413) {
    return { Connection: "close" };
  }
  return status === 503 ? { "Retry-After": "1" } : {};
}

/** abortSignal returns a signal aborted when the client closes the connection before the answer. */
export function abortSignal(res: ServerResponse): AbortSignal {
  const ctrl = new AbortController();
  const onClose = (): void => {
    if (!res.writableFinished) {
      ctrl.abort();
    }
  };
  res.once("close", onClose);
  return ctrl.signal;
}
