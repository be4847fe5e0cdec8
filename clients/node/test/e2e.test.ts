// End to end: real Express and Fastify apps in front of the real twilioguard
// binary, with requests signed by the real twilio-node SDK.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import twilio from "twilio";

import { bodySHA256 } from "../src/index.js";
import { FRAMEWORKS, startExpress, type App, type Echo, type ExpressParser } from "./e2e/apps.js";
import {
  binary,
  newAccount,
  PROXY_SOURCE,
  send,
  Service,
  testCert,
  TLSProxy,
  type Account,
  type Cert,
  type Response,
} from "./e2e/harness.js";

const bin = binary();
const cert = testCert();
const skip = "skip" in bin ? bin.skip : false;

/** form encodes pairs as Twilio does, repeated keys in order. */
function form(params: Record<string, string | string[]>): string {
  const out = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    for (const value of typeof v === "string" ? [v] : v) {
      out.append(k, value);
    }
  }
  return out.toString();
}

const FORM = { "content-type": "application/x-www-form-urlencoded" };

/** sms is an inbound-SMS webhook of account a. */
function sms(a: Account, extra: Record<string, string | string[]> = {}): Record<string, string | string[]> {
  return { AccountSid: a.sid, From: "+14155550199", To: "+14155550100", Body: "Hello", MessageSid: "SM" + "0".repeat(32), ...extra };
}

/** post sends a form webhook to url signed by twilio-node for signedUrl (default url). */
function post(url: string, a: Account, params: Record<string, string | string[]>, opts: { signedUrl?: string; headers?: Record<string, string>; body?: string; ca?: Buffer; localAddress?: string } = {}): Promise<Response> {
  const signature = twilio.getExpectedTwilioSignature(a.token, opts.signedUrl ?? url, params);
  return send(url, {
    body: opts.body ?? form(params),
    headers: { ...FORM, "x-twilio-signature": signature, ...opts.headers },
    ...(opts.ca && { ca: opts.ca }),
    ...(opts.localAddress && { localAddress: opts.localAddress }),
  });
}

function echoOf(res: Response): Echo {
  assert.equal(res.status, 200, `status ${res.status}: ${res.text}`);
  return JSON.parse(res.text) as Echo;
}

