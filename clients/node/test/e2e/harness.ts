// End-to-end parts: the real twilioguard binary, a TLS-terminating proxy and
// a raw HTTP client. Every part runs on loopback.

import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { createServer as createHTTPSServer, request as httpsRequest, type Server as HTTPSServer } from "node:https";
import { createServer as createNetServer } from "node:net";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";

import { AccountService } from "../../src/gen/twilioguard/v1/account_pb.js";
import { repoRoot } from "../repo.js";

const CI = process.env.CI === "true";

/**
 * missing reports a missing external part: outside CI it returns a skip
 * message; with CI=true it throws, so the run fails.
 */
export function missing(what: string, how: string): string {
  const message = `${what} is missing; ${how}`;
  if (CI) {
    throw new Error(`${message} (CI=true: a missing part is a failure)`);
  }
  return message;
}

/** A Twilio account the service knows. */
export interface Account {
  sid: string;
  token: string;
}

/** newAccount returns a random account SID and auth token. */
export function newAccount(): Account {
  return { sid: "AC" + randomBytes(16).toString("hex"), token: randomBytes(16).toString("hex") };
}

let built: string | undefined;

/**
 * binary returns the twilioguard binary: TWILIOGUARD_TEST_BIN, or one built
 * from this checkout with go build, once per test process. A string result
 * that is not a path is the reason it is missing (see {@link missing}).
 */
export function binary(): { path: string } | { skip: string } {
  const given = process.env.TWILIOGUARD_TEST_BIN;
  if (given) {
    return existsSync(given) ? { path: given } : { skip: missing(`TWILIOGUARD_TEST_BIN=${given}`, "point it at a built twilioguard binary or unset it") };
  }
  if (built !== undefined) {
    return { path: built };
  }
  const out = join(mkdtempSync(join(tmpdir(), "twilioguard-bin-")), "twilioguard");
  try {
    execFileSync("go", ["build", "-o", out, "./cmd/twilioguard"], { cwd: repoRoot(), stdio: ["ignore", "ignore", "pipe"] });
  } catch (err) {
    const e = err as { code?: string; stderr?: Buffer };
    if (e.code === "ENOENT") {
      return { skip: missing("the Go toolchain", "install Go to build cmd/twilioguard, or set TWILIOGUARD_TEST_BIN") };
    }
    throw new Error(`go build ./cmd/twilioguard failed:\n${e.stderr?.toString() ?? String(err)}`);
  }
  built = out;
  return { path: out };
}

/** freePort returns a TCP port on 127.0.0.1 that nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createNetServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => {
        resolve(typeof addr === "object" && addr !== null ? addr.port : 0);
      });
    });
  });
}

/** A running `twilioguard serve` with SQLite in a temporary data directory. */
export class Service {
  readonly url: string;
  readonly #proc: ChildProcess;
  readonly #dir: string;
  readonly #adminToken: string;

  private constructor(url: string, proc: ChildProcess, dir: string, adminToken: string) {
    this.url = url;
    this.#proc = proc;
    this.#dir = dir;
    this.#adminToken = adminToken;
  }

