/**
 * The public URL Twilio signed, rebuilt from an incoming request by the
 * rules every twilioguard adapter follows (the Go webhookreq package and the
 * Python package read the same case file as this one's tests).
 *
 * @module
 */

import {
  formatIP,
  isIPv6,
  parseForwarded,
  parseNode,
  parsePrefix,
  prefixContains,
  validPort,
  type ForwardedElement,
  type IPBytes,
  type Prefix,
} from "./forwarded.js";

/** The forwarding headers read from trusted proxies, in order of precedence. */
export const PROXY_HEADERS = [
  "Forwarded",
  "X-Forwarded-Proto",
  "X-Forwarded-Host",
  "X-Forwarded-Port",
  "X-Original-Host",
] as const;

/** One of {@link PROXY_HEADERS}. */
export type ProxyHeader = (typeof PROXY_HEADERS)[number];

/** What the URL rules need to know of one request. */
export interface RequestFacts {
  /** The direct peer as "address:port" or "[v6 address]:port". */
  peer: string;
  /** Whether the connection to the app is TLS. */
  tls: boolean;
  /** The Host header (or HTTP/2 :authority). */
  host: string;
  /** The raw request-target, byte for byte as received. */
  target: string;
  /** The lines of a request header, by lowercase name (none: empty). */
  header(name: string): readonly string[];
}

/** Where the scheme and host of a rebuilt URL came from. */
export type URLSource = "base_url" | "forwarded" | "x-forwarded" | "x-original-host" | "connection";

/** The public URL of one request and how it was found. */
export interface PublicURL {
  /** The URL Twilio requested. */
  url: string;
  /** The source of its scheme and host. */
  from: URLSource;
  /**
   * When not empty, why the URL may not be the one Twilio signed (for
   * example headers ignored from an untrusted peer). Never a secret.
   */
  proxyHint: string;
}

/** How the public URL of requests is found. */
export interface URLPolicyOptions {
  /**
   * The scheme, host and optional path prefix Twilio is configured with
   * ("https://hooks.example.com" or "https://hooks.example.com/twilio"). The
   * URL is this base followed by the raw request-target; no header is read.
   */
  publicBaseUrl?: string | undefined;
  /**
   * Proxies (CIDRs or single addresses) whose forwarding headers are
   * believed when there is no public base URL.
   */
  trustedProxies?: readonly string[] | undefined;
  /**
   * The forwarding headers read from trusted proxies, a subset of
   * {@link PROXY_HEADERS} in any case; default all of them.
   */
  proxyHeaders?: readonly string[] | undefined;
}

/**
 * URLPolicy rebuilds the URL Twilio requested from the requests an app
 * receives.
 *
 * With a public base URL the result is the base URL followed by the raw
 * request-target. Otherwise scheme and host come from the connection (TLS or
 * not, the Host header) and, only when the direct peer is a trusted proxy,
 * from the forwarding headers; for each part the first source present wins:
 *
 * - scheme: Forwarded proto, X-Forwarded-Proto, the connection;
 * - host: Forwarded host, X-Forwarded-Host, X-Original-Host, the Host header;
 * - port: X-Forwarded-Port replaces the port of a host not taken from
 *   Forwarded.
 *
 * Over several hops the right-most untrusted rule applies: in a Forwarded
 * header the element used is the right-most one whose for= node is not a
 * trusted proxy (the left-most when all are); X-Forwarded-Proto/Host/Port
 * lists are read the same way when they have as many entries as
 * X-Forwarded-For, and otherwise their right-most entry is used. Values that
 * are not a valid scheme (http or https), host or port are ignored.
 */
export class URLPolicy {
  readonly #baseURL: string;
  readonly #trusted: Prefix[];
  readonly #headers: ReadonlySet<ProxyHeader>;

  /** Throws an Error naming the bad entry when an option is invalid. */
  constructor(options: URLPolicyOptions = {}) {
    this.#baseURL = options.publicBaseUrl ? parseBaseURL(options.publicBaseUrl) : "";
    this.#trusted = (options.trustedProxies ?? []).filter((s) => s.trim() !== "").map(parsePrefix);
    if (this.#baseURL !== "" && this.#trusted.length > 0) {
      throw new Error(
        "publicBaseUrl and trustedProxies conflict: with a public base URL no forwarding header is read; set one of them",
      );
    }
    this.#headers = new Set(options.proxyHeaders === undefined ? PROXY_HEADERS : options.proxyHeaders.map(proxyHeader));
  }

