/**
 * Twilio's X-Twilio-Signature algorithm, for signing requests in tests.
 *
 * @module
 */

import { createHash, createHmac } from "node:crypto";

/**
 * Params are form fields: a record of key to value or to a list of values
 * (Express and Fastify give repeated keys as arrays), URLSearchParams, or
 * [key, value] pairs in any order. Every value of a repeated key counts.
 */
export type Params =
  | Readonly<Record<string, string | readonly string[]>>
  | URLSearchParams
  | Iterable<readonly [string, string]>;

/** paramPairs returns every [key, value] pair of params, repeated keys included. */
export function paramPairs(params: Params | undefined): [string, string][] {
  if (params === undefined) {
    return [];
  }
  if (params instanceof URLSearchParams || Symbol.iterator in params) {
    return Array.from(params as Iterable<readonly [string, string]>, ([k, v]) => [k, v]);
  }
  const out: [string, string][] = [];
  for (const [key, value] of Object.entries(params as Record<string, string | readonly string[]>)) {
    for (const v of typeof value === "string" ? [value] : value) {
      out.push([key, v]);
    }
  }
  return out;
}

/** The algorithms a signature may use: auth tokens sign with HMAC-SHA1. */
export type Algorithm = "HMAC_SHA1" | "HMAC_SHA256";

const HASHES: Record<Algorithm, string> = { HMAC_SHA1: "sha1", HMAC_SHA256: "sha256" };

/** byUTF8 orders strings by their UTF-8 bytes, which is code-point order. */
function byUTF8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

/**
 * sign returns the X-Twilio-Signature Twilio sends for a request.
 *
 * The signed string is url exactly as given, followed by, for each key in
 * code-point order and each distinct value of that key in code-point order,
 * the key and the value. It is signed with HMAC-SHA1 (or HMAC-SHA256 for a
 * SharedKey that allows it) keyed by token, and encoded as standard base64.
 *
 * Pass the decoded fields of a form POST as params; pass nothing for a GET or
 * for a JSON body, whose hash goes in the URL's bodySHA256 query parameter
 * (see {@link bodySHA256}).
 *
 * This is meant for tests: an app never needs the token, since the
 * twilioguard service holds it.
 */
export function sign(token: string, url: string, params?: Params, algorithm: Algorithm = "HMAC_SHA1"): string {
  const hash = (HASHES as Partial<Record<string, string>>)[algorithm];
  if (hash === undefined) {
    throw new TypeError(`unsupported signature algorithm "${algorithm}" (want HMAC_SHA1 or HMAC_SHA256)`);
  }
  const grouped = new Map<string, Set<string>>();
  for (const [key, value] of paramPairs(params)) {
    let values = grouped.get(key);
    if (values === undefined) {
      values = new Set();
      grouped.set(key, values);
    }
    values.add(value);
  }
  const mac = createHmac(hash, Buffer.from(token, "utf8"));
  mac.update(url, "utf8");
  for (const key of [...grouped.keys()].sort(byUTF8)) {
    for (const value of [...(grouped.get(key) ?? [])].sort(byUTF8)) {
      mac.update(key, "utf8");
      mac.update(value, "utf8");
    }
  }
  return mac.digest("base64");
}

/**
 * bodySHA256 returns the lowercase hex SHA-256 of a body: the bodySHA256
 * value Twilio puts in the URL of a webhook with a JSON body.
 */
export function bodySHA256(body: Uint8Array | string): string {
  return createHash("sha256").update(body).digest("hex");
}
