/**
 * RFC 7239 Forwarded headers and the IP addresses of proxy hops.
 *
 * @module
 */

import { isIPv4 } from "node:net";

/** One forwarded-element: what one proxy saw of the request it received. */
export interface ForwardedElement {
  /** The for= node as written (may be "unknown" or obfuscated). */
  for: string;
  /** The proto= value. */
  proto: string;
  /** The host= value. */
  host: string;
}

/**
 * parseForwarded parses the lines of a Forwarded header (RFC 7239 §4) into
 * their elements, left (first proxy) to right (last proxy). Several lines
 * form one list. Quoted strings may contain `,` and `;` and quoted pairs;
 * parameter names are case-insensitive. As a leniency for proxies that
 * forget to quote, an unquoted value may hold any visible character except
 * `,`, `;` and `"`. A parameter repeated within one element is an error, as
 * RFC 7239 §4 says. Throws on a malformed header.
 */
export function parseForwarded(lines: readonly string[]): ForwardedElement[] {
  const s = lines.join(",");
  const elems: ForwardedElement[] = [];
  let cur: ForwardedElement = { for: "", proto: "", host: "" };
  let seen = new Set<string>();
  const finish = (): void => {
    if (seen.size > 0) {
      elems.push(cur);
    }
    cur = { for: "", proto: "", host: "" };
    seen = new Set();
  };
  let i = 0;
  for (;;) {
    i = skipOWS(s, i);
    if (i >= s.length) {
      finish();
      return elems;
    }
    if (s[i] === ",") {
      // an empty list element, allowed by the #rule
      finish();
      i++;
      continue;
    }
    let j = i;
    while (j < s.length && isTchar(s.charCodeAt(j))) {
      j++;
    }
    if (j === i || j >= s.length || s[j] !== "=") {
      throw new Error(`malformed Forwarded header: expected a parameter name at offset ${i}`);
    }
    const name = s.slice(i, j).toLowerCase();
    i = j + 1;
    let value: string;
    if (s[i] === '"') {
      let out = "";
      let closed = false;
      i++;
      while (i < s.length) {
        const c = s.charAt(i);
        if (c === "\\" && i + 1 < s.length) {
          out += s.charAt(i + 1);
          i += 2;
          continue;
        }
        i++;
        if (c === '"') {
          closed = true;
          break;
        }
        out += c;
      }
      if (!closed) {
        throw new Error("malformed Forwarded header: unterminated quoted string");
      }
      value = out;
    } else {
      j = i;
      while (j < s.length) {
        const c = s.charCodeAt(j);
        if (c <= 0x20 || c >= 0x7f || c === 0x2c || c === 0x3b || c === 0x22) {
          break;
        }
        j++;
      }
      value = s.slice(i, j);
      i = j;
    }
    if (seen.has(name)) {
      throw new Error(`malformed Forwarded header: parameter "${name}" repeated in one element`);
    }
    seen.add(name);
    if (name === "for" || name === "proto" || name === "host") {
      cur[name] = value;
    }
    i = skipOWS(s, i);
    if (i >= s.length) {
      finish();
      return elems;
    } else if (s[i] === ";") {
      i++;
    } else if (s[i] === ",") {
      finish();
      i++;
    } else {
      throw new Error(`malformed Forwarded header: unexpected "${s[i]}" at offset ${i}`);
    }
  }
}

function skipOWS(s: string, i: number): number {
  while (i < s.length && (s[i] === " " || s[i] === "\t")) {
    i++;
  }
  return i;
}

const TCHAR_PUNCT = "!#$%&'*+-.^_`|~";

/** isTchar reports whether c is an RFC 9110 token character. */
function isTchar(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x30 && c <= 0x39) ||
    (c < 0x80 && TCHAR_PUNCT.includes(String.fromCharCode(c)))
  );
}

/** validPort reports whether p is a decimal port from 1 to 65535. */
export function validPort(p: string): boolean {
  if (!/^[0-9]{1,5}$/.test(p)) {
    return false;
  }
  const n = Number(p);
  return n >= 1 && n <= 65535;
}

/** An IP address as bytes: 4 for IPv4, 16 for IPv6. */
export type IPBytes = Uint8Array;

/**
 * parseIP returns the bytes of an IPv4 or IPv6 address (an IPv6 zone is
 * dropped; an IPv4-mapped IPv6 address becomes IPv4), or undefined.
 */
export function parseIP(s: string): IPBytes | undefined {
  const addr = s.replace(/%.*$/s, "");
  if (isIPv4(addr)) {
    return parseIPv4(addr);
  }
  const v6 = parseIPv6(addr);
  if (v6 === undefined) {
    return undefined;
  }
  if (v6.slice(0, 10).every((b) => b === 0) && v6[10] === 0xff && v6[11] === 0xff) {
    return v6.slice(12);
  }
  return v6;
}

function parseIPv4(s: string): IPBytes | undefined {
  const parts = s.split(".");
  if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255)) {
    return undefined;
  }
  return Uint8Array.from(parts, Number);
}

/** isIPv6 reports whether s is an IPv6 address (IPv4-mapped ones included). */
export function isIPv6(s: string): boolean {
  return parseIPv6(s.replace(/%.*$/s, "")) !== undefined;
}

