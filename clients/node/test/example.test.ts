// examples/node/server.js, run as a process against the real service with
// requests signed by twilio-node.

import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import twilio from "twilio";

import { binary, freePort, newAccount, send, Service } from "./e2e/harness.js";
import { repoRoot } from "./repo.js";

const root = repoRoot();
const pkg = join(root, "clients", "node");
const bin = binary();

test("examples/node replies to a signed SMS and refuses an unsigned one", { skip: "skip" in bin ? bin.skip : false }, async (t) => {
  assert.ok(existsSync(join(pkg, "dist", "express.js")), "clients/node/dist is missing: run npm run build first");
  if ("skip" in bin) {
    return;
  }
  // The example as a user installs it: its own node_modules with
  // twilioguard (this package), express and twilio.
  const dir = mkdtempSync(join(tmpdir(), "twilioguard-example-"));
  mkdirSync(join(dir, "node_modules"));
  symlinkSync(pkg, join(dir, "node_modules", "twilioguard"));
  for (const dep of ["express", "twilio"]) {
    symlinkSync(join(pkg, "node_modules", dep), join(dir, "node_modules", dep));
  }
  copyFileSync(join(root, "examples", "node", "server.js"), join(dir, "server.js"));

  const service = await Service.start(bin.path);
  const account = newAccount();
  await service.putAccount(account);
  const port = await freePort();
  const app: ChildProcess = spawn(process.execPath, ["server.js"], {
    cwd: dir,
    env: {
      PATH: process.env.PATH,
      PORT: String(port),
      TWILIOGUARD_URL: service.url,
      TWILIOGUARD_PUBLIC_BASE_URL: "https://hooks.example.com",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  app.stdout?.on("data", (c: Buffer) => (output += c.toString()));
  app.stderr?.on("data", (c: Buffer) => (output += c.toString()));
  t.after(async () => {
    app.kill();
    await service.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const deadline = Date.now() + 30_000;
  while (!output.includes("listening on")) {
    assert.ok(app.exitCode === null && Date.now() < deadline, `example did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }

  const params = { AccountSid: account.sid, From: "+14155550199", To: "+14155550100", Body: "Hi" };
  const body = new URLSearchParams(params).toString();
  const headers = { "content-type": "application/x-www-form-urlencoded" };
  const signature = twilio.getExpectedTwilioSignature(account.token, "https://hooks.example.com/sms", params);
  const ok = await send(`http://127.0.0.1:${port}/sms`, { body, headers: { ...headers, "x-twilio-signature": signature } });
  assert.equal(ok.status, 200, ok.text);
  assert.match(ok.text, /<Message>The Robots are coming! Head for the hills!<\/Message>/);
  const refused = await send(`http://127.0.0.1:${port}/sms`, { body, headers });
  assert.equal(refused.status, 403);
  assert.match(output, /twilio webhook refused.*reason=MISSING_SIGNATURE/, "the refusal is logged");
});

