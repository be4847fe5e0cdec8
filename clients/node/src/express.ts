/**
 * Express middleware: the successor of twilio.webhook(), with no auth token
 * in the app.
 *
 * ```js
 * import express from "express";
 * import { webhook } from "twilioguard/express";
 *
 * const app = express();
 * app.post("/sms", webhook({ serviceUrl: "http://twilioguard:8080" }), (req, res) => {
 *   res.type("text/xml").send(`<Response><Message>Hi ${req.body.From}</Message></Response>`);
 * });
 * ```
 *
 * @module
 */

import type { IncomingMessage, ServerResponse } from "node:http";

import { formPairs, isForm, isJSON, parseForm, readBody } from "./body.js";
import {
  abortSignal,
  Guard,
  nodeFacts,
  refusalHeaders,
  refusalText,
  stripInjected,
  type BodyState,
  type RefusalStatus,
  type WebhookOptions,
} from "./guard.js";
import type { Verdict } from "./verdict.js";

export type { WebhookOptions } from "./guard.js";
export type { Logger, LogFields } from "./log.js";
export type { Verdict } from "./verdict.js";

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** The twilioguard verdict on this request, set by webhook(). */
      twilioVerdict?: Verdict;
      /** The raw request body, kept by keepRawBody or by webhook(). */
      rawBody?: Buffer;
    }
  }
}

/** The parts of an Express request the middleware reads and sets. */
export type WebhookRequest = IncomingMessage & {
  originalUrl?: string;
  body?: unknown;
  rawBody?: unknown;
  twilioVerdict?: Verdict;
};

/** An Express (or Connect-style) middleware function. */
export type Middleware = (req: WebhookRequest, res: ServerResponse, next: (err?: unknown) => void) => void;

/**
 * keepRawBody is a body-parser verify hook that keeps the raw bytes of a
 * body as req.rawBody, so that webhook() can verify requests whose body a
 * parser already read:
 *
 * ```js
 * app.use(express.urlencoded({ extended: false, verify: keepRawBody }));
 * app.use(express.json({ verify: keepRawBody }));
 * ```
 */
export function keepRawBody(req: IncomingMessage, _res: ServerResponse, buf: Buffer): void {
  (req as WebhookRequest).rawBody = buf;
}

/**
 * webhook returns middleware that lets a request through only when the
 * twilioguard service says Twilio sent it. Options fall back to the
 * TWILIOGUARD_URL, TWILIOGUARD_ACCOUNTS, TWILIOGUARD_PUBLIC_BASE_URL and
 * TWILIOGUARD_TRUSTED_PROXIES environment variables; an invalid option
 * throws here, at start.
 *
 * Answers: 403 when the request is not valid, 400 when the service finds it
 * malformed, 413 when the body is over maxBodyBytes, 409 for a duplicate
 * when duplicates is "reject", 503 when the service cannot be reached or
 * cannot decide (fail closed), 500 when the body was read by a parser that
 * did not keep it. Reasons and hints go to the log, never to the caller.
 * A verified request reaches the next handler with the verdict on
 * req.twilioVerdict, with client-sent X-Twilioguard-* and
 * X-Twilio-Account-Sid headers removed.
 *
 * The body: the middleware prefers the raw bytes. When no body parser ran
 * before it, it reads them itself and then sets req.rawBody and req.body (a
 * form as express.urlencoded({ extended: false }) gives it, JSON parsed), so
 * later body parsers are not needed. When a parser ran before it, the raw
 * bytes come from req.rawBody (see {@link keepRawBody}) or from a Buffer
 * req.body (express.raw()); without them, a form body is verified from
 * req.body only when that is a flat object of strings and string arrays
 * (extended: false), which holds every value of repeated keys; anything
 * else (a JSON body, extended: true nesting) is refused with 500 and an
 * error line saying to add keepRawBody.
 */
export function webhook(options: WebhookOptions = {}): Middleware {
  const guard = new Guard(options);
  return (req, res, next) => {
    verify(guard, req, res).then((pass) => {
      if (pass) {
        next();
      }
    }, next);
  };
}

async function verify(guard: Guard, req: WebhookRequest, res: ServerResponse): Promise<boolean> {
  stripInjected(req);
  const contentType = req.headers["content-type"];
  let body: BodyState;
  if (Buffer.isBuffer(req.rawBody)) {
    body = { kind: "raw", bytes: req.rawBody };
  } else if (Buffer.isBuffer(req.body)) {
    body = { kind: "raw", bytes: req.body };
  } else if (!req.readableEnded && !(req.complete && !req.readable)) {
    const declared = Number(req.headers["content-length"] ?? "0");
    if (declared > guard.maxBodyBytes) {
      body = { kind: "tooLarge" };
    } else {
      const read = await readBody(req, guard.maxBodyBytes);
      if (read.tooLarge) {
        body = { kind: "tooLarge" };
        if (guard.shadow) {
          giveBack(req, read.bytes);
        }
      } else {
        body = { kind: "raw", bytes: read.bytes };
        req.rawBody = read.bytes;
        req.body ??= appBody(contentType, read.bytes);
      }
    }
  } else {
    const pairs = isForm(contentType) ? formPairs(req.body) : undefined;
    body =
      pairs !== undefined
        ? { kind: "params", pairs }
        : {
            kind: "lost",
            why:
              "a body parser read the request body before twilioguard's webhook() and did not keep it: " +
              "add verify: keepRawBody (from twilioguard/express) to express.urlencoded()/express.json(), " +
              "or use webhook() before the parser",
          };
  }

  const decision = await guard.check({
    ...nodeFacts(req, req.originalUrl ?? req.url ?? "/"),
    method: req.method ?? "GET",
    body,
    signal: abortSignal(res),
  });
  if (decision.verdict !== undefined) {
    req.twilioVerdict = decision.verdict;
  }
  if (decision.status !== undefined) {
    refuse(res, decision.status);
    return false;
  }
  return true;
}

/**
 * giveBack puts the bytes read from a request back, so that the app's own
 * parser reads the whole body: readBody left the stream paused, and a paused
 * stream does not flow again by itself when a parser listens for data.
 */
function giveBack(req: IncomingMessage, bytes: Buffer): void {
  req.unshift(bytes);
  const onListener = (event: string | symbol): void => {
    if (event === "data") {
      req.off("newListener", onListener);
      process.nextTick(() => req.resume());
    }
  };
  req.on("newListener", onListener);
}

/** appBody is the req.body the app's usual parsers would have set. */
function appBody(contentType: string | undefined, bytes: Buffer): unknown {
  if (isForm(contentType)) {
    return parseForm(bytes);
  }
  if (isJSON(contentType) && bytes.length > 0) {
    try {
      return JSON.parse(bytes.toString("utf8")) as unknown;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

function refuse(res: ServerResponse, status: RefusalStatus): void {
  const text = refusalText(status) + "\n";
  res.writeHead(status, {
    "Content-Type": "text/plain; charset=utf-8",
    "Content-Length": Buffer.byteLength(text),
    ...refusalHeaders(status),
  });
  res.end(text);
}
