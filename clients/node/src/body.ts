/**
 * Request bodies: reading the raw bytes up to a limit, and the form and
 * JSON bodies the app reads afterwards.
 *
 * @module
 */

import type { Readable } from "node:stream";

/** The default limit on the body of a webhook request (1 MiB). */
export const DEFAULT_MAX_BODY_BYTES = 1 << 20;

/** The body of a request as read: all of it, or the part read before the limit. */
export type ReadResult = { bytes: Buffer; tooLarge: false } | { bytes: Buffer; tooLarge: true };

/**
 * readBody reads stream to its end, up to limit bytes. Beyond the limit it
 * stops reading (the rest stays unread, the stream paused) and returns what
 * it read with tooLarge set.
 */
export function readBody(stream: Readable, limit: number): Promise<ReadResult> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (): void => {
      stream.off("data", onData);
      stream.off("end", onEnd);
      stream.off("error", onError);
    };
    const onData = (chunk: Buffer | string): void => {
      const b = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
      chunks.push(b);
      size += b.length;
      if (size > limit) {
        stream.pause();
        done();
        resolve({ bytes: Buffer.concat(chunks), tooLarge: true });
      }
    };
    const onEnd = (): void => {
      done();
      resolve({ bytes: Buffer.concat(chunks), tooLarge: false });
    };
    const onError = (err: Error): void => {
      done();
      reject(err);
    };
    stream.on("data", onData);
    stream.on("end", onEnd);
    stream.on("error", onError);
  });
}

/** isForm reports whether a Content-Type is application/x-www-form-urlencoded. */
export function isForm(contentType: string | undefined): boolean {
  return mediaType(contentType) === "application/x-www-form-urlencoded";
}

/** isJSON reports whether a Content-Type is application/json or a +json type. */
export function isJSON(contentType: string | undefined): boolean {
  const t = mediaType(contentType);
  return t === "application/json" || t.endsWith("+json");
}

function mediaType(contentType: string | undefined): string {
  return (contentType ?? "").split(";", 1)[0]?.trim().toLowerCase() ?? "";
}

/** A decoded form body: a repeated key holds an array of its values. */
export type FormBody = Record<string, string | string[]>;

/**
 * parseForm decodes a form body as express.urlencoded({ extended: false })
 * and @fastify/formbody do: `+` is a space, `%XX` a UTF-8 byte, and a key
 * sent more than once holds an array of its values in order.
 */
export function parseForm(body: Buffer): FormBody {
  const out: FormBody = {};
  // The leading "&" keeps a leading "?" in the first key, which
  // URLSearchParams would otherwise drop.
  for (const [key, value] of new URLSearchParams("&" + body.toString("utf8"))) {
    const prev = Object.hasOwn(out, key) ? out[key] : undefined;
    const next = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
    Object.defineProperty(out, key, { value: next, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/**
 * formPairs returns the [key, value] pairs of a form body an app's own
 * parser produced, when they can be recovered exactly: a plain object whose
 * values are strings or arrays of strings (express.urlencoded with
 * extended: false). Anything else (nested objects from extended: true, a
 * string, a Buffer) gives undefined.
 */
export function formPairs(body: unknown): [string, string][] | undefined {
  if (typeof body !== "object" || body === null || Array.isArray(body) || Buffer.isBuffer(body)) {
    return undefined;
  }
  const proto = Object.getPrototypeOf(body) as unknown;
  if (proto !== Object.prototype && proto !== null) {
    return undefined;
  }
  const pairs: [string, string][] = [];
  for (const [key, value] of Object.entries(body)) {
    if (typeof value === "string") {
      pairs.push([key, value]);
    } else if (Array.isArray(value) && value.every((v) => typeof v === "string")) {
      for (const v of value) {
        pairs.push([key, v]);
      }
    } else {
      return undefined;
    }
  }
  return pairs;
}
