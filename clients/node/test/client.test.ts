// Client: its options and errors against a plain HTTP server, and the
// conversion of responses into verdicts.

import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import assert from "node:assert/strict";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { after, before, describe, test } from "node:test";

import { Client, Code, ConnectError } from "../src/index.js";
import { Algorithm, Reason, ReplayCheck, VerifyWebhookResponseSchema } from "../src/gen/twilioguard/v1/verifier_pb.js";
import { toVerdict } from "../src/verdict.js";

describe("Client", () => {
  let server: Server;
  let url = "";
  const seen: { path: string; headers: IncomingHttpHeaders }[] = [];
  before(async () => {
    server = createServer((req, res) => {
      seen.push({ path: req.url ?? "", headers: req.headers });
      if (req.url?.includes("/slow/")) {
        return; // never answers
      }
      res.writeHead(503).end();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const addr = server.address();
    url = `http://127.0.0.1:${typeof addr === "object" && addr !== null ? addr.port : 0}`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  test("calls VerifyWebhook under the base URL's path with the given headers", async () => {
    const client = new Client(`${url}/gateway/`, { headers: { Authorization: "Bearer t" } });
    await assert.rejects(client.verifyWebhook({ url: "https://x.example/" }), (err: unknown) => {
      assert.ok(err instanceof ConnectError);
      assert.equal(err.code, Code.Unavailable);
      return true;
    });
    const last = seen.at(-1);
    assert.equal(last?.path, "/gateway/twilioguard.v1.VerifierService/VerifyWebhook");
    assert.equal(last.headers.authorization, "Bearer t");
  });

  test("timeout: DeadlineExceeded", async () => {
    const client = new Client(`${url}/slow`, { timeoutMs: 200 });
    const started = Date.now();
    await assert.rejects(client.verifyWebhook({ url: "https://x.example/" }), (err: unknown) => {
      assert.equal(ConnectError.from(err).code, Code.DeadlineExceeded);
      return true;
    });
    assert.ok(Date.now() - started < 5000);
  });

  test("unreachable: Unavailable", async () => {
    const client = new Client("http://127.0.0.1:9");
    await assert.rejects(client.verifyWebhook({ url: "https://x.example/" }), (err: unknown) => {
      assert.equal(ConnectError.from(err).code, Code.Unavailable);
      return true;
    });
  });

  test("params and body together: TypeError", async () => {
    await assert.rejects(new Client(url).verifyWebhook({ url: "https://x.example/", params: { a: "1" }, body: Buffer.from("a=1") }), TypeError);
  });

  for (const bad of ["twilioguard:8080", "ftp://x", "http://u:p@x", "http://x/?q=1", "http://x/#f", "not a url"]) {
    test(`bad base URL ${bad}`, () => {
      assert.throws(() => new Client(bad), /service URL/);
    });
  }
});

test("toVerdict", () => {
  const seen = new Date("2026-01-02T03:04:05Z");
  assert.deepEqual(
    toVerdict(
      create(VerifyWebhookResponseSchema, {
        valid: true,
        accountSid: "AC1",
        credential: "auth_token",
        matchedUrl: "https://x.example/",
        algorithm: Algorithm.HMAC_SHA1,
        duplicate: true,
        firstSeenTime: timestampFromDate(seen),
        replayCheck: ReplayCheck.CHECKED,
      }),
    ),
    {
      valid: true,
      accountSid: "AC1",
      credential: "auth_token",
      matchedUrl: "https://x.example/",
      hint: "",
      algorithm: "HMAC_SHA1",
      duplicate: true,
      firstSeenTime: seen,
      replayCheck: "CHECKED",
    },
  );
  const unknown = toVerdict(create(VerifyWebhookResponseSchema, { valid: true, duplicate: false, replayCheck: ReplayCheck.UNAVAILABLE }));
  assert.equal(unknown.duplicate, undefined, "duplicate is unknown unless CHECKED");
  assert.equal(unknown.replayCheck, "UNAVAILABLE");
  assert.equal(toVerdict(create(VerifyWebhookResponseSchema, { reason: Reason.ACCOUNT_MISMATCH })).reason, "ACCOUNT_MISMATCH");
  assert.equal(toVerdict(create(VerifyWebhookResponseSchema, {})).reason, "SIGNATURE_MISMATCH", "invalid without a reason");
  // A reason number a newer service may send and this client does not know.
  // eslint-disable-next-line @typescript-eslint/no-unsafe-enum-assignment
  assert.equal(toVerdict(create(VerifyWebhookResponseSchema, { reason: 99 as Reason })).reason, "SIGNATURE_MISMATCH", "an unknown reason");
});
