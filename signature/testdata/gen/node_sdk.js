// Conformance vectors, step 1 of 2: defines every test request, signs it
// with the real twilio-node SDK and records twilio-node's verdict.
//
// Usage: TWILIOGUARD_SDK_NODE_DIR=<dir with node_modules/twilio> node node_sdk.js > step1.json
// Step 2 is python_sdk.py. Everything here is deterministic: no clock, and
// the only pseudo-random bytes come from a fixed seed.
"use strict";

const path = require("path");
const querystring = require("querystring");

const sdkDir = process.env.TWILIOGUARD_SDK_NODE_DIR;
if (!sdkDir) {
  console.error("TWILIOGUARD_SDK_NODE_DIR is not set");
  process.exit(2);
}
const twilioPkg = require(path.join(sdkDir, "node_modules", "twilio", "package.json"));
const webhooks = require(path.join(sdkDir, "node_modules", "twilio", "lib", "webhooks", "webhooks"));
// twilio-node warns on stderr about unsupported algorithms; the verdict is what counts.
console.warn = () => {};

// ---------------------------------------------------------------------------
// Secrets (fake, fixed).
const TOKEN = "9f86d081884c7d659a2feaa0c55ad015"; // primary auth token
const PREV = "5e884898da28047151d0e56f8dc62927"; // previous auth token (rotation)
const OTHER = "2c26b46b68ffc68ff99b453c1d304134"; // some other account's token
const SUB = "fcde2b2edba56bf408601fb721fe9b5c"; // a subaccount's token
const SECONDARY = "7c222fb2927d828af22f592134e89324"; // secondary, not promoted
const SK_ID = "webhooks_sharedkey_01jq8x2k3m4n5p6q7r8s9t0v1w";
const SK_SECRET = "sk_live_8c6976e5b5410415bde908bd4dee15dfb167a9c8";
const SK_OTHER_SECRET = "sk_live_0b14d501a594442a01c6859541bcb3e8164d183d";
const LONG = "L".repeat(100); // longer than the HMAC block
const ACCOUNT = "AC0123456789abcdef0123456789abcdef";

const AUTH = [{ name: "auth_token", secret: TOKEN }];
const ROTATING = [
  { name: "auth_token", secret: TOKEN },
  { name: "previous_auth_token", secret: PREV },
];
const sharedKey = (algorithms) => ({ name: SK_ID, secret: SK_SECRET, shared_key: true, algorithms });
const WITH_SK = [sharedKey(["HMAC_SHA1", "HMAC_SHA256"]), ...AUTH];

// Deterministic PRNG (mulberry32) for garbage signatures.
let seed = 0x7a11e0;
function rand() {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
function randomBytes(n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rand() * 256);
  return b;
}

// Twilio's form encoder (Java URLEncoder, UTF-8): letters, digits and ".-*_"
// are kept, a space becomes '+', everything else is %XX in upper case.
function twilioEncode(s) {
  let out = "";
  for (const b of Buffer.from(s, "utf8")) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9.\-*_]/.test(c)) out += c;
    else if (b === 0x20) out += "+";
    else out += "%" + b.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}
const encodeForm = (pairs) => pairs.map(([k, v]) => twilioEncode(k) + "=" + twilioEncode(v)).join("&");

// SDK-style params object: one string per key, an array for a repeated key.
function toObject(pairs) {
  const o = Object.create(null);
  for (const [k, v] of pairs) {
    if (!(k in o)) o[k] = v;
    else if (Array.isArray(o[k])) o[k].push(v);
    else o[k] = [o[k], v];
  }
  return o;
}

// The string Twilio signs, by the reference model: keys in code-point order,
// each key's distinct values in code-point order.
function cpCompare(a, b) {
  const x = Array.from(a, (c) => c.codePointAt(0));
  const y = Array.from(b, (c) => c.codePointAt(0));
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}
function referenceString(url, pairs) {
  const byKey = new Map();
  for (const [k, v] of pairs) {
    if (!byKey.has(k)) byKey.set(k, new Set());
    byKey.get(k).add(v);
  }
  let s = url;
  for (const k of [...byKey.keys()].sort(cpCompare)) {
    for (const v of [...byKey.get(k)].sort(cpCompare)) s += k + v;
  }
  return s;
}

