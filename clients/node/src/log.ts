/**
 * Decision logging: the logger interface the middleware writes to, and the
 * bounds every caller-supplied string passes before it reaches a log line.
 *
 * @module
 */

/** The most UTF-8 bytes of caller-supplied free text (URLs, hints, errors) logged. */
export const TEXT_BYTES = 256;
/** The most UTF-8 bytes of a label (route, account, reason) logged. */
export const LABEL_BYTES = 64;

/** The fields of one decision line: strings already bounded and escaped. */
export type LogFields = Record<string, string | number | boolean>;

/**
 * A Logger receives the middleware's decision lines, fields first and the
 * message second, as pino, Fastify's `request.log` and bunyan take them. A
 * refused request is logged at info, a request the service could not decide
 * on at error, a verified one at debug. Nothing secret and no body is ever
 * logged.
 */
export interface Logger {
  /** Logs a verified request. */
  debug(fields: LogFields, message: string): void;
  /** Logs a refused (or, in shadow mode, would-be refused) request. */
  info(fields: LogFields, message: string): void;
  /** Logs a request the service could not decide on, or a misconfiguration. */
  error(fields: LogFields, message: string): void;
}

/**
 * consoleLogger writes info and error lines to the console as one
 * `twilioguard: message key=value ...` line each, and drops debug lines.
 */
export const consoleLogger: Logger = {
  debug() {},
  info(fields, message) {
    console.info(formatLine(fields, message));
  },
  error(fields, message) {
    console.error(formatLine(fields, message));
  },
};

/** formatLine renders one decision line for a text log. */
export function formatLine(fields: LogFields, message: string): string {
  let line = `twilioguard: ${message}`;
  for (const [key, value] of Object.entries(fields)) {
    const text = String(value);
    line += ` ${key}=${/[\s"=]/.test(text) || text === "" ? JSON.stringify(text) : text}`;
  }
  return line;
}

const encoder = new TextEncoder();

/**
 * bound returns s with control characters escaped (`\n` becomes `\x0a`,
 * U+2028 becomes `\u2028`) and cut to at most maxBytes UTF-8 bytes on a
 * character boundary, with "…" appended when it was cut.
 */
export function bound(s: string, maxBytes: number): string {
  // eslint-disable-next-line no-control-regex
  const escaped = s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => {
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16)}`;
  });
  if (escaped.length <= maxBytes / 3 || encoder.encode(escaped).length <= maxBytes) {
    return escaped;
  }
  let bytes = 0;
  let end = 0;
  for (const ch of escaped) {
    const n = encoder.encode(ch).length;
    if (bytes + n > maxBytes) {
      break;
    }
    bytes += n;
    end += ch.length;
  }
  return escaped.slice(0, end) + "…";
}