  /** rebuild returns the URL Twilio requested for a request. */
  rebuild(r: RequestFacts): PublicURL {
    const target = requestTarget(r.target);
    if (this.#baseURL !== "") {
      return { url: this.#baseURL + target, from: "base_url", proxyHint: "" };
    }
    let scheme = r.tls ? "https" : "http";
    let host = r.host;
    let from: URLSource = "connection";
    const peer = parseNode(r.peer);
    if (peer === undefined || !this.#isTrusted(peer)) {
      const present = PROXY_HEADERS.filter((h) => this.#headers.has(h) && r.header(h.toLowerCase()).length > 0);
      let proxyHint = "";
      if (present.length > 0) {
        proxyHint =
          `ignored ${present.join(", ")} from peer ${peerString(r.peer)}, which is not a trusted proxy; ` +
          "if it is your proxy, add it to the trusted proxies, or configure the public base URL";
      } else if (scheme === "http") {
        proxyHint =
          "URL rebuilt from a plain-HTTP connection with no forwarded headers; " +
          "behind a TLS-terminating proxy configure the public base URL or trusted proxies";
      }
      return { url: `${scheme}://${host}${target}`, from, proxyHint };
    }

    let schemeSet = false;
    let hostFromForwarded = false;
    const forwarded = this.#headers.has("Forwarded") ? r.header("forwarded") : [];
    if (forwarded.length > 0) {
      const e = this.#forwardedElement(forwarded);
      if (e !== undefined) {
        const s = validScheme(e.proto);
        if (s !== undefined) {
          scheme = s;
          schemeSet = true;
          from = "forwarded";
        }
        if (validHost(e.host)) {
          host = e.host;
          hostFromForwarded = true;
          from = "forwarded";
        }
      }
    }

    // Which X-Forwarded-* entry belongs to the right-most untrusted hop.
    const xff = listValues(r.header("x-forwarded-for"));
    let hop = xff.length - 1;
    while (hop > 0) {
      const a = parseNode(xff[hop] ?? "");
      if (a === undefined || !this.#isTrusted(a)) {
        break;
      }
      hop--;
    }
    const pick = (name: ProxyHeader): string => {
      if (!this.#headers.has(name)) {
        return "";
      }
      const vals = listValues(r.header(name.toLowerCase()));
      if (vals.length === 0) {
        return "";
      }
      return (vals.length === xff.length ? vals[hop] : vals[vals.length - 1]) ?? "";
    };
    if (!schemeSet) {
      const s = validScheme(pick("X-Forwarded-Proto"));
      if (s !== undefined) {
        scheme = s;
        from = "x-forwarded";
      }
    }
    if (!hostFromForwarded) {
      const fwdHost = pick("X-Forwarded-Host");
      const original = this.#headers.has("X-Original-Host") ? listValues(r.header("x-original-host")).at(-1) : undefined;
      if (validHost(fwdHost)) {
        host = fwdHost;
        from = "x-forwarded";
      } else if (original !== undefined && validHost(original)) {
        host = original;
        if (from === "connection") {
          from = "x-original-host";
        }
      }
      const port = pick("X-Forwarded-Port");
      if (validPort(port)) {
        host = withPort(host, port, scheme);
        if (from === "connection") {
          from = "x-forwarded";
        }
      }
    }
    return { url: `${scheme}://${host}${target}`, from, proxyHint: "" };
  }

  #isTrusted(ip: IPBytes): boolean {
    return this.#trusted.some((p) => prefixContains(p, ip));
  }

  /**
   * The element of a Forwarded header to read: the right-most one whose
   * for= node is not trusted, or the left-most when all are. A malformed
   * header is ignored as a whole.
   */
  #forwardedElement(lines: readonly string[]): ForwardedElement | undefined {
    let elems: ForwardedElement[];
    try {
      elems = parseForwarded(lines);
    } catch {
      return undefined;
    }
    for (let k = elems.length - 1; k >= 0; k--) {
      const e = elems[k];
      const a = e === undefined ? undefined : parseNode(e.for);
      if (a === undefined || !this.#isTrusted(a)) {
        return e;
      }
    }
    return elems[0];
  }
}

