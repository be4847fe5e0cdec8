// Real Express and Fastify apps with twilioguard in front of their webhook
// routes, served on loopback.

import express from "express";
import Fastify from "fastify";
import type { Server } from "node:http";

import { isInjected, type WebhookOptions } from "../../src/index.js";
import { keepRawBody, webhook } from "../../src/express.js";
import twilioguard from "../../src/fastify.js";

/** How an Express app parses bodies before webhook() runs. */
export type ExpressParser = "none" | "urlencoded" | "json" | "json+keepRawBody";

/** A running app: its base URL and how to stop it. */
export interface App {
  url: string;
  close(): Promise<void>;
}

/** What the webhook routes answer: what the handler saw. */
export interface Echo {
  verdict: { valid: boolean; accountSid: string; credential: string; reason?: string; duplicate?: boolean } | null;
  body: unknown;
  injected: string[];
}

function echo(verdict: unknown, body: unknown, headers: Record<string, unknown>): Echo {
  return { verdict: (verdict ?? null) as Echo["verdict"], body: body ?? null, injected: Object.keys(headers).filter(isInjected) };
}

/** A framework under test. */
export interface Framework {
  name: string;
  start(options: WebhookOptions): Promise<App>;
}

/** startExpress serves POST and GET /sms and POST /events behind webhook(). */
export async function startExpress(options: WebhookOptions, parser: ExpressParser = "none"): Promise<App> {
  const app = express();
  if (parser === "urlencoded") {
    app.use(express.urlencoded({ extended: false }));
  } else if (parser === "json") {
    app.use(express.json());
  } else if (parser === "json+keepRawBody") {
    app.use(express.json({ verify: keepRawBody }));
  }
  const guard = webhook({ logger: null, ...options });
  app.all("/sms", guard, (req, res) => {
    res.json(echo(req.twilioVerdict, req.body, req.headers));
  });
  app.post("/events", guard, (req, res) => {
    res.json(echo(req.twilioVerdict, req.body, req.headers));
  });
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => {
      resolve(s);
    });
  });
  const addr = server.address();
  return {
    url: `http://127.0.0.1:${typeof addr === "object" && addr !== null ? addr.port : 0}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      }),
  };
}

/** startFastify serves the same routes behind the twilioguard plugin. */
export async function startFastify(options: WebhookOptions): Promise<App> {
  const app = Fastify();
  await app.register(twilioguard, { logger: null, ...options });
  for (const path of ["/sms", "/events"]) {
    app.route({
      method: path === "/sms" ? ["GET", "POST"] : ["POST"],
      url: path,
      handler: (request, reply) => reply.send(echo(request.twilioVerdict, request.body, request.headers)),
    });
  }
  const url = await app.listen({ port: 0, host: "127.0.0.1" });
  return { url, close: () => app.close() };
}

/** The frameworks every end-to-end case runs on. */
export const FRAMEWORKS: Framework[] = [
  { name: "express", start: (o) => startExpress(o) },
  { name: "fastify", start: startFastify },
];
