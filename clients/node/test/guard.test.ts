// Guard: the decision on one request, its log line and the options, with a
// hand-written fake verifier.

import { Code, ConnectError } from "@connectrpc/connect";
import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";

import type { VerifyWebhookInput, Verifier } from "../src/client.js";
import { Guard, isInjected, type BodyState, type IncomingWebhook, type WebhookOptions } from "../src/guard.js";
import { bound, formatLine, type LogFields, type Logger } from "../src/log.js";
import type { Verdict } from "../src/verdict.js";

/** fakeVerifier answers every call with answer and records the inputs. */
function fakeVerifier(answer: Verdict | Error): Verifier & { calls: VerifyWebhookInput[] } {
  const calls: VerifyWebhookInput[] = [];
  return {
    calls,
    verifyWebhook(input) {
      calls.push(input);
      return answer instanceof Error ? Promise.reject(answer) : Promise.resolve(answer);
    },
  };
}

/** recorder is a Logger that keeps its lines. */
function recorder(): Logger & { lines: { level: string; message: string; fields: LogFields }[] } {
  const lines: { level: string; message: string; fields: LogFields }[] = [];
  const at = (level: string) => (fields: LogFields, message: string) => {
    lines.push({ level, message, fields });
  };
  return { lines, debug: at("debug"), info: at("info"), error: at("error") };
}

function incoming(body: BodyState, headers: Record<string, string> = {}, over: Partial<IncomingWebhook> = {}): IncomingWebhook {
  const lower = new Map(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), [v]]));
  return {
    peer: "203.0.113.9:1234",
    tls: true,
    host: "hooks.example.com",
    target: "/sms?x=1",
    header: (name) => lower.get(name) ?? [],
    method: "POST",
    body,
    ...over,
  };
}

const VALID: Verdict = { valid: true, accountSid: "AC1", credential: "auth_token", matchedUrl: "https://hooks.example.com/sms?x=1", hint: "" };
const INVALID: Verdict = { valid: false, accountSid: "AC1", credential: "", matchedUrl: "", hint: "try https", reason: "SIGNATURE_MISMATCH" };
const FORM = { "Content-Type": "application/x-www-form-urlencoded" };
const raw = (s: string): BodyState => ({ kind: "raw", bytes: Buffer.from(s) });