// ---------------------------------------------------------------------------
// Base webhooks, as Twilio sends them (decoded params in wire order).
const P = (o) => Object.entries(o);
const BASE = {
  sms: {
    url: "https://hooks.example.com/twilio/sms/inbound",
    params: P({
      ToCountry: "US", ToState: "CA", SmsMessageSid: "SM2f3c6d8a7b4e4c1f9a0b2c3d4e5f6a7b", NumMedia: "0",
      ToCity: "SAN FRANCISCO", FromZip: "94105", SmsSid: "SM2f3c6d8a7b4e4c1f9a0b2c3d4e5f6a7b", FromState: "CA",
      SmsStatus: "received", FromCity: "SAN FRANCISCO", Body: "Hi! Can I move my appointment to Tuesday at 3pm?",
      FromCountry: "US", To: "+14155550100", MessagingServiceSid: "MG9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d", ToZip: "",
      NumSegments: "1", MessageSid: "SM2f3c6d8a7b4e4c1f9a0b2c3d4e5f6a7b", AccountSid: ACCOUNT, From: "+14155550199",
      ApiVersion: "2010-04-01", ReferralNumMedia: "0",
    }),
  },
  voice: {
    url: "https://voice.example.com/incoming?tenant=acme",
    params: P({
      AccountSid: ACCOUNT, ApiVersion: "2010-04-01", CallSid: "CA5d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a",
      CallStatus: "ringing", CallToken: "%7B%22parentCallInfoToken%22%3A%22eyJhbGciOiJFUzI1NiJ9%22%7D",
      Called: "+14155550100", CalledCity: "SAN FRANCISCO", CalledCountry: "US", CalledState: "CA", CalledZip: "94107",
      Caller: "+14155550199", CallerCity: "", CallerCountry: "US", CallerName: "ACME CORP", CallerState: "CA",
      CallerZip: "", Direction: "inbound", From: "+14155550199", FromCity: "", FromCountry: "US", FromState: "CA",
      FromZip: "", StirVerstat: "TN-Validation-Passed-A", To: "+14155550100", ToCity: "SAN FRANCISCO",
    }),
  },
  messageStatus: {
    url: "https://api.example.org/status/messages",
    params: P({
      SmsSid: "SMa1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6", SmsStatus: "delivered", MessageStatus: "delivered",
      To: "+447700900123", MessagingServiceSid: "MG9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d",
      MessageSid: "SMa1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6", AccountSid: ACCOUNT, From: "+14155550100",
      ApiVersion: "2010-04-01", RawDlrDoneDate: "2611281905", ChannelToAddress: "+4477009XXXXX",
    }),
  },
  callStatus: {
    url: "https://api.example.org/status/calls?callback=1",
    params: P({
      Called: "+14155550100", ToState: "CA", CallerCountry: "US", Direction: "outbound-api",
      Timestamp: "Sat, 28 Nov 2026 19:04:05 +0000", CallbackSource: "call-progress-events", SipResponseCode: "200",
      CallerState: "CA", ToZip: "", SequenceNumber: "3", CallSid: "CA0f1e2d3c4b5a69788796a5b4c3d2e1f0",
      To: "+14155550100", CallerZip: "94105", ToCountry: "US", CalledZip: "", ApiVersion: "2010-04-01",
      CalledCity: "", CallStatus: "completed", Duration: "1", From: "+14155550199", CallDuration: "42",
      AccountSid: ACCOUNT, CalledCountry: "US", CallerCity: "SAN FRANCISCO", ToCity: "", FromCountry: "US",
      Caller: "+14155550199", FromCity: "SAN FRANCISCO", CalledState: "CA", FromZip: "94105", FromState: "CA",
    }),
  },
  recording: {
    url: "https://media.example.net/recordings/done",
    params: P({
      RecordingSource: "RecordVerb", RecordingSid: "RE1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d",
      RecordingUrl: "https://api.twilio.com/2010-04-01/Accounts/" + ACCOUNT + "/Recordings/RE1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d",
      RecordingStatus: "completed", RecordingChannels: "1", ErrorCode: "0", CallSid: "CA5d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a",
      RecordingStartTime: "Sat, 28 Nov 2026 19:05:00 +0000", AccountSid: ACCOUNT, RecordingDuration: "17",
      RecordingTrack: "both",
    }),
  },
  conference: {
    url: "https://conf.example.com/events",
    params: P({
      Coaching: "false", FriendlyName: "Support Room #42", SequenceNumber: "9",
      ConferenceSid: "CF0a1b2c3d4e5f60718293a4b5c6d7e8f9", EndConferenceOnExit: "false", StatusCallbackEvent: "conference-end",
      Timestamp: "Sat, 28 Nov 2026 19:30:00 +0000", StartConferenceOnEnter: "true", Hold: "false",
      AccountSid: ACCOUNT, Muted: "false", Reason: "Participant CA5d1e2f has ended the conference",
      ReasonConferenceEnded: "participant-with-end-conference-on-exit-left",
      CallSidEndingConference: "CA5d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a",
    }),
  },
  whatsapp: {
    url: "https://hooks.example.com/whatsapp",
    params: P({
      SmsMessageSid: "MMf0e1d2c3b4a5968778695a4b3c2d1e0f", NumMedia: "1", ProfileName: "José Müller 🌮",
      MessageType: "image", SmsSid: "MMf0e1d2c3b4a5968778695a4b3c2d1e0f", WaId: "34600111222", SmsStatus: "received",
      Body: "¿Está abierto mañana?\nGracias 🙏", To: "whatsapp:+14155238886", MediaContentType0: "image/jpeg",
      NumSegments: "1", ReferralNumMedia: "0", MessageSid: "MMf0e1d2c3b4a5968778695a4b3c2d1e0f", AccountSid: ACCOUNT,
      From: "whatsapp:+34600111222",
      MediaUrl0: "https://api.twilio.com/2010-04-01/Accounts/" + ACCOUNT + "/Messages/MMf0e1/Media/ME1a2b",
      ApiVersion: "2010-04-01",
    }),
  },
  conversation: {
    url: "https://chat.example.com/conversations/webhook?v=2",
    params: P({
      MessagingServiceSid: "MG9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d", EventType: "onMessageAdded",
      Attributes: '{"importance":"high","tags":["a","b"]}', DateCreated: "2026-11-28T19:04:05.000Z", Index: "12",
      MessageSid: "IM0a1b2c3d4e5f60718293a4b5c6d7e8f9", AccountSid: ACCOUNT, Source: "SMS", RetryCount: "0",
      Author: "+14155550199", ParticipantSid: "MB0a1b2c3d4e5f60718293a4b5c6d7e8f9", Body: "Thanks, see you then.",
      ConversationSid: "CH0a1b2c3d4e5f60718293a4b5c6d7e8f9", "MessagingBinding.Address": "+14155550199",
      "MessagingBinding.ProxyAddress": "+14155550100", "MessagingBinding.Type": "sms",
    }),
  },
  gather: {
    url: "https://ivr.example.com/gather/result?step=pay&lang=en-US",
    params: P({
      AccountSid: ACCOUNT, CallSid: "CA5d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a", Digits: "1234#", FinishedOnKey: "#",
      SpeechResult: "I'd like to pay my bill, please.", Confidence: "0.9235", Language: "en-US",
      From: "+14155550199", To: "+14155550100", Direction: "inbound", ApiVersion: "2010-04-01",
    }),
  },
};

// ---------------------------------------------------------------------------
// Case construction.
const cases = [];
const ids = new Set();

// add registers one case. Fields:
//   id, category, description: what the case is.
//   url: the URL handed to the verifier. method: "POST" (default) or "GET".
//   contentType: the Content-Type ("" for GET).
//   params: decoded form params in wire order (form POSTs), or null when the
//     raw body does not decode.
//   body: the raw body; for forms it defaults to Twilio's encoding of params.
//   sign: what the header signature covers: {url, params | string, secret,
//     algorithm}; defaults: the request's URL and params, TOKEN, HMAC_SHA1.
//   header: "sign" (default: twilio-node's signature over `sign`), a literal
//     string, null (no header), or a function of the signature.
//   credentials: what the verifier holds (default AUTH).
//   settings: the X-Twilio-Webhooks-Signature-Settings header, if any.
//   expect: the verdict by DESIGN.md §2: "valid" or a reason (or a function
//     of the header signature returning one).
//   note: why an SDK disagrees, or why the expected verdict is what it is.
function add(c) {
  if (ids.has(c.id)) throw new Error("duplicate case id " + c.id);
  ids.add(c.id);
  const method = c.method || "POST";
  let contentType = c.contentType;
  if (contentType === undefined) contentType = method === "GET" ? "" : "application/x-www-form-urlencoded";
  const isForm = contentType.split(";")[0].trim().toLowerCase() === "application/x-www-form-urlencoded";
  const params = c.params === undefined ? (isForm ? [] : null) : c.params;
  const body = c.body !== undefined ? c.body : isForm && method === "POST" ? encodeForm(params || []) : "";
  const sign = Object.assign(
    { url: c.url, params: isForm ? params || [] : [], secret: TOKEN, algorithm: "HMAC_SHA1" },
    c.sign || {},
  );
  let signature;
  const signed =
    sign.string !== undefined
      ? webhooks.getExpectedTwilioSignature(sign.secret, sign.string, {}, sign.algorithm)
      : webhooks.getExpectedTwilioSignature(sign.secret, sign.url, toObject(sign.params), sign.algorithm);
  const header = c.header === undefined ? "sign" : c.header;
  if (header === "sign") signature = signed;
  else if (typeof header === "function") signature = header(signed);
  else signature = header;
  const credentials = c.credentials || AUTH;
  const expect = typeof c.expect === "function" ? c.expect(signature) : c.expect;
  const settings = c.settings === undefined ? null : c.settings;
  const v = {
    id: c.id,
    category: c.category,
    description: c.description,
    method,
    url: c.url,
    content_type: contentType,
    params,
    body,
    signature,
    signature_settings: settings,
    credentials,
    signed: {
      url: sign.string !== undefined ? null : sign.url,
      params: sign.string !== undefined ? null : sign.params,
      string: sign.string !== undefined ? sign.string : null,
      secret_of: secretName(sign.secret),
      algorithm: sign.algorithm,
    },
    expect: {
      verdict: expect,
      credential: expect === "valid" ? credentialFor(credentials, sign.secret) : null,
      matched_url: expect === "valid" ? sign.url : null,
    },
    note: c.note || null,
    node: {
      signature: sign.string !== undefined ? null : signed,
      verdict: nodeVerdict({ method, url: c.url, isForm, body, signature, credentials, settings }),
    },
  };
  cases.push(v);
}

