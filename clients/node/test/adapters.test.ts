// The Express middleware and the Fastify plugin with a fake verifier: how
// they read bodies over the limit, in enforcing and shadow mode.

import express from "express";
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";

import type { Verifier } from "../src/client.js";
import type { WebhookOptions } from "../src/guard.js";
import { webhook } from "../src/express.js";
import { FRAMEWORKS, type App } from "./e2e/apps.js";
import { send } from "./e2e/harness.js";

const valid: Verifier = {
  verifyWebhook: () => Promise.resolve({ valid: true, accountSid: "AC1", credential: "auth_token", matchedUrl: "", hint: "" }),
};

const FORM = { "content-type": "application/x-www-form-urlencoded" };
const big = "Body=" + "x".repeat(5000);

describe("bodies over the limit", () => {
  const apps: App[] = [];
  after(() => Promise.all(apps.map((a) => a.close())));

  for (const fw of FRAMEWORKS) {
    const start = async (options: WebhookOptions): Promise<App> => {
      const app = await fw.start({ verifier: valid, maxBodyBytes: 1000, ...options });
      apps.push(app);
      return app;
    };
    for (const chunked of [false, true]) {
      const how = chunked ? "chunked" : "with Content-Length";
      test(`${fw.name}, ${how}: 413`, async () => {
        const app = await start({});
        const res = await send(`${app.url}/sms`, { body: big, headers: FORM, chunked });
        assert.equal(res.status, 413);
      });
      test(`${fw.name}, ${how}, shadow mode: the handler reads the whole body`, async () => {
        const app = await start({ mode: "shadow" });
        const res = await send(`${app.url}/sms`, { body: big, headers: FORM, chunked });
        assert.equal(res.status, 200, res.text);
        const got = JSON.parse(res.text) as { verdict: unknown; body: unknown };
        assert.equal(got.verdict, null);
        if (fw.name === "fastify") {
          assert.deepEqual(got.body, { Body: "x".repeat(5000) });
        }
      });
    }
  }

  test("express, shadow mode: a parser after webhook() reads the whole body", async () => {
    const app = express();
    app.post("/sms", webhook({ verifier: valid, maxBodyBytes: 1000, mode: "shadow", logger: null }), express.urlencoded({ extended: false }), (req, res) => {
      res.json(req.body);
    });
    const server = app.listen(0, "127.0.0.1");
    await new Promise((r) => server.once("listening", r));
    apps.push({ url: "", close: () => new Promise((r) => server.close(() => { r(); })) });
    const addr = server.address();
    const port = typeof addr === "object" && addr !== null ? addr.port : 0;
    for (const chunked of [false, true]) {
      const res = await send(`http://127.0.0.1:${port}/sms`, { body: big, headers: FORM, chunked });
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(JSON.parse(res.text), { Body: "x".repeat(5000) });
    }
  });
});