describe("Guard.check", () => {
  const cases: {
    name: string;
    answer: Verdict | Error;
    options?: WebhookOptions;
    body?: BodyState;
    status: number | undefined;
    level: string;
    message: RegExp;
    verdict: boolean;
  }[] = [
    { name: "valid", answer: VALID, status: undefined, level: "debug", message: /^twilio webhook verified$/, verdict: true },
    { name: "not valid", answer: INVALID, status: 403, level: "info", message: /^twilio webhook refused$/, verdict: true },
    {
      name: "not valid, shadow",
      answer: INVALID,
      options: { mode: "shadow" },
      status: undefined,
      level: "info",
      message: /refused \(shadow mode: let through\)/,
      verdict: true,
    },
    {
      name: "duplicate, rejected",
      answer: { ...VALID, duplicate: true, replayCheck: "CHECKED", firstSeenTime: new Date(0) },
      options: { duplicates: "reject" },
      status: 409,
      level: "info",
      message: /duplicate/,
      verdict: true,
    },
    {
      name: "duplicate, allowed",
      answer: { ...VALID, duplicate: true, replayCheck: "CHECKED" },
      status: undefined,
      level: "debug",
      message: /verified/,
      verdict: true,
    },
    {
      name: "duplicate unknown, rejected: through",
      answer: { ...VALID, replayCheck: "UNAVAILABLE" },
      options: { duplicates: "reject" },
      status: undefined,
      level: "debug",
      message: /verified/,
      verdict: true,
    },
    {
      name: "malformed",
      answer: new ConnectError("bad escape", Code.InvalidArgument),
      status: 400,
      level: "info",
      message: /malformed/,
      verdict: false,
    },
    {
      name: "unreachable",
      answer: new ConnectError("connect ECONNREFUSED", Code.Unavailable),
      status: 503,
      level: "error",
      message: /service unavailable/,
      verdict: false,
    },
    {
      name: "unreachable, shadow",
      answer: new ConnectError("connect ECONNREFUSED", Code.Unavailable),
      options: { mode: "shadow" },
      status: undefined,
      level: "error",
      message: /shadow mode/,
      verdict: false,
    },
    {
      name: "caller refused",
      answer: new ConnectError("no", Code.Unauthenticated),
      status: 503,
      level: "error",
      message: /refused this caller/,
      verdict: false,
    },
    { name: "not a ConnectError", answer: new TypeError("boom"), status: 503, level: "error", message: /unavailable/, verdict: false },
    { name: "too large", answer: VALID, body: { kind: "tooLarge" }, status: 413, level: "info", message: /too large/, verdict: false },
    {
      name: "body lost",
      answer: VALID,
      body: { kind: "lost", why: "parsed before" },
      status: 500,
      level: "error",
      message: /misconfigured/,
      verdict: false,
    },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const log = recorder();
      const guard = new Guard({ verifier: fakeVerifier(c.answer), logger: log, route: "sms", ...c.options });
      const d = await guard.check(incoming(c.body ?? raw("a=1"), FORM));
      assert.equal(d.status, c.status);
      assert.equal(d.verdict !== undefined, c.verdict);
      assert.equal(log.lines.length, 1);
      assert.equal(log.lines[0]?.level, c.level);
      assert.match(log.lines[0].message, c.message);
      assert.equal(log.lines[0].fields.route, "sms");
    });
  }

  test("the request sent: raw body, headers, accounts, route", async () => {
    const v = fakeVerifier(VALID);
    const guard = new Guard({ verifier: v, logger: null, accounts: " AC1, AC2 ,", route: "sms" });
    await guard.check(
      incoming(raw("Body=hi"), {
        ...FORM,
        "X-Twilio-Signature": "sig",
        "X-Twilio-Webhooks-Signature-Settings": "key=k,algorithm=HMAC_SHA256",
        "I-Twilio-Idempotency-Token": "tok-1",
      }),
    );
    assert.deepEqual(v.calls[0], {
      url: "https://hooks.example.com/sms?x=1",
      signature: "sig",
      signatureSettings: "key=k,algorithm=HMAC_SHA256",
      idempotencyToken: "tok-1",
      allowedAccounts: ["AC1", "AC2"],
      route: "sms",
      body: Buffer.from("Body=hi"),
      contentType: "application/x-www-form-urlencoded",
    });
  });

  test("GET without body sends no body; params mode sends params", async () => {
    const v = fakeVerifier(VALID);
    const guard = new Guard({ verifier: v, logger: null });
    await guard.check(incoming(raw(""), {}, { method: "GET" }));
    await guard.check(incoming({ kind: "params", pairs: [["a", "1"]] }, FORM));
    await guard.check(incoming(raw(""), { "Content-Type": "application/json" }));
    assert.equal(v.calls[0]?.body, undefined);
    assert.deepEqual(v.calls[1]?.params, [["a", "1"]]);
    assert.equal(v.calls[1].body, undefined);
    assert.deepEqual(v.calls[2]?.body, Buffer.from(""), "an empty JSON body is still checked against bodySHA256");
  });

  test("a refusal logs reason, hints and peer, bounded and escaped", async () => {
    const log = recorder();
    const hint = "line\nbreak " + "h".repeat(400);
    const guard = new Guard({ verifier: fakeVerifier({ ...INVALID, hint, accountSid: "AC\u001b[31m" }), logger: log });
    await guard.check(incoming(raw("a=1"), FORM, { tls: false, target: "/" + "p".repeat(300) }));
    const f = log.lines[0]?.fields ?? {};
    assert.equal(f.reason, "SIGNATURE_MISMATCH");
    assert.equal(f.account_sid, "AC\\x1b[31m");
    assert.ok(String(f.hint).startsWith("line\\x0abreak h"));
    assert.ok(Buffer.byteLength(String(f.hint)) <= 256 + 3);
    assert.ok(Buffer.byteLength(String(f.url)) <= 256 + 3);
    assert.match(String(f.proxy_hint), /plain-HTTP/);
    assert.equal(f.peer, "203.0.113.9");
  });
});