  /** start runs the binary on a free port and waits until /readyz answers 200. */
  static async start(bin: string): Promise<Service> {
    const dir = mkdtempSync(join(tmpdir(), "twilioguard-e2e-"));
    const port = await freePort();
    const adminToken = randomBytes(16).toString("hex");
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("TWILIOGUARD_")));
    const log = openSync(join(dir, "serve.log"), "w");
    const proc = spawn(bin, ["serve", "--addr", `127.0.0.1:${port}`, "--data-dir", join(dir, "data")], {
      env: { ...env, TWILIOGUARD_ADMIN_TOKEN: adminToken },
      stdio: ["ignore", log, log],
    });
    const svc = new Service(`http://127.0.0.1:${port}`, proc, dir, adminToken);
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (proc.exitCode !== null) {
        throw new Error(`twilioguard serve exited with ${proc.exitCode}:\n${svc.log()}`);
      }
      try {
        const res = await fetch(`${svc.url}/readyz`);
        if (res.status === 200) {
          return svc;
        }
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        await svc.stop();
        throw new Error(`twilioguard serve not ready within 60s:\n${svc.log()}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** putAccount creates or replaces an account through the admin API. */
  async putAccount(account: Account): Promise<void> {
    const transport = createConnectTransport({
      baseUrl: this.url,
      httpVersion: "1.1",
      interceptors: [
        (next) => (req) => {
          req.header.set("Authorization", `Bearer ${this.#adminToken}`);
          return next(req);
        },
      ],
    });
    await createClient(AccountService, transport).putAccount({ account: { sid: account.sid, authToken: account.token } });
  }

  /** log returns the tail of the service's output. */
  log(): string {
    try {
      return readFileSync(join(this.#dir, "serve.log"), "utf8").split("\n").slice(-30).join("\n");
    } catch {
      return "(no log)";
    }
  }

  /** stop ends the process and removes its data. */
  async stop(): Promise<void> {
    if (this.#proc.exitCode === null && this.#proc.signalCode === null) {
      const exited = new Promise((r) => this.#proc.once("exit", r));
      this.#proc.kill("SIGTERM");
      const timer = setTimeout(() => this.#proc.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

/** A test certificate and key for localhost and 127.0.0.1. */
export interface Cert {
  cert: Buffer;
  key: Buffer;
}

/**
 * testCert returns the certificate scripts/setup.d/25-nginx.sh made
 * (TWILIOGUARD_TEST_NGINX_CERT/KEY, or under $TG_CACHE/nginx), or one made
 * here with openssl.
 */
export function testCert(): Cert | { skip: string } {
  const cache = process.env.TG_CACHE ?? join(homedir(), ".cache", "twilioguard-test");
  const pairs: [string | undefined, string | undefined][] = [
    [process.env.TWILIOGUARD_TEST_NGINX_CERT, process.env.TWILIOGUARD_TEST_NGINX_KEY],
    [join(cache, "nginx", "cert.pem"), join(cache, "nginx", "key.pem")],
  ];
  for (const [cert, key] of pairs) {
    if (cert && key && existsSync(cert) && existsSync(key)) {
      return { cert: readFileSync(cert), key: readFileSync(key) };
    }
  }
  const dir = mkdtempSync(join(tmpdir(), "twilioguard-cert-"));
  try {
    execFileSync(
      "openssl",
      ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")],
      { stdio: "ignore" },
    );
    return { cert: readFileSync(join(dir, "cert.pem")), key: readFileSync(join(dir, "key.pem")) };
  } catch {
    return { skip: missing("a test certificate (openssl)", "run scripts/setup.d/25-nginx.sh or install openssl") };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The address a trusted proxy connects from; clients use 127.0.0.1. */
export const PROXY_SOURCE = "127.0.0.2";

const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"]);
const FORWARDING = new Set(["forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "x-original-host"]);

/**
 * TLSProxy terminates TLS on 127.0.0.1 and forwards each request over plain
 * HTTP to an upstream app, from {@link PROXY_SOURCE}, as nginx does with
 * `proxy_set_header Host $host` and X-Forwarded-Proto/Host/For: it drops
 * client-sent forwarding headers and sets its own.
 */
export class TLSProxy {
  upstreamPort = 0;
  readonly #server: HTTPSServer;

  private constructor(server: HTTPSServer) {
    this.#server = server;
  }

  static async start(cert: Cert): Promise<TLSProxy> {
    const proxy = new TLSProxy(createHTTPSServer({ cert: cert.cert, key: cert.key }));
    proxy.#server.on("request", (req, res) => {
      const headers: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(req.headers)) {
        if (v !== undefined && !HOP_BY_HOP.has(k) && !FORWARDING.has(k)) {
          headers[k] = v;
        }
      }
      headers["x-forwarded-proto"] = "https";
      headers["x-forwarded-host"] = req.headers.host ?? "";
      headers["x-forwarded-for"] = req.socket.remoteAddress ?? "";
      const up = httpRequest(
        { host: "127.0.0.1", port: proxy.upstreamPort, localAddress: PROXY_SOURCE, method: req.method, path: req.url, headers },
        (upRes) => {
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          upRes.pipe(res);
        },
      );
      up.on("error", () => res.writeHead(502).end());
      req.pipe(up);
    });
    await new Promise<void>((r) => proxy.#server.listen(0, "127.0.0.1", r));
    return proxy;
  }

  /** port is the proxy's HTTPS port. */
  get port(): number {
    const addr = this.#server.address();
    return typeof addr === "object" && addr !== null ? addr.port : 0;
  }

  close(): Promise<void> {
    return new Promise((r) => {
      this.#server.closeAllConnections();
      this.#server.close(() => {
        r();
      });
    });
  }
}

/** A response as the test client saw it. */
export interface Response {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

/** Options of one request sent by {@link send}. */
export interface SendOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** The local address to send from (default 127.0.0.1). */
  localAddress?: string;
  /** For https:// URLs: the CA to trust. */
  ca?: Buffer;
  /** Send the body chunked, without Content-Length. */
  chunked?: boolean;
}

/** send sends one real HTTP or HTTPS request. */
export function send(url: string, options: SendOptions = {}): Promise<Response> {
  const u = new URL(url);
  const body = options.body ?? "";
  const headers: Record<string, string | number> = { ...options.headers };
  if (!options.chunked && (body.length > 0 || options.method === "POST")) {
    headers["content-length"] = Buffer.byteLength(body);
  }
  const request = u.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname + u.search,
        method: options.method ?? "POST",
        headers,
        localAddress: options.localAddress ?? "127.0.0.1",
        ...(options.ca && { ca: options.ca }),
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString("utf8") });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}
