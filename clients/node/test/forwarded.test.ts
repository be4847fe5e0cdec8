// IP addresses, networks and Forwarded headers.

import assert from "node:assert/strict";
import { test } from "node:test";

import { formatIP, parseForwarded, parseIP, parseNode, parsePrefix, prefixContains } from "../src/forwarded.js";

test("parseIP", () => {
  const cases: [string, string | undefined][] = [
    ["192.0.2.1", "192.0.2.1"],
    ["::1", "::1"],
    ["2001:db8::", "2001:db8::"],
    ["2001:DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["::ffff:10.1.2.3", "10.1.2.3"],
    ["::ffff:a01:203", "10.1.2.3"],
    ["fe80::1%eth0", "fe80::1"],
    ["1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"],
    ["192.0.2.256", undefined],
    ["01.2.3.4", undefined],
    ["1:2:3:4:5:6:7:8:9", undefined],
    ["1::2::3", undefined],
    ["12345::", undefined],
    ["unknown", undefined],
    ["", undefined],
  ];
  checkAddresses(parseIP, cases);
});

/** checkAddresses checks that parse gives each case's address (undefined: none). */
function checkAddresses(parse: (s: string) => Uint8Array | undefined, cases: [string, string | undefined][]): void {
  for (const [input, want] of cases) {
    const got = parse(input);
    assert.equal(got === undefined ? undefined : formatIP(got), want, input);
  }
}

test("parseNode", () => {
  const cases: [string, string | undefined][] = [
    ["192.0.2.43:47011", "192.0.2.43"],
    ["[2001:db8:cafe::17]:4711", "2001:db8:cafe::17"],
    ["[2001:db8:cafe::17]", "2001:db8:cafe::17"],
    ["2001:db8:cafe::17", "2001:db8:cafe::17"],
    ["192.0.2.43:0", undefined],
    ["[::1]x", undefined],
    ["_hidden", undefined],
    ["unknown", undefined],
  ];
  checkAddresses(parseNode, cases);
});

test("prefixes", () => {
  const cases: [string, string, boolean][] = [
    ["10.0.0.0/8", "10.255.0.1", true],
    ["10.0.0.0/8", "11.0.0.1", false],
    ["10.1.2.3", "10.1.2.3", true],
    ["10.1.2.3", "10.1.2.4", false],
    ["192.168.0.0/23", "192.168.1.200", true],
    ["192.168.0.0/23", "192.168.2.1", false],
    ["2001:db8::/32", "2001:db8:ffff::1", true],
    ["2001:db8::/32", "2001:db9::1", false],
    ["0.0.0.0/0", "203.0.113.9", true],
    ["::/0", "203.0.113.9", false],
    ["::ffff:0:0/96", "203.0.113.9", true],
  ];
  for (const [prefix, ip, want] of cases) {
    const addr = parseIP(ip);
    assert.ok(addr);
    assert.equal(prefixContains(parsePrefix(prefix), addr), want, `${prefix} ∋ ${ip}`);
  }
  for (const bad of ["10.0.0.0/33", "::/129", "10.0.0.0/x", "host", ""]) {
    assert.throws(() => parsePrefix(bad), /trusted proxy/, bad);
  }
});

test("parseForwarded", () => {
  assert.deepEqual(parseForwarded(['for="[2001:db8::1]:80";Proto=https, for=10.0.0.1;host="a,b;c"']), [
    { for: "[2001:db8::1]:80", proto: "https", host: "" },
    { for: "10.0.0.1", proto: "", host: "a,b;c" },
  ]);
  assert.deepEqual(parseForwarded(["for=a", "", "host=b"]), [
    { for: "a", proto: "", host: "" },
    { for: "", proto: "", host: "b" },
  ]);
  assert.deepEqual(parseForwarded(['host="q\\"uoted"']), [{ for: "", proto: "", host: 'q"uoted' }]);
  for (const bad of ['for="unterminated', "for=a;for=b", "=x", "for=a b", "noequals"]) {
    assert.throws(() => parseForwarded([bad]), /malformed Forwarded/, bad);
  }
});