describe("Guard options", () => {
  const saved = { ...process.env };
  afterEach(() => {
    for (const k of Object.keys(process.env)) {
      if (k.startsWith("TWILIOGUARD_")) {
        Reflect.deleteProperty(process.env, k);
      }
    }
    Object.assign(process.env, saved);
  });

  test("environment fallbacks; explicit options win, even empty", async () => {
    process.env.TWILIOGUARD_ACCOUNTS = "ACenv";
    process.env.TWILIOGUARD_PUBLIC_BASE_URL = "https://env.example";
    const v = fakeVerifier(VALID);
    await new Guard({ verifier: v, logger: null }).check(incoming(raw(""), {}, { method: "GET" }));
    assert.deepEqual(v.calls[0]?.allowedAccounts, ["ACenv"]);
    assert.equal(v.calls[0].url, "https://env.example/sms?x=1");
    await new Guard({ verifier: v, logger: null, accounts: [], publicBaseUrl: "" }).check(incoming(raw(""), {}, { method: "GET" }));
    assert.deepEqual(v.calls[1]?.allowedAccounts, []);
    assert.equal(v.calls[1].url, "https://hooks.example.com/sms?x=1");
  });

  test("TWILIOGUARD_URL and TWILIOGUARD_TRUSTED_PROXIES", () => {
    Reflect.deleteProperty(process.env, "TWILIOGUARD_URL");
    assert.throws(() => new Guard({}), /serviceUrl \(or TWILIOGUARD_URL\)/);
    process.env.TWILIOGUARD_URL = "http://127.0.0.1:9";
    process.env.TWILIOGUARD_TRUSTED_PROXIES = "10.0.0.0/8 192.168.1.1,::1";
    assert.doesNotThrow(() => new Guard({}));
    process.env.TWILIOGUARD_TRUSTED_PROXIES = "10.0.0.0/8,nonsense";
    assert.throws(() => new Guard({}), /twilioguard: invalid configuration: trusted proxy "nonsense"/);
  });

  const bad: [string, WebhookOptions, RegExp][] = [
    ["bad service URL", { serviceUrl: "twilioguard:8080" }, /service URL/],
    ["bad mode", { serviceUrl: "http://x", mode: "dry-run" as "shadow" }, /mode must be one of/],
    ["bad duplicates", { serviceUrl: "http://x", duplicates: "drop" as "reject" }, /duplicates must be one of/],
    ["bad maxBodyBytes", { serviceUrl: "http://x", maxBodyBytes: 0 }, /maxBodyBytes/],
    ["bad timeout", { serviceUrl: "http://x", timeoutMs: -1 }, /timeoutMs/],
    ["base URL and proxies", { serviceUrl: "http://x", publicBaseUrl: "https://a.example", trustedProxies: "10.0.0.1" }, /conflict/],
  ];
  for (const [name, options, want] of bad) {
    test(name, () => {
      assert.throws(() => new Guard(options), want);
    });
  }
});

test("isInjected", () => {
  for (const name of ["x-twilioguard-verified", "X-TWILIOGUARD-ROUTE", "x_twilioguard_verified", "X_Twilio_Account_Sid", "x-twilio-account-sid"]) {
    assert.ok(isInjected(name), name);
  }
  for (const name of ["x-twilio-signature", "x-twilioguardx", "x-twilio-account-sidx", "twilioguard-verified"]) {
    assert.ok(!isInjected(name), name);
  }
});

test("bound and formatLine", () => {
  assert.equal(bound("short", 10), "short");
  assert.equal(bound("0123456789abc", 10), "0123456789…");
  assert.equal(bound("ééééé", 3), "é…");
  assert.equal(bound("a\r\nb\u0000\u007f\u2028", 64), "a\\x0d\\x0ab\\x00\\x7f\\u2028");
  assert.equal(formatLine({ reason: "X", hint: "two words", n: 3, e: "" }, "refused"), 'twilioguard: refused reason=X hint="two words" n=3 e=""');
});
