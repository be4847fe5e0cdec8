/**
 * Fastify plugin: every route registered after it (in its scope) runs only
 * for requests the twilioguard service says Twilio sent.
 *
 * ```js
 * import Fastify from "fastify";
 * import twilioguard from "twilioguard/fastify";
 *
 * const app = Fastify({ logger: true });
 * await app.register(twilioguard, { serviceUrl: "http://twilioguard:8080" });
 * app.post("/sms", async (request, reply) =>
 *   reply.type("text/xml").send(`<Response><Message>Hi ${request.body.From}</Message></Response>`));
 * ```
 *
 * @module
 */

import type { FastifyInstance, FastifyPluginCallback, FastifyReply, FastifyRequest } from "fastify";
import { PassThrough, type Readable } from "node:stream";

import { parseForm, readBody } from "./body.js";
import {
  abortSignal,
  Guard,
  nodeFacts,
  refusalHeaders,
  refusalText,
  stripInjected,
  type BodyState,
  type IncomingWebhook,
  type RefusalStatus,
  type WebhookOptions,
} from "./guard.js";
import type { LogFields, Logger } from "./log.js";
import type { Verdict } from "./verdict.js";

export type { WebhookOptions } from "./guard.js";
export type { Logger, LogFields } from "./log.js";
export type { Verdict } from "./verdict.js";

declare module "fastify" {
  interface FastifyRequest {
    /** The twilioguard verdict on this request, set by the twilioguard plugin. */
    twilioVerdict?: Verdict;
  }
}

const FORM = "application/x-www-form-urlencoded";

/**
 * The twilioguard plugin. It verifies, in a preHandler hook, every request
 * of the routes registered after it in the scope it is registered in (it is
 * not encapsulated: register it inside a child scope to protect some routes
 * only). Options are those of the Express middleware, with the same
 * environment fallbacks; an invalid option fails the registration. Decision
 * lines go to request.log unless options.logger is set.
 *
 * Answers: 403 when the request is not valid, 400 when the service finds it
 * malformed, 413 when the body is over maxBodyBytes, 409 for a duplicate
 * when duplicates is "reject", 503 when the service cannot be reached or
 * cannot decide (fail closed). A verified request reaches the handler with
 * the verdict on request.twilioVerdict, with client-sent X-Twilioguard-* and
 * X-Twilio-Account-Sid headers removed.
 *
 * The body: a preParsing hook keeps the raw bytes of every body for the
 * service, whatever content-type parser then reads them, and the plugin adds
 * a parser for application/x-www-form-urlencoded when the app has none (a
 * key sent more than once gives an array of its values).
 */
const plugin: FastifyPluginCallback<WebhookOptions> = (fastify: FastifyInstance, options: WebhookOptions, done) => {
  let guard: Guard;
  try {
    guard = new Guard(options, null);
  } catch (err) {
    done(err as Error);
    return;
  }
  const useRequestLog = options.logger === undefined;
  const bodies = new WeakMap<FastifyRequest, BodyState>();

  if (!fastify.hasRequestDecorator("twilioVerdict")) {
    fastify.decorateRequest("twilioVerdict", undefined);
  }
  if (!fastify.hasContentTypeParser(FORM)) {
    fastify.addContentTypeParser(FORM, { parseAs: "buffer" }, (_request, body, done) => {
      done(null, parseForm(body as Buffer));
    });
  }

  fastify.addHook("onRequest", (request, _reply, next) => {
    stripInjected(request.raw);
    next();
  });

  fastify.addHook("preParsing", async (request, reply, payload) => {
    if (Number(request.headers["content-length"] ?? "0") > guard.maxBodyBytes) {
      bodies.set(request, { kind: "tooLarge" });
      return guard.shadow ? payload : refuseEarly(guard, request, reply, useRequestLog);
    }
    const read = await readBody(payload, guard.maxBodyBytes);
    if (read.tooLarge) {
      bodies.set(request, { kind: "tooLarge" });
      if (!guard.shadow) {
        return refuseEarly(guard, request, reply, useRequestLog);
      }
      const rest = new PassThrough();
      rest.write(read.bytes);
      payload.pipe(rest);
      payload.resume();
      return rest;
    }
    bodies.set(request, { kind: "raw", bytes: read.bytes });
    return replay(read.bytes);
  });

  fastify.addHook("preHandler", async (request, reply) => {
    const decision = await guard.check(
      webhookOf(request, reply, bodies.get(request) ?? { kind: "raw", bytes: new Uint8Array(0) }),
      useRequestLog ? requestLogger(request) : undefined,
    );
    if (decision.verdict !== undefined) {
      request.twilioVerdict = decision.verdict;
    }
    if (decision.status !== undefined) {
      return send(reply, decision.status);
    }
  });
  done();
};

// Not encapsulated: the hooks apply to the scope that registers the plugin.
Object.assign(plugin, {
  [Symbol.for("skip-override")]: true,
  [Symbol.for("fastify.display-name")]: "twilioguard",
});

export default plugin;

/** refuseEarly answers a too-large body from the preParsing hook. */
async function refuseEarly(guard: Guard, request: FastifyRequest, reply: FastifyReply, useRequestLog: boolean): Promise<FastifyReply> {
  const decision = await guard.check(webhookOf(request, reply, { kind: "tooLarge" }), useRequestLog ? requestLogger(request) : undefined);
  return send(reply, decision.status ?? 413);
}

function webhookOf(request: FastifyRequest, reply: FastifyReply, body: BodyState): IncomingWebhook {
  return {
    ...nodeFacts(request.raw, request.originalUrl || (request.raw.url ?? "/")),
    method: request.method,
    body,
    signal: abortSignal(reply.raw),
  };
}

function send(reply: FastifyReply, status: RefusalStatus): FastifyReply {
  return reply
    .code(status)
    .headers(refusalHeaders(status))
    .type("text/plain; charset=utf-8")
    .send(refusalText(status) + "\n");
}

/** replay returns a stream that gives the bytes already read to Fastify's parsers. */
function replay(bytes: Buffer): Readable {
  const stream = new PassThrough() as PassThrough & { receivedEncodedLength?: number };
  stream.receivedEncodedLength = bytes.length;
  stream.end(bytes);
  return stream;
}

/** requestLogger writes decision lines to Fastify's request.log (pino). */
function requestLogger(request: FastifyRequest): Logger {
  const log = request.log;
  return {
    debug(fields: LogFields, message: string) {
      log.debug(fields, message);
    },
    info(fields: LogFields, message: string) {
      log.info(fields, message);
    },
    error(fields: LogFields, message: string) {
      log.error(fields, message);
    },
  };
}