describe("end to end", { skip }, () => {
  let service: Service;
  let stopped: Service;
  const a = newAccount();
  const b = newAccount();
  const apps: App[] = [];

  before(async () => {
    if ("skip" in bin) {
      return;
    }
    service = await Service.start(bin.path);
    await service.putAccount(a);
    await service.putAccount(b);
    stopped = await Service.start(bin.path);
    await stopped.stop();
  });
  after(async () => {
    await Promise.all(apps.map((app) => app.close()));
    await service.stop();
  });

  for (const fw of FRAMEWORKS) {
    describe(fw.name, () => {
      const start = async (options: Parameters<typeof fw.start>[0] = {}): Promise<App> => {
        const app = await fw.start({ serviceUrl: service.url, ...options });
        apps.push(app);
        return app;
      };

      test("signed form webhook: through, verdict and parsed body", async () => {
        const app = await start();
        const got = echoOf(await post(`${app.url}/sms?x=1`, a, sms(a)));
        assert.equal(got.verdict?.valid, true);
        assert.equal(got.verdict.accountSid, a.sid);
        assert.equal(got.verdict.credential, "auth_token");
        assert.deepEqual(got.body, sms(a));
      });

      test("unsigned: 403", async () => {
        const app = await start();
        const res = await send(`${app.url}/sms`, { body: form(sms(a)), headers: FORM });
        assert.equal(res.status, 403);
        assert.doesNotMatch(res.text, /MISSING_SIGNATURE|AC/, "no diagnosis in the answer");
      });

      test("tampered: 403", async () => {
        const app = await start();
        const res = await post(`${app.url}/sms`, a, sms(a), { body: form(sms(a, { Body: "Hello!" })) });
        assert.equal(res.status, 403);
      });

      test("other account: 403 on a route bound to an account, 200 otherwise", async () => {
        const bound = await start({ accounts: [a.sid] });
        assert.equal((await post(`${bound.url}/sms`, b, sms(b))).status, 403);
        assert.equal(echoOf(await post(`${bound.url}/sms`, a, sms(a))).verdict?.accountSid, a.sid);
        const open = await start();
        assert.equal(echoOf(await post(`${open.url}/sms`, b, sms(b))).verdict?.accountSid, b.sid);
      });

      test("repeated keys: every value verified and handed on", async () => {
        const app = await start();
        const params = sms(a, { "MessagingBinding.Address": ["+14155550102", "+14155550101"] });
        const got = echoOf(await post(`${app.url}/sms`, a, params));
        assert.equal(got.verdict?.valid, true);
        assert.deepEqual((got.body as Record<string, unknown>)["MessagingBinding.Address"], ["+14155550102", "+14155550101"]);
        const dropped = sms(a, { "MessagingBinding.Address": "+14155550102" });
        assert.equal((await post(`${app.url}/sms`, a, params, { body: form(dropped) })).status, 403);
      });

      test("malformed body: 400", async () => {
        const app = await start({ accounts: a.sid });
        const res = await post(`${app.url}/sms`, a, sms(a), { body: "Body=%zz" });
        assert.equal(res.status, 400);
      });

      test("GET webhook: the query is signed", async () => {
        const app = await start();
        const url = `${app.url}/sms?${form(sms(a))}`;
        const res = await send(url, { method: "GET", headers: { "x-twilio-signature": twilio.getExpectedTwilioSignature(a.token, url, {}) } });
        assert.equal(echoOf(res).verdict?.valid, true);
        assert.equal((await send(url.replace("Hello", "Hullo"), { method: "GET", headers: { "x-twilio-signature": "x" } })).status, 403);
      });

      test("JSON webhook with bodySHA256", async () => {
        const app = await start({ accounts: a.sid });
        const body = JSON.stringify({ AccountSid: a.sid, EventType: "onMessageAdded", Body: "hi" });
        const url = `${app.url}/events?bodySHA256=${bodySHA256(body)}`;
        const headers = { "content-type": "application/json", "x-twilio-signature": twilio.getExpectedTwilioSignature(a.token, url, {}) };
        const got = echoOf(await send(url, { body, headers }));
        assert.equal(got.verdict?.valid, true);
        assert.deepEqual(got.body, JSON.parse(body));
        assert.equal((await send(url, { body: body.replace("hi", "ho"), headers })).status, 403);
      });

      test("client-sent X-Twilioguard-* and X-Twilio-Account-Sid never reach the app", async () => {
        const app = await start();
        const got = echoOf(
          await post(`${app.url}/sms`, a, sms(a), {
            headers: { "X-Twilioguard-Verified": "true", "x_twilio_account_sid": b.sid, "X-TWILIOGUARD-ROUTE": "x" },
          }),
        );
        assert.deepEqual(got.injected, []);
      });

      test("forged forwarding headers from an untrusted peer are ignored", async () => {
        const app = await start({ trustedProxies: PROXY_SOURCE });
        const forged = { "x-forwarded-proto": "https", "x-forwarded-host": "evil.example", forwarded: "proto=https;host=evil.example" };
        const forUrl = await post(`${app.url}/sms`, a, sms(a), { signedUrl: "https://evil.example/sms", headers: forged });
        assert.equal(forUrl.status, 403);
        const real = await post(`${app.url}/sms`, a, sms(a), { headers: forged });
        assert.equal(echoOf(real).verdict?.valid, true);
      });

      test("body over maxBodyBytes: 413", async () => {
        const app = await start({ maxBodyBytes: 1000 });
        const res = await post(`${app.url}/sms`, a, sms(a, { Body: "x".repeat(2000) }));
        assert.equal(res.status, 413);
      });

      test("shadow mode lets an unsigned request through with its verdict", async () => {
        const app = await start({ mode: "shadow" });
        const got = echoOf(await send(`${app.url}/sms`, { body: form(sms(a)), headers: FORM }));
        assert.equal(got.verdict?.valid, false);
        assert.equal(got.verdict.reason, "MISSING_SIGNATURE");
      });

      test("service stopped: 503, fail closed", async () => {
        const app = await start({ serviceUrl: stopped.url });
        const res = await post(`${app.url}/sms`, a, sms(a));
        assert.equal(res.status, 503);
        assert.equal(res.headers["retry-after"], "1");
      });

      test("duplicates: 409 on a second copy when rejected", async (t) => {
        const app = await start({ duplicates: "reject" });
        const headers = { "i-twilio-idempotency-token": `${fw.name}-${Date.now()}` };
        const first = echoOf(await post(`${app.url}/sms`, a, sms(a), { headers }));
        if (first.verdict?.duplicate === undefined) {
          t.skip("this twilioguard binary has no replay detection");
          return;
        }
        assert.equal(first.verdict.duplicate, false);
        assert.equal((await post(`${app.url}/sms`, a, sms(a), { headers })).status, 409);
      });

      describe("TLS hop", { skip: "skip" in cert ? cert.skip : false }, () => {
        let proxy: TLSProxy;
        const tls = cert as Cert;
        before(async () => {
          proxy = await TLSProxy.start(tls);
        });
        after(() => proxy.close());

        const through = async (options: Parameters<typeof start>[0]): Promise<Response> => {
          const app = await start(options);
          proxy.upstreamPort = Number(new URL(app.url).port);
          return post(`https://localhost:${proxy.port}/sms`, a, sms(a), { ca: tls.cert });
        };

        test("without configuration: 403 (the app sees http://)", async () => {
          assert.equal((await through({})).status, 403);
        });
        test("with the proxy trusted: through", async () => {
          assert.equal(echoOf(await through({ trustedProxies: [PROXY_SOURCE] })).verdict?.valid, true);
        });
        test("with the public base URL: through", async () => {
          assert.equal(echoOf(await through({ publicBaseUrl: `https://localhost:${proxy.port}` })).verdict?.valid, true);
        });
      });
    });
  }

  describe("express with a body parser before webhook()", () => {
    const start = async (parser: ExpressParser): Promise<App> => {
      const app = await startExpress({ serviceUrl: service.url, accounts: a.sid }, parser);
      apps.push(app);
      return app;
    };
    const json = async (app: App): Promise<Response> => {
      const body = JSON.stringify({ AccountSid: a.sid, Body: "hi" });
      const url = `${app.url}/events?bodySHA256=${bodySHA256(body)}`;
      return send(url, { body, headers: { "content-type": "application/json", "x-twilio-signature": twilio.getExpectedTwilioSignature(a.token, url, {}) } });
    };

    test("express.urlencoded({ extended: false }): verified from req.body, repeated keys included", async () => {
      const app = await start("urlencoded");
      const params = sms(a, { Tag: ["b", "a"] });
      assert.equal(echoOf(await post(`${app.url}/sms`, a, params)).verdict?.valid, true);
      assert.equal((await post(`${app.url}/sms`, a, params, { body: form(sms(a, { Tag: "b" })) })).status, 403);
    });
    test("express.json() without keepRawBody: 500, the raw bytes are gone", async () => {
      assert.equal((await json(await start("json"))).status, 500);
    });
    test("express.json({ verify: keepRawBody }): through", async () => {
      assert.equal(echoOf(await json(await start("json+keepRawBody"))).verdict?.valid, true);
    });
  });
});
