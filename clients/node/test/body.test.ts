// Form bodies as the app reads them, and recovering fields from an app's
// own parser.

import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { test } from "node:test";

import { formPairs, isForm, isJSON, parseForm, readBody } from "../src/body.js";

test("parseForm", () => {
  const got = parseForm(Buffer.from("To=%2B1415&Body=a+b%21&k=1&k=2&k=3&__proto__=x&empty=&%E2%9C%93=\u2713".replace("\u2713", "é")));
  assert.deepEqual({ ...got }, { To: "+1415", Body: "a b!", k: ["1", "2", "3"], ["__proto__"]: "x", empty: "", "✓": "é" });
  assert.equal(Object.getPrototypeOf(got), Object.prototype, "no prototype pollution");
  assert.deepEqual({ ...parseForm(Buffer.from("?a=1")) }, { "?a": "1" });
});

test("formPairs", () => {
  assert.deepEqual(formPairs({ a: "1", k: ["2", "3"] }), [
    ["a", "1"],
    ["k", "2"],
    ["k", "3"],
  ]);
  assert.deepEqual(formPairs(Object.assign(Object.create(null) as object, { a: "1" })), [["a", "1"]]);
  for (const lossy of [{ a: { b: "1" } }, { a: ["1", { b: 2 }] }, { a: 1 }, "a=1", Buffer.from("a=1"), null, undefined, ["a"], new Map()]) {
    assert.equal(formPairs(lossy), undefined, JSON.stringify(lossy));
  }
});

test("content types", () => {
  assert.ok(isForm("application/x-www-form-urlencoded; charset=UTF-8"));
  assert.ok(!isForm("multipart/form-data"));
  assert.ok(isJSON("Application/JSON"));
  assert.ok(isJSON("application/cloudevents+json; charset=utf-8"));
  assert.ok(!isJSON(undefined));
});

test("readBody stops at the limit", async () => {
  assert.deepEqual(await readBody(Readable.from([Buffer.from("abc"), Buffer.from("def")]), 6), { bytes: Buffer.from("abcdef"), tooLarge: false });
  const over = await readBody(Readable.from([Buffer.from("abc"), Buffer.from("def"), Buffer.from("ghi")]), 5);
  assert.equal(over.tooLarge, true);
  assert.ok(over.bytes.length > 5 && over.bytes.length < 9);
});
