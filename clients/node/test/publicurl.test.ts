// The public-URL rules against the case file every implementation reads.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";

import { parseBaseURL, requestTarget, URLPolicy } from "../src/publicurl.js";
import { repoRoot } from "./repo.js";

interface Case {
  name: string;
  peer: string;
  tls: boolean;
  host: string;
  target: string;
  headers: Record<string, string[]>;
  publicBaseUrl?: string;
  proxyHeaders?: string[];
  trustedProxies?: string[];
  want: string;
  wantFrom: string;
  wantHint: string;
}

const file = JSON.parse(readFileSync(join(repoRoot(), "webhookreq/testdata/publicurl_cases.json"), "utf8")) as {
  trustedProxies: string[];
  cases: Case[];
};

describe("publicurl_cases.json", () => {
  assert.ok(file.cases.length > 30, `only ${file.cases.length} cases read`);
  for (const c of file.cases) {
    test(c.name, () => {
      const policy = new URLPolicy({
        publicBaseUrl: c.publicBaseUrl,
        // A base URL reads no header, so trusted proxies would conflict with it.
        trustedProxies: c.publicBaseUrl ? [] : (c.trustedProxies ?? file.trustedProxies),
        proxyHeaders: c.proxyHeaders,
      });
      const headers = new Map(Object.entries(c.headers).map(([k, v]) => [k.toLowerCase(), v]));
      const got = policy.rebuild({
        peer: c.peer,
        tls: c.tls,
        host: c.host,
        target: c.target,
        header: (name) => headers.get(name) ?? [],
      });
      assert.equal(got.url, c.want);
      assert.equal(got.from, c.wantFrom);
      if (c.wantHint === "") {
        assert.equal(got.proxyHint, "");
      } else {
        assert.ok(got.proxyHint.includes(c.wantHint), `hint ${JSON.stringify(got.proxyHint)} lacks ${JSON.stringify(c.wantHint)}`);
      }
    });
  }
});

describe("URLPolicy options", () => {
  const bad: [string, () => unknown, RegExp][] = [
    ["base URL with user info", () => new URLPolicy({ publicBaseUrl: "https://u:p@example.com" }), /user info/],
    ["base URL with query", () => new URLPolicy({ publicBaseUrl: "https://example.com/?a=1" }), /query/],
    ["base URL with fragment", () => new URLPolicy({ publicBaseUrl: "https://example.com/#x" }), /fragment/],
    ["base URL not http", () => new URLPolicy({ publicBaseUrl: "ftp://example.com" }), /scheme/],
    ["base URL not a URL", () => new URLPolicy({ publicBaseUrl: "example.com" }), /not a URL/],
    ["bad CIDR", () => new URLPolicy({ trustedProxies: ["10.0.0.0/99"] }), /10\.0\.0\.0\/99/],
    ["not an address", () => new URLPolicy({ trustedProxies: ["proxy.internal"] }), /proxy\.internal/],
    ["unknown proxy header", () => new URLPolicy({ proxyHeaders: ["X-Real-IP"] }), /X-Real-IP/],
    [
      "base URL and trusted proxies",
      () => new URLPolicy({ publicBaseUrl: "https://example.com", trustedProxies: ["10.0.0.0/8"] }),
      /conflict/,
    ],
  ];
  for (const [name, make, want] of bad) {
    test(name, () => {
      assert.throws(make, want);
    });
  }

  test("base URL kept as written, trailing slashes dropped", () => {
    assert.equal(parseBaseURL("https://Hooks.Example.com:8443/tw%69lio//"), "https://Hooks.Example.com:8443/tw%69lio");
  });

  test("IPv4-mapped trusted network and zone", () => {
    const policy = new URLPolicy({ trustedProxies: ["::ffff:10.0.0.0/104", "fe80::1%eth0"] });
    const rebuild = (peer: string) =>
      policy.rebuild({
        peer,
        tls: false,
        host: "internal",
        target: "/sms",
        header: (name) => (name === "x-forwarded-proto" ? ["https"] : []),
      }).url;
    assert.equal(rebuild("10.9.9.9:1"), "https://internal/sms");
    assert.equal(rebuild("[fe80::1%eth0]:1"), "https://internal/sms");
    assert.equal(rebuild("11.0.0.1:1"), "http://internal/sms");
  });
});

test("requestTarget", () => {
  const cases: [string, string][] = [
    ["/sms?x=1", "/sms?x=1"],
    ["", "/"],
    ["https://example.com", "/"],
    ["https://example.com?x", "/?x"],
    ["http://example.com/a?b", "/a?b"],
    ["*", "*"],
  ];
  for (const [target, want] of cases) {
    assert.equal(requestTarget(target), want, target);
  }
});
