// sign() against the conformance vectors the real SDK signers produced.

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { bodySHA256, sign, type Algorithm } from "../src/sign.js";
import { repoRoot } from "./repo.js";

interface Vector {
  id: string;
  signature: string;
  expect: { verdict: string };
  signed: {
    url: string;
    params: [string, string][] | null;
    string: string | null;
    secret_of: string | null;
    algorithm: string;
  } | null;
}

const vectors = JSON.parse(readFileSync(join(repoRoot(), "signature/testdata/vectors.json"), "utf8")) as {
  secrets: Record<string, string>;
  cases: Vector[];
};

test("sign reproduces every genuine SDK-made vector signed from a URL and params", () => {
  let checked = 0;
  for (const c of vectors.cases) {
    const s = c.signed;
    if (c.expect.verdict !== "valid" || s === null || s.string !== null || s.secret_of === null || s.params === null) {
      continue;
    }
    const secret = vectors.secrets[s.secret_of];
    assert.ok(secret !== undefined, `${c.id}: unknown secret ${s.secret_of}`);
    const got = sign(secret, s.url, s.params, s.algorithm as Algorithm);
    assert.equal(got, c.signature, c.id);
    checked++;
  }
  assert.ok(checked > 100, `only ${checked} vectors checked`);
});

test("a published Twilio example", () => {
  const got = sign("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", {
    CallSid: "CA1234567890ABCDE",
    Caller: "+12349013030",
    Digits: "1234",
    From: "+12349013030",
    To: "+18005551212",
  });
  assert.equal(got, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
});

test("param shapes agree; repeated values sorted by code point and deduplicated", () => {
  const url = "https://x.example/";
  const want = createHmac("sha1", "tok").update(`${url}a1b1b2b\uFFFDb\u{1F600}`).digest("base64");
  const pairs: [string, string][] = [
    ["b", "2"],
    ["a", "1"],
    ["b", "\uFFFD"],
    ["b", "1"],
    ["b", "\u{1F600}"],
    ["b", "2"],
  ];
  const shapes: [string, Parameters<typeof sign>[2]][] = [
    ["pairs", pairs],
    ["record", { b: ["2", "\uFFFD", "1", "\u{1F600}"], a: "1" }],
    ["URLSearchParams", new URLSearchParams(pairs)],
    ["Map", new Map([["a", "1"]])],
  ];
  for (const [name, params] of shapes.slice(0, 3)) {
    assert.equal(sign("tok", url, params), want, name);
  }
  assert.equal(sign("tok", url, shapes[3]?.[1]), createHmac("sha1", "tok").update(`${url}a1`).digest("base64"));
});

test("HMAC-SHA256 and unknown algorithms", () => {
  const want = createHmac("sha256", "k").update("https://x.example/a1").digest("base64");
  assert.equal(sign("k", "https://x.example/", { a: "1" }, "HMAC_SHA256"), want);
  assert.throws(() => sign("k", "https://x.example/", {}, "MD5" as Algorithm), /unsupported signature algorithm/);
});

test("bodySHA256", () => {
  assert.equal(bodySHA256(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  assert.equal(bodySHA256(Buffer.from("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
});