const SECRET_NAMES = new Map([
  [TOKEN, "TOKEN"], [PREV, "PREV"], [OTHER, "OTHER"], [SUB, "SUB"], [SECONDARY, "SECONDARY"],
  [SK_SECRET, "SK_SECRET"], [SK_OTHER_SECRET, "SK_OTHER_SECRET"], [LONG, "LONG"], ["", "EMPTY"],
]);
function secretName(s) {
  if (!SECRET_NAMES.has(s)) throw new Error("unnamed secret");
  return SECRET_NAMES.get(s);
}
function credentialFor(credentials, secret) {
  const c = credentials.find((c) => c.secret === secret);
  return c ? c.name : null;
}

// nodeVerdict is what an app using twilio-node 6.3.1 decides, as its
// webhook() middleware does: with a settings header, the SharedKey secret and
// the header's algorithm; otherwise the auth token (each held token in turn,
// as an app trying several would), HMAC_SHA1. The body path is chosen by
// "bodySHA256" in the URL; a form body is parsed as Express
// urlencoded({extended: false}) does (querystring.parse).
function nodeVerdict({ method, url, isForm, body, signature, credentials, settings }) {
  const secrets = settings
    ? credentials.filter((c) => c.shared_key).map((c) => c.secret)
    : credentials.filter((c) => !c.shared_key).map((c) => c.secret);
  const algorithm = webhooks.getSignatureAlgorithm(settings);
  try {
    for (const secret of secrets) {
      let ok;
      if (url.indexOf("bodySHA256") > 0) {
        ok = webhooks.validateRequestWithBody(secret, signature, url, body, algorithm);
      } else {
        const params = method === "POST" && isForm ? querystring.parse(body) : {};
        ok = webhooks.validateRequest(secret, signature, url, params, algorithm);
      }
      if (ok) return "valid";
    }
    return "invalid";
  } catch (e) {
    return "error";
  }
}