function parseIPv6(s: string): IPBytes | undefined {
  let text = s;
  let tail: IPBytes = new Uint8Array(0);
  const lastColon = text.lastIndexOf(":");
  if (lastColon >= 0 && text.slice(lastColon + 1).includes(".")) {
    const v4 = parseIPv4(text.slice(lastColon + 1));
    if (v4 === undefined) {
      return undefined;
    }
    tail = v4;
    text = text.slice(0, lastColon + 1) + "0:0";
  }
  const halves = text.split("::");
  if (halves.length > 2) {
    return undefined;
  }
  const groups = (h: string): number[] | undefined => {
    if (h === "") {
      return [];
    }
    const out: number[] = [];
    for (const g of h.split(":")) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) {
        return undefined;
      }
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = groups(halves[0] ?? "");
  const rest = halves.length === 2 ? groups(halves[1] ?? "") : [];
  if (head === undefined || rest === undefined) {
    return undefined;
  }
  const missing = 8 - head.length - rest.length;
  if ((halves.length === 1 && missing !== 0) || (halves.length === 2 && missing < 1)) {
    return undefined;
  }
  const all = [...head, ...new Array<number>(missing).fill(0), ...rest];
  const bytes = new Uint8Array(16);
  all.forEach((g, k) => {
    bytes[2 * k] = g >> 8;
    bytes[2 * k + 1] = g & 0xff;
  });
  if (tail.length === 4) {
    bytes.set(tail, 12);
  }
  return bytes;
}

/**
 * parseNode returns the IP address of a node as written in a peer address,
 * a Forwarded for= parameter or an X-Forwarded-For entry: "192.0.2.43",
 * "192.0.2.43:47011", "[2001:db8:cafe::17]", "[2001:db8:cafe::17]:4711" or a
 * bare IPv6 address. "unknown", obfuscated identifiers ("_hidden") and
 * anything else give undefined: such a hop is never a trusted proxy.
 */
export function parseNode(node: string): IPBytes | undefined {
  let n = node.trim();
  if (n.startsWith("[")) {
    const end = n.indexOf("]");
    if (end < 0) {
      return undefined;
    }
    const rest = n.slice(end + 1);
    if (rest !== "" && (rest[0] !== ":" || !validPort(rest.slice(1)))) {
      return undefined;
    }
    n = n.slice(1, end);
  } else if (n.split(":").length === 2) {
    const [host = "", port = ""] = n.split(":");
    if (!validPort(port)) {
      return undefined;
    }
    n = host;
  }
  return parseIP(n);
}

/** formatIP renders an address for a log line. */
export function formatIP(ip: IPBytes): string {
  if (ip.length === 4) {
    return ip.join(".");
  }
  const groups: string[] = [];
  for (let k = 0; k < 16; k += 2) {
    groups.push((((ip[k] ?? 0) << 8) | (ip[k + 1] ?? 0)).toString(16));
  }
  // Compress the longest run of two or more zero groups, as RFC 5952 says.
  let best = -1;
  let bestLen = 1;
  for (let k = 0; k < 8; ) {
    if (groups[k] !== "0") {
      k++;
      continue;
    }
    let e = k;
    while (e < 8 && groups[e] === "0") {
      e++;
    }
    if (e - k > bestLen) {
      best = k;
      bestLen = e - k;
    }
    k = e;
  }
  if (best < 0) {
    return groups.join(":");
  }
  return `${groups.slice(0, best).join(":")}::${groups.slice(best + bestLen).join(":")}`;
}

/** A network of trusted proxies. */
export interface Prefix {
  /** The network address, 4 or 16 bytes. */
  ip: IPBytes;
  /** The prefix length in bits. */
  bits: number;
}

/**
 * parsePrefix accepts a CIDR ("10.0.0.0/8", "fd00::/8") or a single address
 * ("127.0.0.1", "::1"). An IPv4-mapped IPv6 network of at least 96 bits is
 * the IPv4 network it maps. Throws naming the entry when it is neither.
 */
export function parsePrefix(entry: string): Prefix {
  const s = entry.trim();
  const [addr = "", bitsText] = s.split("/", 2);
  const raw = addr.includes(":") ? parseIPv6(addr.replace(/%.*$/s, "")) : parseIPv4(addr);
  if (raw === undefined || (bitsText !== undefined && !/^[0-9]{1,3}$/.test(bitsText))) {
    throw new Error(`trusted proxy "${s}": not an IP address or CIDR network`);
  }
  const bits = bitsText === undefined ? raw.length * 8 : Number(bitsText);
  if (bits > raw.length * 8) {
    throw new Error(`trusted proxy "${s}": prefix length ${bits} is too long`);
  }
  const mapped = parseIP(addr);
  if (raw.length === 16 && mapped?.length === 4 && bits >= 96) {
    return { ip: mapped, bits: bits - 96 };
  }
  return { ip: raw, bits };
}

/** prefixContains reports whether ip is in the network p. */
export function prefixContains(p: Prefix, ip: IPBytes): boolean {
  if (p.ip.length !== ip.length) {
    return false;
  }
  let bits = p.bits;
  for (let k = 0; bits > 0; k++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if (((p.ip[k] ?? 0) & mask) !== ((ip[k] ?? 0) & mask)) {
      return false;
    }
  }
  return true;
}