function proxyHeader(name: string): ProxyHeader {
  const found = PROXY_HEADERS.find((h) => h.toLowerCase() === name.trim().toLowerCase());
  if (found === undefined) {
    throw new Error(`proxy header "${name}": not one of ${PROXY_HEADERS.join(", ")}`);
  }
  return found;
}

/**
 * parseBaseURL checks a public base URL ("https://example.com" or
 * "https://example.com/prefix") and returns it without a trailing slash,
 * kept as written (never re-serialised). Throws when it is not one.
 */
export function parseBaseURL(s: string): string {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw new Error(`public base URL "${s}": not a URL`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new Error(`public base URL "${s}": scheme must be http or https`);
  }
  if (u.host === "") {
    throw new Error(`public base URL "${s}": no host`);
  }
  if (u.username !== "" || u.password !== "" || /^[a-z]+:\/\/[^/?#]*@/i.test(s)) {
    throw new Error("public base URL: must not contain user info (Twilio signs the URL without it)");
  }
  if (s.includes("?") || s.includes("#")) {
    throw new Error(`public base URL "${s}": must not have a query or fragment`);
  }
  return s.replace(/\/+$/, "");
}

/**
 * requestTarget returns the path and query of a raw request-target; an
 * absolute-form target ("https://host/path?q") loses its scheme and
 * authority.
 */
export function requestTarget(t: string): string {
  if (t === "") {
    return "/";
  }
  if (t.startsWith("/")) {
    return t;
  }
  const sep = t.indexOf("://");
  if (sep < 0) {
    return t;
  }
  const rest = t.slice(sep + 3);
  const i = rest.search(/[/?]/);
  if (i < 0) {
    return "/";
  }
  return rest[i] === "?" ? "/" + rest.slice(i) : rest.slice(i);
}

/** listValues returns the comma-separated entries of every line, trimmed, in order. */
function listValues(lines: readonly string[]): string[] {
  return lines.flatMap((line) => line.split(",").map((v) => v.trim()));
}

function validScheme(s: string): "http" | "https" | undefined {
  const v = s.trim().toLowerCase();
  return v === "https" || v === "http" ? v : undefined;
}

/**
 * validHost reports whether h is a host with an optional port: a name or
 * IPv4 address of unreserved characters, or a bracketed IPv6 address.
 */
function validHost(h: string): boolean {
  if (h === "" || h.length > 300) {
    return false;
  }
  if (h.startsWith("[")) {
    const end = h.indexOf("]");
    if (end < 0 || !isIPv6(h.slice(1, end))) {
      return false;
    }
    const rest = h.slice(end + 1);
    return rest === "" || (rest[0] === ":" && validPort(rest.slice(1)));
  }
  let name = h;
  const i = h.lastIndexOf(":");
  if (i >= 0) {
    if (!validPort(h.slice(i + 1))) {
      return false;
    }
    name = h.slice(0, i);
  }
  return /^[A-Za-z0-9._~%-]+$/.test(name);
}

/** withPort replaces the port of host, or drops it when it is the scheme's default. */
function withPort(host: string, port: string, scheme: string): string {
  let h = host;
  if (h.startsWith("[")) {
    const end = h.indexOf("]");
    if (end >= 0) {
      h = h.slice(0, end + 1);
    }
  } else if (h.includes(":")) {
    h = h.slice(0, h.lastIndexOf(":"));
  }
  if ((scheme === "https" && port === "443") || (scheme === "http" && port === "80")) {
    return h;
  }
  return `${h}:${port}`;
}

/** peerString returns the address part of a peer for logs. */
export function peerString(peer: string): string {
  const a = parseNode(peer);
  if (a !== undefined) {
    return formatIP(a);
  }
  return peer === "" ? "(unknown)" : peer;
}