// ---------------------------------------------------------------------------
// 1. Every base webhook under the usual transformations.
const withPort = (u, port) => u.replace(/^(\w+:\/\/[^/?#]+)/, "$1" + port);
for (const [name, b] of Object.entries(BASE)) {
  const cat = "webhook/" + name;
  const changed = b.params.map(([k, v], i) => (i === 3 ? [k, v + "x"] : [k, v]));
  const host = b.url.match(/^\w+:\/\/([^/?#]+)/)[1];
  add({ id: `${name}/valid`, category: cat, description: `genuine ${name} webhook`, url: b.url, params: b.params, expect: "valid" });
  add({
    id: `${name}/received-with-443`, category: cat, description: "signed without a port, received with :443",
    url: withPort(b.url, ":443"), params: b.params, sign: { url: b.url }, expect: "valid",
  });
  add({
    id: `${name}/signed-with-443`, category: cat, description: "signed with :443, received without a port",
    url: b.url, params: b.params, sign: { url: withPort(b.url, ":443") }, expect: "valid",
  });
  add({
    id: `${name}/wrong-token`, category: cat, description: "signed with another account's token",
    url: b.url, params: b.params, sign: { secret: OTHER }, expect: "mismatch",
  });
  add({
    id: `${name}/previous-token`, category: cat, description: "signed with the previous token during a rotation",
    url: b.url, params: b.params, sign: { secret: PREV }, credentials: ROTATING, expect: "valid",
  });
  add({
    id: `${name}/tampered-value`, category: cat, description: "one param value changed after signing",
    url: b.url, params: changed, sign: { params: b.params }, expect: "mismatch",
  });
  add({
    id: `${name}/param-added`, category: cat, description: "a param added after signing",
    url: b.url, params: [...b.params, ["Injected", "1"]], sign: { params: b.params }, expect: "mismatch",
  });
  add({
    id: `${name}/param-removed`, category: cat, description: "a param removed after signing",
    url: b.url, params: b.params.slice(1), sign: { params: b.params }, expect: "mismatch",
  });
  add({
    id: `${name}/path-changed`, category: cat, description: "sent to another path than the signed one",
    url: b.url.replace(host + "/", host + "/v2/"), params: b.params, sign: { url: b.url }, expect: "mismatch",
  });
  add({
    id: `${name}/scheme-swapped`, category: cat, description: "signed for https, received as http (TLS terminated)",
    url: b.url.replace(/^https:/, "http:"), params: b.params, sign: { url: b.url }, expect: "mismatch",
  });
  add({
    id: `${name}/empty-token-signature`, category: cat, description: "signed with an empty token, verifier holds the token",
    url: b.url, params: b.params, sign: { secret: "" }, expect: "mismatch",
  });
  add({
    id: `${name}/as-get`, category: cat, method: "GET", description: "GET webhook: params appended to the query, URL signed",
    url: b.url + (b.url.includes("?") ? "&" : "?") + b.params.map(([k, v]) => twilioEncode(k) + "=" + twilioEncode(v)).join("&"),
    expect: "valid",
  });
}

// 2. Form encoding, values and keys.
const F = "https://forms.example.com/hook";
const form = (id, description, params, extra = {}) =>
  add(Object.assign({ id: "form/" + id, category: "form", description, url: F, params, expect: "valid" }, extra));
form("empty-value", "an empty value is signed as the key alone", [["Body", "hi"], ["CalledCity", ""], ["ToZip", ""]]);
form("only-empty", "every value empty", [["A", ""], ["B", ""]]);
form("no-params", "a POST without params", []);
form("empty-value-dropped", "the verifier lost an empty param", [["Body", "hi"]], {
  sign: { params: [["Body", "hi"], ["CalledCity", ""]] }, expect: "mismatch",
});
form("key-order-prefix", "Reason sorts before ReasonConferenceEnded (sort by key only)", [
  ["ReasonConferenceEnded", "test"], ["Reason", "Participant"],
]);
form("key-case", "keys are case-sensitive and sort by byte: TO < To < to", [["to", "3"], ["To", "2"], ["TO", "1"]]);
form("plus-and-space", "'+' in a value is sent as %2B, a space as '+'", [["Body", "1+1 = 2 & 3"], ["From", "+14155550199"]]);
form("percent-literal", "a literal percent sign and %20 text", [["Body", "100% sure, not %20"]]);
form("raw-plus-decodes-to-space", "a literal '+' in the raw body decodes to a space", [["Body", "a b"]], { body: "Body=a+b" });
form("percent20-body", "%20 instead of '+' in the raw body", [["Body", "a b c"]], { body: "Body=a%20b%20c" });
form("lowercase-hex-body", "lower-case hex escapes in the raw body", [["Body", "é+/"]], { body: "Body=%c3%a9%2b%2f" });
form("extra-escapes-body", "unreserved characters escaped in the raw body", [["Body", "abc"]], { body: "%42ody=%61%62%63" });
form("semicolon-raw", "a raw ';' in the body is part of the value", [["Body", "a;b"], ["X", "1"]], {
  body: "Body=a;b&X=1",
  note: "Twilio encodes ';' as %3B; a raw ';' is kept in the value (uncertain). twilio-go's url.ParseQuery rejects ';'.",
});
form("semicolon-encoded", "';' sent as %3B", [["Body", "a;b"]]);
form("empty-fields-in-body", "empty fields between '&' are skipped", [["A", "1"], ["B", "2"]], { body: "A=1&&B=2&" });
form("field-without-equals", "a field without '=' is a key with an empty value", [["Flag", ""], ["A", "1"]], { body: "Flag&A=1" });
form("empty-key", "a field with an empty key", [["", "v"], ["A", "1"]], { body: "=v&A=1" });
form("unicode-values", "accents, CJK, RTL and combining marks", [
  ["Body", "Ünïcödé 日本語 עברית é"], ["ProfileName", "Zoë"],
]);
form("emoji", "emoji outside the BMP", [["Body", "👍🏽 🎉 🇪🇸"]]);
form("newlines-tabs", "newlines, CRLF and tabs in a value", [["Body", "line1\nline2\r\nline3\tend"]]);
form("quotes-json-value", "a JSON document as a value", [["Attributes", '{"a":"b c","d":[1,2]}']]);
form("html-value", "HTML and ampersands in a value", [["Body", "<b>bold</b> &amp; 'single' \"double\""]]);
form("equals-in-value", "'=' inside a value", [["Body", "a=b=c"]]);
form("ampersand-in-value", "'&' inside a value", [["Body", "Tom & Jerry"]]);
form("long-value", "a 1600-character body", [["Body", "lorem ipsum ".repeat(133) + "1234"]]);
form("many-params", "100 params", Array.from({ length: 100 }, (_, i) => ["Field" + String(i).padStart(3, "0"), "value " + i]));
form("dotted-keys", "Conversations keys with dots", [["MessagingBinding.Address", "+14155550199"], ["MessagingBinding.Type", "sms"]]);
form("bracket-keys", "keys with brackets are plain keys", [["a[b]", "1"], ["a[c]", "2"], ["items[]", "x"]]);
form("proto-key", "a __proto__ key is an ordinary key", [["__proto__", "x"], ["constructor", "y"]], {
  note: "Express urlencoded({extended:true}) (qs) drops __proto__; querystring.parse keeps it.",
});
form("non-ascii-keys-cp-order", "non-ASCII keys whose UTF-16 and code-point orders differ", [
  ["\u{ff61}", "halfwidth"], ["\u{1f600}", "emoji"],
], {
  sign: { string: referenceString(F, [["\u{ff61}", "halfwidth"], ["\u{1f600}", "emoji"]]) },
  note: "twilio-node sorts keys in UTF-16 order (U+1F600 before U+FF61); the reference sorts by code point. Twilio's keys are ASCII.",
});
form("non-ascii-keys-utf16-order", "non-ASCII keys signed in UTF-16 order (twilio-node's order)", [
  ["\u{ff61}", "halfwidth"], ["\u{1f600}", "emoji"],
], {
  expect: "mismatch",
  note: "twilio-node signs keys in UTF-16 order; by code-point order this signature is wrong.",
});
form("boundary-shift", "{ab: c} and {a: bc} sign the same string", [["a", "bc"]], {
  sign: { params: [["ab", "c"]] },
  note: "A weakness of the scheme: no separators. Every verifier accepts it.",
});
// Twilio only sends UTF-8. Bytes that are not are decoded to U+FFFD, one per
// maximal ill-formed subsequence, as twilio-node and twilio-python do.
for (const [i, esc] of ["%FF", "%E2%82A", "%C0%AF", "%ED%A0%80", "%F4%90%80%80", "%F0%9F%98", "%F0%9F%98%80%80", "a%80b"].entries()) {
  const body = "Body=" + esc + "&K" + esc + "=1";
  form(`invalid-utf8-${i}`, `bytes that are not UTF-8 (${esc}) decode to U+FFFD`, Object.entries(querystring.parse(body)), {
    body,
    note: "twilio-go signs the raw bytes; node, python and this package replace them with U+FFFD first (Twilio only sends UTF-8).",
  });
}
for (const [i, body] of ["Body=100%", "Body=%zz", "Body=%2", "Body=ok&%G1=1"].entries()) {
  add({
    id: `form/bad-escape-${i}`, category: "form", description: `a '%' not followed by two hex digits (${body})`,
    url: F, params: null, body, sign: { params: Object.entries(querystring.parse(body)) }, expect: "malformed_request",
    note: "Twilio always sends '%' as %25; a malformed escape is refused. node and python keep it literally.",
  });
}
form("charset-param", "Content-Type with a charset parameter", [["Body", "hi"]], {
  contentType: "application/x-www-form-urlencoded; charset=UTF-8",
});
form("content-type-case", "Content-Type in upper case", [["Body", "hi"]], { contentType: "Application/X-WWW-Form-URLEncoded" });

// 3. Repeated keys.
const R = "https://hooks.example.com/conversations";
const rep = (id, description, params, extra = {}) =>
  add(Object.assign({ id: "repeated/" + id, category: "repeated-keys", description, url: R, params, expect: "valid" }, extra));
const REP_NOTE = "twilio-go (map[string]string; ValidateBody keeps the first value) cannot validate repeated keys.";
rep("sorted", "two values, sent sorted", [["Body", "x"], ["Address", "a1"], ["Address", "a2"]], { note: REP_NOTE });
rep("unsorted", "two values, sent unsorted", [["Address", "b"], ["Body", "x"], ["Address", "a"]], { note: REP_NOTE });
rep("duplicate", "a value sent twice is signed once", [["Address", "a"], ["Address", "a"]]);
rep("numeric", "numeric values with a duplicate: 9 < 24 numerically, not by byte", [
  ["Field", "9"], ["Field", "24"], ["Field", "24"],
], { note: REP_NOTE });
rep("empty-and-value", "an empty value and a value", [["Key", "v"], ["Key", ""]], { note: REP_NOTE });
rep("autopilot", "an Autopilot field with several values", [
  ["CurrentTask", "book"], ["Field_cities_Value", "Paris"], ["Field_cities_Value", "Berlin"], ["Field_cities_Value", "Madrid"],
], { note: REP_NOTE });
rep("interleaved", "repeated keys interleaved with others", [
  ["B", "2"], ["A", "z"], ["C", "3"], ["A", "y"], ["B", "1"],
], { note: REP_NOTE });
rep("messaging-binding", "Conversations MessagingBinding.Address twice", [
  ["MessagingBinding.Address", "+14155550199"], ["MessagingBinding.Address", "+14155550100"], ["EventType", "onConversationAdded"],
], { note: REP_NOTE });
rep("first-value-only-signature", "signature over the first value only", [["Address", "b"], ["Address", "a"]], {
  sign: { params: [["Address", "b"]] }, expect: "mismatch",
  note: "A signer that keeps one value per key (twilio-go) is not Twilio's algorithm; twilio-go accepts its own signature.",
});
rep("last-value-only-signature", "signature over the last value only", [["Address", "b"], ["Address", "a"]], {
  sign: { params: [["Address", "a"]] }, expect: "mismatch",
});
rep("as-sent-signature", "signature over the values in wire order, not sorted", [["Address", "b"], ["Address", "a"]], {
  sign: { string: R + "AddressbAddressa" }, expect: "mismatch",
});
rep("utf16-vs-codepoint-cp", "values whose UTF-16 and code-point orders differ, signed in code-point order", [
  ["V", "\u{1f600}"], ["V", "\u{ff61}"],
], {
  sign: { string: referenceString(R, [["V", "\u{1f600}"], ["V", "\u{ff61}"]]) },
  note: "twilio-node sorts values in UTF-16 order (U+1F600 before U+FF61); python and the reference use code-point order. Twilio's order is unknown. " + REP_NOTE,
});
rep("utf16-vs-codepoint-utf16", "values whose UTF-16 and code-point orders differ, signed in UTF-16 order", [
  ["V", "\u{1f600}"], ["V", "\u{ff61}"],
], {
  expect: "mismatch",
  note: "twilio-node signs values in UTF-16 order; by code-point order this is wrong (Twilio's order is unknown).",
});

// 4. URLs.
const url = (id, description, u, extra = {}) =>
  add(Object.assign({ id: "url/" + id, category: "url", description, url: u, params: [["Body", "hi"]], expect: "valid" }, extra));
url("query", "query string signed as is", "https://example.com/hook?foo=1&bar=2");
url("query-plus", "'+' in the query", "https://example.com/hook?q=a+b");
url("query-percent20", "%20 in the query", "https://example.com/hook?q=a%20b");
url("query-apostrophe", "a raw ' in the query", "https://example.com/hook?name=O'Brien");
url("query-apostrophe-plus", "a raw ' together with '+'", "https://example.com/hook?name=O'Brien+Jr");
url("query-encoded-apostrophe", "%27 in the query", "https://example.com/hook?name=O%27Brien");
url("query-unicode-raw", "raw non-ASCII in the query", "https://example.com/hook?city=Zürich");
url("path-unicode-raw", "raw non-ASCII in the path", "https://example.com/café/hook");
url("path-unicode-raw-443", "raw non-ASCII in the path, received with :443", "https://example.com:443/café/hook", {
  sign: { url: "https://example.com/café/hook" },
  note: "twilio-go's port variant goes through net/url, which re-encodes é as %C3%A9.",
});
url("path-encoded", "percent-encoded path", "https://example.com/caf%C3%A9/a%2Fb");
url("hex-case", "lower-case hex in the query", "https://example.com/hook?x=%2f%2F");
url("bare-question-mark", "a URL ending in a bare '?'", "https://example.com/hook?", {
  note: "python's urlparse().geturl() drops a bare '?'.",
});
url("empty-query-value", "empty values in the query", "https://example.com/hook?a=&b");
url("upper-scheme", "upper-case scheme, signed as given", "HTTPS://example.com/hook", {
  note: "python's urlparse lowercases the scheme.",
});
url("mixed-case-host", "mixed-case host, signed as given", "https://Hooks.Example.COM/hook");
url("http", "plain http", "http://example.com/hook");
url("no-path", "no path at all", "https://example.com");
url("no-path-query", "no path, query only", "https://example.com?x=1");
url("trailing-slash", "path with a trailing slash", "https://example.com/hook/");
url("fragment", "a fragment in the URL handed to the verifier, signed as given", "https://example.com/hook#rc=3&rp=all");
url("long-url", "a 1500-byte query", "https://example.com/hook?data=" + "x".repeat(1500));
url("port-8443-signed-with", "non-default port, signed with it", "https://example.com:8443/hook");
url("port-8443-signed-without", "non-default port, signed without it", "https://example.com:8443/hook", {
  sign: { url: "https://example.com/hook" },
});
url("port-443-signed-with", ":443 in the URL and in the signature", "https://example.com:443/hook");
url("port-80-http-signed-without", "http with :80, signed without", "http://example.com:80/hook", { sign: { url: "http://example.com/hook" } });
url("http-no-port-signed-80", "http without port, signed with :80", "http://example.com/hook", { sign: { url: "http://example.com:80/hook" } });
url("http-8080-signed-without", "http :8080, signed without the port", "http://example.com:8080/hook", {
  sign: { url: "http://example.com/hook" },
  note: "DESIGN §2 removes any port; the legacy docs say http keeps the port (the reference calls this uncertain).",
});
url("http-8080-signed-with", "http :8080, signed with it", "http://example.com:8080/hook");
url("https-signed-with-8443-received-without", "signed with :8443, received without a port", "https://example.com/hook", {
  sign: { url: "https://example.com:8443/hook" }, expect: "mismatch",
});
url("port-443-signed-as-8443", "received with :443, signed with :8443", "https://example.com:443/hook", {
  sign: { url: "https://example.com:8443/hook" }, expect: "mismatch",
});
url("empty-port", "an empty port (host:) signed as given", "https://example.com:/hook");
url("empty-port-signed-without", "an empty port, signed without the ':'", "https://example.com:/hook", {
  sign: { url: "https://example.com/hook" },
  note: "An empty port counts as a port, so the variant without it is tried (as twilio-node does); python and go see no port to remove.",
});
url("ipv6-no-port", "IPv6 host without port", "https://[2001:db8::1]/hook");
url("ipv6-no-port-signed-443", "IPv6 host, signed with :443", "https://[2001:db8::1]/hook", { sign: { url: "https://[2001:db8::1]:443/hook" } });
url("ipv6-8443-signed-without", "IPv6 host with :8443, signed without the port", "https://[2001:db8::1]:8443/hook", {
  sign: { url: "https://[2001:db8::1]/hook" },
  note: "python and twilio-go cut the host at the first ':' when removing the port.",
});
url("ipv6-443-signed-without", "IPv6 host with :443, signed without the port", "https://[2001:db8::1]:443/hook", {
  sign: { url: "https://[2001:db8::1]/hook" },
  note: "python and twilio-go cut the host at the first ':' when removing the port.",
});
url("ipv6-8443-signed-with", "IPv6 host with :8443, signed with it", "https://[2001:db8::1]:8443/hook");
url("ipv6-loopback", "IPv6 loopback with a port", "http://[::1]:8080/hook");
const UI = "https://user:p%40ss@example.com/hook";
url("userinfo-signed-without", "user:pass@ in the URL, signed without it (Twilio's docs)", UI, {
  sign: { url: "https://example.com/hook" },
  note: "Twilio's legacy docs say the signature excludes user:pass@; no SDK strips it.",
});
url("userinfo-signed-with", "user:pass@ in the URL, signed with it", UI, {
  note: "DESIGN §2 accepts the URL as received; the reference calls a signature with userinfo uncertain.",
});
url("userinfo-8443-signed-without-both", "user:pass@ and :8443, signed without either", "https://user:pass@example.com:8443/hook", {
  sign: { url: "https://example.com/hook" },
  note: "Twilio's legacy docs say the signature excludes user:pass@; no SDK strips it.",
});
url("userinfo-8443-signed-without-userinfo", "user:pass@ and :8443, signed with the port but without userinfo", "https://user:pass@example.com:8443/hook", {
  sign: { url: "https://example.com:8443/hook" },
  note: "Twilio's legacy docs say the signature excludes user:pass@; no SDK strips it.",
});
url("userinfo-8443-signed-exactly", "user:pass@ and :8443, signed exactly", "https://user:pass@example.com:8443/hook", {
  note: "DESIGN §2 accepts the URL as received; the reference calls a signature with userinfo uncertain.",
});
url("userinfo-443-signed-without-port", "user:pass@ and :443, signed with userinfo but without the port", "https://user:pass@example.com:443/hook", {
  sign: { url: "https://user:pass@example.com/hook" },
  note: "python's port removal turns user:pass@host into https://user/...",
});
url("user-no-password", "user@ without password, signed without it", "https://user@example.com/hook", {
  sign: { url: "https://example.com/hook" },
  note: "Twilio's legacy docs say the signature excludes user info; no SDK strips it.",
});
url("user-no-password-signed-with", "user@ without password, signed with it", "https://user@example.com/hook");
url("userinfo-at-in-query", "'@' in the query is not userinfo", "https://example.com/hook?email=a@b.c", {});
url("host-case-changed", "genuine, but the host case was changed on the way", "https://hooks.example.com/hook", {
  sign: { url: "https://Hooks.Example.com/hook" }, expect: "mismatch",
  note: "Only a verifier that knows the configured URL can accept this.",
});
url("query-resorted", "genuine, but the query was re-sorted on the way", "https://example.com/hook?a=1&b=2", {
  sign: { url: "https://example.com/hook?b=2&a=1" }, expect: "mismatch",
  note: "Only a verifier that knows the configured URL can accept this.",
});
const LENIENT = "twilio-node 6.2+ also accepts signatures of re-encoded URLs (new URL(), querystring); Twilio signs the URL as requested.";
url("plus-vs-percent20", "signed with %20, received with '+'", "https://example.com/hook?q=a+b", {
  sign: { url: "https://example.com/hook?q=a%20b" }, expect: "mismatch", note: LENIENT,
});
url("apostrophe-vs-27", "signed with %27, received with a raw '", "https://example.com/hook?n=O'Brien", {
  sign: { url: "https://example.com/hook?n=O%27Brien" }, expect: "mismatch", note: LENIENT,
});
url("hex-case-changed", "signed with %2F, received with %2f", "https://example.com/hook?x=%2f", {
  sign: { url: "https://example.com/hook?x=%2F" }, expect: "mismatch", note: LENIENT,
});
url("missing-slash", "signed with a '/' path, received without a path", "https://example.com", {
  sign: { url: "https://example.com/" }, expect: "mismatch", note: LENIENT,
});
url("trailing-slash-added", "signed without a trailing slash, received with one", "https://example.com/hook/", {
  sign: { url: "https://example.com/hook" }, expect: "mismatch",
});
url("fragment-dropped", "signed with a fragment, received without", "https://example.com/hook", {
  sign: { url: "https://example.com/hook#rc=3" }, expect: "mismatch",
});
for (const [i, bad] of ["example.com/hook", "/hook", "https:///hook", "https://[2001:db8::1/hook", "https://example.com:80a/hook", "https://example.com:99999/hook"].entries()) {
  url(`malformed-${i}`, `not a usable absolute URL: ${bad}`, bad, {
    sign: { url: bad }, expect: "malformed_request",
    note: "The URL has no host or an invalid port, so it is refused as malformed input; the SDKs hash whatever string they are given.",
  });
}

// 5. GET webhooks.
const G = "https://ivr.example.com/twiml";
const get = (id, description, u, extra = {}) =>
  add(Object.assign({ id: "get/" + id, category: "get", method: "GET", description, url: u, expect: "valid" }, extra));
get("plain", "GET with Twilio's params in the query", G + "?AccountSid=" + ACCOUNT + "&From=%2B14155550199&CallStatus=ringing");
get("configured-query", "params appended after the configured query", G + "?tenant=acme&AccountSid=" + ACCOUNT + "&Body=hi+there");
get("stirverstat-last", "Twilio's own query order (StirVerstat last)", G + "?Called=%2B14155550100&Caller=%2B14155550199&StirVerstat=TN-Validation-Passed-A");
get("empty-values", "empty values kept in the query", G + "?CalledCity=&CalledZip=&From=%2B1");
get("apostrophe", "a raw ' in a GET query", G + "?SpeechResult=I'm+here");
get("no-query", "GET without any query", G);
get("query-tampered", "a query value changed after signing", G + "?Digits=2", { sign: { url: G + "?Digits=1" }, expect: "mismatch" });
get("params-as-body-signature", "the signer also appended the query params as form params", G + "?Digits=1", {
  sign: { url: G + "?Digits=1", params: [["Digits", "1"]] }, expect: "mismatch",
});
get("with-443", "GET received with :443", "https://ivr.example.com:443/twiml?Digits=1", { sign: { url: G + "?Digits=1" } });

// 6. JSON and other non-form bodies.
const J = "https://events.example.com/sink";
const jsonCase = (id, description, body, extra = {}) => {
  const u = extra.url || J + "?bodySHA256=" + sha256hex(body);
  add(Object.assign({ id: "json/" + id, category: "json", description, url: u, contentType: "application/json", body, expect: "valid" }, extra));
};
function sha256hex(s) {
  return require("crypto").createHash("sha256").update(Buffer.from(s, "utf8")).digest("hex");
}
const EVENT = JSON.stringify([{
  specversion: "1.0", type: "com.twilio.messaging.message.delivered", source: "/2010-04-01/Accounts/" + ACCOUNT + "/Messages/SM1.json",
  id: "EZ0a1b2c3d4e5f60718293a4b5c6d7e8f9", dataschema: "https://events-schemas.twilio.com/Messaging.MessageStatus/4",
  datacontenttype: "application/json", time: "2026-11-28T19:04:05.000Z", data: { messageSid: "SM1", messageStatus: "DELIVERED" },
}]);
jsonCase("event-streams", "an Event Streams CloudEvents array", EVENT);
jsonCase("object", "a JSON object body", '{"property": "value", "boolean": true}');
jsonCase("unicode", "a JSON body with non-ASCII text", '{"text":"héllo 🌍"}');
jsonCase("empty-body", "a JSON webhook with an empty body", "", {
  note: "twilio-node's middleware replaces an empty raw body with \"{}\"; its validateRequestWithBody accepts.",
});
jsonCase("configured-query", "bodySHA256 appended after a configured query", '{"a":1}', { url: J + "?tenant=acme&bodySHA256=" + sha256hex('{"a":1}') });
jsonCase("received-443", "JSON received with :443", '{"a":1}', {
  url: "https://events.example.com:443/sink?bodySHA256=" + sha256hex('{"a":1}'),
  sign: { url: J + "?bodySHA256=" + sha256hex('{"a":1}') },
});
jsonCase("tampered-body", "the body was changed after signing", '{"amount":1000}', {
  url: J + "?bodySHA256=" + sha256hex('{"amount":10}'), expect: "body_hash_mismatch",
});
jsonCase("hash-upper-hex", "bodySHA256 in upper-case hex", '{"a":1}', {
  url: J + "?bodySHA256=" + sha256hex('{"a":1}').toUpperCase(), expect: "body_hash_mismatch",
  note: "Twilio sends lower-case hex and every SDK compares case-sensitively.",
});
jsonCase("hash-base64", "bodySHA256 as base64 (the pre-2019 format)", '{"a":1}', {
  url: J + "?bodySHA256=" + encodeURIComponent(require("crypto").createHash("sha256").update('{"a":1}').digest("base64")),
  expect: "body_hash_mismatch",
});
jsonCase("no-hash", "a JSON body without bodySHA256", '{"a":1}', {
  url: J, expect: "missing_body_hash",
  note: "Nothing covers the body. twilio-node, given no params, checks only the URL and accepts; python raises on a string body without bodySHA256 (twilio-python #885).",
});
jsonCase("hash-twice-last-correct", "bodySHA256 twice, the last one correct", '{"a":1}', {
  url: J + "?bodySHA256=" + sha256hex("other") + "&bodySHA256=" + sha256hex('{"a":1}'),
  note: "Twilio appends its bodySHA256 after any configured one, so the last is read (uncertain); node, python and go read the first.",
});
jsonCase("hash-twice-first-correct", "bodySHA256 twice, only the first one correct", '{"a":1}', {
  url: J + "?bodySHA256=" + sha256hex('{"a":1}') + "&bodySHA256=" + sha256hex("other"), expect: "body_hash_mismatch",
  note: "The last bodySHA256 is the one Twilio appended; node, python and go read the first.",
});
jsonCase("wrong-token", "a JSON webhook signed with another token", '{"a":1}', { sign: { secret: OTHER }, expect: "mismatch" });
jsonCase("signed-with-params", "the signer appended the JSON fields as params", '{"a":"1"}', {
  sign: { params: [["a", "1"]] }, expect: "mismatch",
});
jsonCase("text-plain", "a text/plain body with bodySHA256", "hello", { contentType: "text/plain" });
jsonCase("content-type-charset", "application/json; charset=utf-8", '{"a":1}', { contentType: "application/json; charset=utf-8" });
add({
  id: "json/form-with-matching-hash", category: "json", description: "a form POST whose URL carries a matching bodySHA256, signed over the URL only",
  url: J + "?bodySHA256=" + sha256hex("Body=hi"), params: [["Body", "hi"]], body: "Body=hi", sign: { params: [] },
  expect: "mismatch",
  note: "A form body's params are always signed (inferred); node and go choose the body path from the URL instead.",
});
add({
  id: "json/form-with-hash-signed-with-params", category: "json", description: "a form POST whose URL carries bodySHA256, signed with its params",
  url: J + "?bodySHA256=" + sha256hex("Body=hi"), params: [["Body", "hi"]], body: "Body=hi", expect: "valid",
  note: "node and go choose the body path from the URL and do not sign the params.",
});

// 7. SharedKey (X-Twilio-Webhooks-Signature-Settings).
const S = "https://hooks.example.com/sharedkey";
const SKP = [["Body", "hi"], ["From", "+14155550199"], ["AccountSid", ACCOUNT]];
const sk = (id, description, extra) =>
  add(Object.assign({
    id: "sharedkey/" + id, category: "sharedkey", description, url: S, params: SKP,
    sign: { secret: SK_SECRET, algorithm: "HMAC_SHA256" }, credentials: WITH_SK,
    settings: `key=${SK_ID},algorithm=HMAC_SHA256`, expect: "valid",
  }, extra));
const NO256 = "Only twilio-node 6.3.1 and twilio-python 9.13 implement SharedKey; twilio-go has no HMAC-SHA256.";
sk("sha256-form", "HMAC-SHA256 SharedKey, form webhook", { note: NO256 });
sk("sha256-form-443", "HMAC-SHA256, received with :443", { url: withPort(S, ":443"), sign: { url: S, secret: SK_SECRET, algorithm: "HMAC_SHA256" }, note: NO256 });
sk("sha256-json", "HMAC-SHA256, JSON webhook", {
  url: J + "?bodySHA256=" + sha256hex('{"a":1}'), params: undefined, contentType: "application/json", body: '{"a":1}', note: NO256,
});
sk("sha256-get", "HMAC-SHA256, GET webhook", { method: "GET", url: S + "?Digits=1", params: undefined, note: NO256 });
sk("sha1", "HMAC-SHA1 SharedKey", { sign: { secret: SK_SECRET, algorithm: "HMAC_SHA1" }, settings: `key=${SK_ID},algorithm=HMAC_SHA1` });
sk("header-spaces-order", "settings header with spaces, fields reordered", { settings: ` algorithm=HMAC_SHA256 , key=${SK_ID} `, note: NO256 });
sk("header-lowercase-alg", "algorithm name in lower case", { settings: `key=${SK_ID},algorithm=hmac_sha256`, note: NO256 });
sk("header-no-algorithm", "no algorithm field: HMAC-SHA1", { sign: { secret: SK_SECRET, algorithm: "HMAC_SHA1" }, settings: `key=${SK_ID}` });
sk("sha256-key-allows-only-256", "key allowing only HMAC-SHA256", { credentials: [sharedKey(["HMAC_SHA256"]), ...AUTH], note: NO256 });
sk("downgrade", "header names HMAC_SHA1 but the key allows only HMAC_SHA256", {
  credentials: [sharedKey(["HMAC_SHA256"]), ...AUTH], sign: { secret: SK_SECRET, algorithm: "HMAC_SHA1" },
  settings: `key=${SK_ID},algorithm=HMAC_SHA1`, expect: "algorithm_not_allowed",
  note: "SDKs know nothing of a key's allowed algorithms, so they accept the downgraded signature.",
});
sk("unknown-algorithm", "header names HMAC_SHA512", { settings: `key=${SK_ID},algorithm=HMAC_SHA512`, expect: "algorithm_not_allowed" });
sk("unknown-key", "header names a key the verifier does not hold", {
  settings: "key=webhooks_sharedkey_unknown,algorithm=HMAC_SHA256", expect: "unknown_shared_key",
  note: "SDKs hold one SharedKey secret and do not check the key id.",
});
sk("wrong-secret", "signed with another SharedKey secret", { sign: { secret: SK_OTHER_SECRET, algorithm: "HMAC_SHA256" }, expect: "mismatch" });
sk("sha256-sig-header-says-sha1", "an HMAC-SHA256 signature under a header naming HMAC_SHA1", {
  settings: `key=${SK_ID},algorithm=HMAC_SHA1`, expect: "malformed_signature",
  note: "A 44-character signature cannot be HMAC-SHA1.",
});
sk("sha1-sig-header-says-sha256", "an HMAC-SHA1 signature under a header naming HMAC_SHA256", {
  sign: { secret: SK_SECRET, algorithm: "HMAC_SHA1" }, credentials: [sharedKey(["HMAC_SHA1", "HMAC_SHA256"])],
  expect: "malformed_signature",
  note: "A 28-character signature cannot be HMAC-SHA256; twilio-go ignores the header and checks HMAC-SHA1 under the SharedKey secret.",
});
sk("sha256-without-header", "an HMAC-SHA256 SharedKey signature without the settings header", {
  settings: null, credentials: AUTH, expect: "malformed_signature", note: "Without the header only the auth token (HMAC-SHA1) applies.",
});
sk("auth-token-with-header", "signed with the auth token although the header names a key", {
  sign: { secret: TOKEN, algorithm: "HMAC_SHA1" },
  note: "DESIGN §2 also tries the auth token; the SDK middlewares use only the SharedKey secret when the header is present.",
});
sk("header-malformed", "a settings header without a key", {
  settings: "algorithm=HMAC_SHA256", expect: "malformed_request",
  note: "Without a key id no SharedKey can be selected; SDK apps use their one SharedKey secret and read only the algorithm.",
});
sk("header-garbage", "a settings header that is not key=value", { settings: "garbage", expect: "malformed_request" });
sk("tampered", "HMAC-SHA256, a param changed", { params: [["Body", "bye"], ...SKP.slice(1)], sign: { params: SKP, secret: SK_SECRET, algorithm: "HMAC_SHA256" }, expect: "mismatch" });

// 8. Tokens.
const TK = "https://hooks.example.com/tokens";
const TKP = [["AccountSid", ACCOUNT], ["Body", "hi"]];
const tok = (id, description, extra) =>
  add(Object.assign({ id: "token/" + id, category: "token", description, url: TK, params: TKP, expect: "valid" }, extra));
tok("primary", "signed with the primary token", {});
tok("rotation-new", "rotation: signed with the new primary", { credentials: ROTATING });
tok("rotation-old", "rotation: signed with the previous token", { credentials: ROTATING, sign: { secret: PREV } });
tok("previous-expired", "signed with a previous token the verifier no longer holds", { sign: { secret: PREV }, expect: "mismatch" });
tok("secondary-not-promoted", "signed with a secondary token that was never promoted", { sign: { secret: SECONDARY }, expect: "mismatch" });
tok("subaccount-token-master-held", "a subaccount's webhook checked with the master token", { sign: { secret: SUB }, expect: "mismatch" });
tok("subaccount-token", "a subaccount's webhook checked with its own token", {
  sign: { secret: SUB }, credentials: [{ name: "auth_token", secret: SUB }],
});
tok("empty-token-held", "the verifier holds an empty token; signed with the empty key", {
  sign: { secret: "" }, credentials: [{ name: "auth_token", secret: "" }], expect: "no_credentials",
  note: "Every SDK computes an HMAC under an empty key and accepts; an empty token must never verify.",
});
tok("empty-previous-ignored", "an empty previous token beside the real one", {
  sign: { secret: "" }, credentials: [{ name: "auth_token", secret: TOKEN }, { name: "previous_auth_token", secret: "" }],
  expect: "mismatch", note: "Every SDK computes an HMAC under an empty key and accepts; an empty token must never verify.",
});
tok("empty-token-valid-sig-elsewhere", "an empty previous token and a genuine signature", {
  credentials: [{ name: "previous_auth_token", secret: "" }, { name: "auth_token", secret: TOKEN }],
});
tok("long-token", "a 100-byte secret (longer than the HMAC block)", {
  sign: { secret: LONG }, credentials: [{ name: "auth_token", secret: LONG }],
});

// 9. The header itself.
const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const H = "https://hooks.example.com/header";
const HP = [["Body", "hi"], ["From", "+14155550199"]];
const hdr = (id, description, header, expect, extra = {}) =>
  add(Object.assign({ id: "header/" + id, category: "header", description, url: H, params: HP, header, expect }, extra));
hdr("missing", "no X-Twilio-Signature header", null, "missing_signature", {
  note: "python raises on a missing (None) signature.",
});
hdr("empty", "an empty X-Twilio-Signature", "", "missing_signature");
hdr("truncated", "the signature cut short", (s) => s.slice(0, 20), "malformed_signature");
hdr("unpadded", "the signature without its '='", (s) => s.replace(/=+$/, ""), "malformed_signature");
// A URL whose signature has a '+' or '/' to change.
const urlSafeURL = (() => {
  for (let k = 0; ; k++) {
    const u = H + "?k=" + k;
    if (/[+/]/.test(webhooks.getExpectedTwilioSignature(TOKEN, u, toObject(HP)))) return u;
  }
})();
hdr("url-safe", "URL-safe base64", (s) => s.replace(/\+/g, "-").replace(/\//g, "_"), "malformed_signature", { url: urlSafeURL });
hdr("hex", "the MAC in hex", (s) => Buffer.from(s, "base64").toString("hex"), "malformed_signature");
hdr("leading-space", "a leading space", (s) => " " + s, "malformed_signature");
hdr("trailing-newline", "a trailing newline", (s) => s + "\n", "malformed_signature");
// A 28-character signature is canonical when the unused low bits of its last
// character are zero; otherwise it is malformed, not merely wrong.
const canonical = (s) => B64.indexOf(s[26]) >= 0 && (B64.indexOf(s[26]) & 3) === 0;
hdr("lowercased", "the signature in lower case", (s) => s.toLowerCase(), (s) => (canonical(s) ? "mismatch" : "malformed_signature"));
hdr("uppercased", "the signature in upper case", (s) => s.toUpperCase(), (s) => (canonical(s) ? "mismatch" : "malformed_signature"));
hdr("two-values", "two signatures joined by a comma", (s) => s + "," + s, "malformed_signature");
hdr("non-canonical", "the last character changed in its unused bits (decodes to the same MAC)",
  (s) => s.slice(0, 26) + B64[B64.indexOf(s[26]) | 1] + "=", "malformed_signature");
hdr("sha256-length-sha1-creds", "a 44-character signature with only HMAC-SHA1 credentials", (s) => randomBytes(32).toString("base64"), "malformed_signature");
hdr("non-ascii", "non-ASCII characters", (s) => "é".repeat(14), "malformed_signature");
hdr("star", "a literal '*'", "*", "malformed_signature");
for (let i = 0; i < 12; i++) {
  hdr(`random-${i}`, "a random well-formed signature", randomBytes(20).toString("base64"), "mismatch");
}
for (let i = 0; i < 6; i++) {
  hdr(`random-garbage-${i}`, "random printable garbage of signature length", Array.from({ length: 28 }, () => String.fromCharCode(33 + Math.floor(rand() * 94))).join(""), "malformed_signature");
}
hdr("other-request", "a genuine signature of another request (replayed)", (s) => s, "mismatch", {
  sign: { url: H, params: [["Body", "other"]] },
});

// 10. Multi-credential selection and no credentials.
add({
  id: "creds/none", category: "credentials", description: "the verifier holds no secret at all", url: H, params: HP,
  credentials: [], expect: "no_credentials",
});
add({
  id: "creds/second-of-three", category: "credentials", description: "three secrets, the second matches", url: H, params: HP,
  credentials: [{ name: "auth_token", secret: OTHER }, { name: "previous_auth_token", secret: TOKEN }, { name: "spare", secret: SUB }],
  expect: "valid",
});

// ---------------------------------------------------------------------------
for (const c of cases) {
  if (c.signed.secret_of === undefined) throw new Error("secret not named in " + c.id);
}
process.stdout.write(JSON.stringify({
  generator: { "twilio-node": twilioPkg.version },
  secrets: Object.fromEntries([...SECRET_NAMES].map(([value, name]) => [name, value])),
  cases,
}));
