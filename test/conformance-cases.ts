/**
 * The llhttp request corpus and what we expect of each record, shared by
 * test/conformance-parser.test.ts (the parser alone, via probeRequests) and
 * test/conformance-socket.test.ts (a running engine over TCP).
 *
 * The corpus (llhttp-requests.json: $LLHTTP_CORPUS, else test/fixtures/, else
 * /work/shared/conformance/; see its README) holds every request test of llhttp 9.4.2: the
 * bytes a client sends and what llhttp reports.
 *
 * How llhttp's verdicts map onto the server's request loop (Expectation):
 *   ok                         -> 'accept': the same completed messages; `incomplete` when llhttp waits for more
 *   HPE_PAUSED_UPGRADE         -> 'stop': the same messages, the loop stops after the upgrade/CONNECT
 *                                 message and `rest` is exactly the bytes after llhttp's pause point
 *   HPE_CLOSED_CONNECTION      -> 'close': the same messages, the loop stops after the non-keep-alive
 *                                 message (no later than llhttp's error offset) with rest > 0
 *   any other error            -> 'refuse': error, with the messages completed before it; which of our
 *                                 errors is expected is pinned per record in OUR_ERROR below
 *
 * HTTP/1.1 without Host: RFC 9112 section 3.2 makes a server answer 400, and
 * most llhttp inputs have no Host. Each such input is therefore run twice:
 * as is (where we refuse it: listed in DIFFERENCES), and with
 * "Host: example.test" inserted after each HTTP/1.1 request line that lacks
 * one, where llhttp's verdict must then hold (the expected messages gain
 * that field). So the rest of every input is still checked against llhttp.
 *
 * DIFFERENCES lists every deliberate deviation from llhttp, each one a
 * stricter-server choice named in the corpus README; `expectationFor` applies
 * it. LENIENT gives our verdict on each lenient-mode record (llhttp with a
 * leniency flag on): we refuse every one of them (or stop reading, for the
 * keep-alive leniency), with the reason.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

// ---------------------------------------------------------------------------
// Corpus

export const ROOT = path.resolve(__dirname, '..');
// LLHTTP_CORPUS, else a copy vendored at test/fixtures/, else the shared one.
export const CORPUS_CANDIDATES = [
  process.env.LLHTTP_CORPUS,
  path.join(ROOT, 'test', 'fixtures', 'llhttp-requests.json'),
  '/work/shared/conformance/llhttp-requests.json',
].filter((p): p is string => !!p);

export interface LlMessage {
  method: string | null;
  url: string;
  protocol: string | null;
  versionMajor: number | null;
  versionMinor: number | null;
  headers: [string, string][];
  body?: string; // base64
  chunked?: boolean;
  upgrade?: boolean;
  flags?: number;
}

export interface LlRecord {
  id: string;
  mode: string;
  lenient: string[] | null;
  harnessOnly?: boolean;
  tags?: string[];
  raw: string; // base64
  rawLatin1: string;
  expect: {
    ok: boolean;
    errorName?: string;
    errorOffset?: number;
    messages: LlMessage[];
    incomplete?: boolean;
    partial?: LlMessage & { headersComplete: boolean };
    paused?: { name: string; offset: number };
  };
}

export function loadCorpus(): LlRecord[] {
  const file = process.env.LLHTTP_CORPUS ?? CORPUS_CANDIDATES.find((p) => existsSync(p));
  if (!file || !existsSync(file)) throw new Error(`llhttp corpus not found (tried ${CORPUS_CANDIDATES.join(', ')}; set LLHTTP_CORPUS)`);
  const corpus = JSON.parse(readFileSync(file, 'utf8'));
  if (corpus.format !== 'llhttp-request-corpus/1') throw new Error(`unexpected corpus format ${corpus.format}`);
  return corpus.records;
}

export const RECORDS = loadCorpus();

// ---------------------------------------------------------------------------
// What we expect of the server's request loop

export interface Msg {
  method: string;
  url: string;
  versionMinor: number;
  headers: [string, string][];
  body: Buffer;
  chunked: boolean;
  upgrade: boolean;
  keepAlive: boolean;
}

export type Expectation =
  | { kind: 'accept'; messages: Msg[]; incomplete: boolean } // no error, nothing left over
  | { kind: 'stop'; messages: Msg[]; rest: number } // upgrade/CONNECT: exactly `rest` bytes left to the new protocol
  | { kind: 'close'; messages: Msg[]; minRest: number } // stopped after a non-keep-alive message, rest >= minRest > 0
  | { kind: 'refuse'; messages: Msg[]; status?: number; errorName?: string };

export const trimOws = (s: string) => s.replace(/^[ \t]+|[ \t]+$/g, '');

// llhttp's keep-alive decision for a request (llhttp_should_keep_alive):
// HTTP/1.1 unless F_CONNECTION_CLOSE (2), HTTP/1.0 only with F_CONNECTION_KEEP_ALIVE (1).
export function llKeepAlive(m: LlMessage): boolean {
  const flags = m.flags ?? 0;
  return m.versionMinor === 1 ? (flags & 2) === 0 : (flags & 1) !== 0;
}

export function toMsg(m: LlMessage, injectedHost: boolean): Msg {
  if (m.protocol !== 'HTTP' || m.versionMajor !== 1 || m.method === null || m.versionMinor === null) {
    throw new Error(`llhttp message is not HTTP/1.x (${m.protocol} ${m.versionMajor}.${m.versionMinor}); such records must be listed in DIFFERENCES`);
  }
  const headers = m.headers.map(([n, v]) => [n, trimOws(v)] as [string, string]);
  return {
    method: m.method,
    url: m.url,
    versionMinor: m.versionMinor,
    headers: injectedHost ? [['Host', INJECTED_HOST_VALUE], ...headers] : headers,
    body: Buffer.from(m.body ?? '', 'base64'),
    chunked: m.chunked === true,
    upgrade: m.upgrade === true,
    keepAlive: llKeepAlive(m),
  };
}

// ---------------------------------------------------------------------------
// Host insertion

export const INJECTED_HOST_VALUE = 'example.test';
export const INJECTED_HOST_LINE = `Host: ${INJECTED_HOST_VALUE}\r\n`;

export interface Input {
  label: 'raw' | 'withHost';
  buf: Buffer;
  injected: boolean[]; // per llhttp message (completed ones, then the partial one): did we insert Host
}

// Inserts a Host field after each HTTP/1.1 request line (of the messages
// llhttp saw, in order) whose header section has none. Returns null when
// nothing needed inserting (or a request line never completed).
export function withHost(rec: LlRecord): Input | null {
  const msgs = [...rec.expect.messages, ...(rec.expect.partial ? [rec.expect.partial] : [])];
  let s = rec.rawLatin1;
  let cursor = 0;
  const injected: boolean[] = [];
  for (const m of msgs) {
    if (m.protocol !== 'HTTP' || m.versionMajor !== 1) break;
    const line = `${m.method} ${m.url} HTTP/1.${m.versionMinor}\r\n`;
    const at = s.indexOf(line, cursor);
    if (at < 0) break;
    let end = at + line.length;
    const blank = s.indexOf('\r\n\r\n', end - 2);
    const section = s.slice(end, blank < 0 ? s.length : blank + 2);
    const needs = m.versionMinor === 1 && !/(^|\n)host[ \t]*:/i.test(section);
    if (needs) {
      s = s.slice(0, end) + INJECTED_HOST_LINE + s.slice(end);
      end += INJECTED_HOST_LINE.length;
    }
    injected.push(needs);
    cursor = end;
  }
  return injected.some(Boolean) ? { label: 'withHost', buf: Buffer.from(s, 'latin1'), injected } : null;
}

export function inputsOf(rec: LlRecord): Input[] {
  const raw: Input = { label: 'raw', buf: Buffer.from(rec.raw, 'base64'), injected: [] };
  const host = withHost(rec);
  return host ? [raw, host] : [raw];
}

// llhttp's verdict on `input`, mapped onto the loop. `pinError`: expect the
// error named in OUR_ERROR (off for an input that also lacks Host, which we
// may refuse for that first; its withHost run pins the reason).
export function llhttpExpectation(rec: LlRecord, input: Input, pinError: boolean): Expectation {
  const e = rec.expect;
  const messages = e.messages.map((m, i) => toMsg(m, input.injected[i] === true));
  const rawLen = Buffer.from(rec.raw, 'base64').length;
  if (e.ok && e.paused) {
    // The bytes after llhttp's pause point belong to the new protocol;
    // counted from the end, an insertion before it does not change them.
    return { kind: 'stop', messages, rest: rawLen - e.paused.offset };
  }
  if (e.ok) return { kind: 'accept', messages, incomplete: e.incomplete === true };
  if (e.errorName === 'HPE_CLOSED_CONNECTION') {
    // We must stop no later than where llhttp saw the data after close.
    return { kind: 'close', messages, minRest: Math.max(1, rawLen - (e.errorOffset ?? rawLen)) };
  }
  return { kind: 'refuse', messages, errorName: pinError ? OUR_ERROR[rec.id] : undefined };
}

// ---------------------------------------------------------------------------
// Deliberate differences from llhttp (strict records)

// The stricter-server choices the corpus README names.
export const NO_HOST = 'HTTP/1.1 request without Host: RFC 9112 section 3.2 requires a 400 (README: "HTTP/1.1 without Host")';
export const NON_HTTP = 'RTSP/ICE protocol versions are llhttp extensions; we speak HTTP/1.x only (README: "RTSP/ICE protocols")';
export const HTTP09 = 'HTTP/0.9 request line (no version): we refuse it (README: "HTTP/0.9 request lines")';
export const H2_PREFACE =
  'PRI is not a registered HTTP/1.1 method (llhttp pauses for an HTTP/2 upgrade); the corpus bytes are "PRI * HTTP/1.1", so 501; ' +
  'the real preface "PRI * HTTP/2.0" gets 505 (unit-tested) (README: "PRI")';
export const UNKNOWN_CODING =
  'a transfer coding other than chunked before chunked: RFC 9112 section 6.1 allows 501 (README: "unknown transfer codings before chunked")';

export interface Difference {
  id: string;
  input: 'raw' | 'withHost' | 'both';
  ours: { status: number; errorName: string; messages?: number };
  reason: string;
}

export const refuse = (status: number, errorName: string, messages = 0) => ({ status, errorName, messages });
export const noHost = (id: string): Difference => ({ id, input: 'raw', ours: refuse(400, 'MissingHost'), reason: NO_HOST });

export const DIFFERENCES: Difference[] = [
  noHost('connection/setting-flag'),
  noHost('connection/restarting-when-keep-alive-is-explicitly'),
  noHost('connection/setting-flag-on-close'),
  noHost('connection/setting-flag-on-close-followed-by-tab'),
  noHost('connection/sample'),
  noHost('connection/multiple-tokens-with-folding-and-lws'),
  noHost('connection/setting-a-flag-and-pausing'),
  noHost('connection/emitting-part-of-body-and-pausing'),
  noHost('content-length/content-length-with-zeroes'),
  noHost('content-length/content-length-with-follow-up-headers'),
  noHost('content-length/spaces-in-content-length-surrounding'),
  noHost('content-length/tabs-in-content-length-surrounding'),
  noHost('finish/it-should-be-safe-to-finish-after-get-request'),
  noHost('method/report-request'),
  noHost('pausing/on-message-begin'),
  noHost('pausing/on-message-complete'),
  noHost('pausing/on-protocol-complete'),
  noHost('pausing/on-method-complete'),
  noHost('pausing/on-url-complete'),
  noHost('pausing/on-version-complete'),
  noHost('pausing/on-header-field-complete'),
  noHost('pausing/on-header-value-complete'),
  noHost('pausing/on-headers-complete'),
  noHost('pausing/on-chunk-header'),
  noHost('pausing/on-chunk-extension-name'),
  noHost('pausing/on-chunk-extension-value'),
  noHost('pausing/on-chunk-complete'),
  noHost('pipelining/should-parse-multiple-events'),
  noHost('sample/simple-request'),
  noHost('sample/request-with-method-starting-with-h'),
  noHost('sample/dumbpack'),
  noHost('sample/no-headers-and-no-body'),
  noHost('sample/one-header-and-no-body'),
  noHost('sample/prefix-newline'),
  noHost('sample/request-starting-with-crlf'),
  noHost('sample/extended-characters'),
  noHost('sample/255-ascii-in-header-value'),
  noHost('transfer-encoding/parsing-and-setting-flag'),
  noHost('transfer-encoding/parse-chunks-with-lowercase-size'),
  noHost('transfer-encoding/parse-chunks-with-uppercase-size'),
  noHost('transfer-encoding/post-with-transfer-encoding-chunked'),
  noHost('transfer-encoding/two-chunks-and-triple-zero-prefixed-end-chunk'),
  noHost('transfer-encoding/trailing-headers'),
  noHost('transfer-encoding/chunk-extensions'),
  noHost('transfer-encoding/chunk-extensions-quoting'),
  noHost('uri/quotes-in-uri'),
  noHost('uri/query-url-with-question-mark'),
  noHost('uri/host-terminated-by-a-query-string'),
  noHost('uri/host-port-terminated-by-a-query-string'),
  noHost('uri/query-url-with-vertical-bar-character'),
  noHost('uri/host-port-terminated-by-a-space'),
  noHost('uri/fragment-in-uri'),
  noHost('uri/host-port-and-basic-auth'),
  { id: 'method/source-request-with-ice', input: 'raw', ours: refuse(400, 'BadVersion'), reason: NON_HTTP },
  { id: 'method/options-request-with-rtsp', input: 'raw', ours: refuse(400, 'BadVersion'), reason: NON_HTTP },
  { id: 'method/announce-request-with-rtsp', input: 'raw', ours: refuse(400, 'BadVersion'), reason: NON_HTTP },
  { id: 'sample/no-http-version', input: 'raw', ours: refuse(400, 'BadVersion'), reason: HTTP09 },
  { id: 'method/pri-request-http2', input: 'raw', ours: refuse(501, 'UnknownMethod'), reason: H2_PREFACE },
  // "deflate, chunked" without Host: the coding is refused before Host is looked at.
  { id: 'transfer-encoding/post-with-chunked-as-last-transfer-encoding', input: 'both', ours: refuse(501, 'UnknownCoding'), reason: UNKNOWN_CODING },
  { id: 'transfer-encoding/post-with-chunked-as-last-transfer-encoding-multiple-headers', input: 'both', ours: refuse(501, 'UnknownCoding'), reason: UNKNOWN_CODING },
];

// Which of our errors each llhttp error record gets (on the input with Host
// inserted where that applies, so the error is about what llhttp refused).
export const OUR_ERROR: Record<string, string> = {
  'connection/not-treating-r-as': 'BadRequest', // bare CR in a value
  'connection/invalid-whitespace-token-with-connection-header-field': 'BadRequest', // "Connection :"
  'content-length/error-on-content-length-overflow': 'BadContentLength',
  'content-length/error-on-duplicate-content-length': 'BadContentLength', // 1 then 2
  'content-length/error-on-simultaneous-content-length-and-transfer-encoding-i': 'LengthWithChunked',
  'content-length/invalid-whitespace-token-with-content-length-header-field': 'BadRequest',
  'content-length/spaces-in-content-length-2': 'BadContentLength',
  'content-length/spaces-in-content-length-3': 'BadContentLength',
  'content-length/empty-content-length': 'BadContentLength',
  'content-length/content-length-with-cr-instead-of-dash': 'BadRequest',
  'content-length/missing-crlf-crlf-before-body': 'BadRequest', // CR not followed by LF
  'invalid/ice-protocol-and-get-method': 'BadVersion',
  'invalid/ice-protocol-but-not-really': 'BadVersion',
  'invalid/rtsp-protocol-and-put-method': 'BadVersion',
  'invalid/http-protocol-and-announce-method': 'UnknownMethod', // ANNOUNCE is RTSP-only
  'invalid/headers-separated-by-cr': 'BadRequest',
  'invalid/headers-separated-by-lf': 'BadRequest',
  'invalid/headers-separated-by-dummy-characters': 'BadRequest',
  'invalid/empty-headers-separated-by-cr': 'BadRequest',
  'invalid/empty-headers-separated-by-lf': 'BadRequest',
  'invalid/invalid-header-token-1': 'BadRequest',
  'invalid/invalid-header-token-2': 'BadRequest',
  'invalid/invalid-header-token-3': 'BadRequest',
  'invalid/invalid-method': 'UnknownMethod', // MKCOLA is a token, not a method
  'invalid/illegal-header-field-name-line-folding': 'BadRequest',
  'invalid/corrupted-connection-header': 'BadRequest',
  'invalid/corrupted-header-name': 'BadRequest',
  'invalid/missing-cr-between-headers': 'BadRequest',
  'invalid/invalid-http-version': 'UnsupportedVersion', // HTTP/5.6, refused before its CRLF arrives
  'invalid/invalid-space-after-start-line': 'ObsFold',
  'invalid/only-lfs-present': 'BadVersion', // LF right after the version
  'invalid/spaces-before-headers': 'ObsFold',
  'lenient-header-value-relaxed/control-char-in-header-value-strict': 'BadRequest',
  'lenient-headers/header-value': 'BadRequest',
  'sample/line-folding-in-header-value-with-lf': 'BadRequest',
  'sample/no-lf-after-cr': 'BadRequest',
  'transfer-encoding/no-semicolon-before-chunk-extensions': 'BadChunkedBody',
  'transfer-encoding/no-extension-after-semicolon': 'BadChunkedBody',
  'transfer-encoding/unbalanced-chunk-extensions-quoting': 'BadChunkedBody',
  'transfer-encoding/ignoring-pigeons': 'UnknownCoding',
  'transfer-encoding/post-with-transfer-encoding-and-content-length': 'LengthWithChunked',
  'transfer-encoding/post-with-empty-transfer-encoding-and-content-length-lenient': 'LengthWithChunked',
  'transfer-encoding/post-with-chunked-before-other-transfer-coding-names': 'BadTransferEncoding',
  'transfer-encoding/post-with-chunked-and-duplicate-transfer-encoding': 'BadTransferEncoding',
  'transfer-encoding/post-with-chunkedchunked-as-transfer-encoding': 'UnknownCoding',
  'transfer-encoding/missing-last-chunk': 'BadChunkedBody',
  'transfer-encoding/validate-chunk-parameters': 'BadChunkedBody',
  'transfer-encoding/chunk-header-not-terminated-by-crlf': 'BadChunkedBody',
  'transfer-encoding/chunk-data-not-terminated-by-crlf': 'BadChunkedBody',
  'transfer-encoding/space-after-chunk-header': 'BadChunkedBody',
  'uri/disallow-utf-8-in-uri-path-in-strict-mode': 'BadRequest',
  'uri/space-in-uri': 'BadVersion', // "bar/" where the version should be
};

// ---------------------------------------------------------------------------
// Lenient-mode records: each relies on a leniency we do not have (or llhttp
// refuses it even when lenient); we must refuse it, or for the keep-alive
// leniency, stop reading after the non-keep-alive request.

export type LenientVerdict = { refuse: string; messages?: number } | { closeAfter: number };

export const LENIENT: Record<string, LenientVerdict> = {
  'connection/resetting-flags-when-keep-alive-is-off-1-0-lenient': { closeAfter: 1 },
  'connection/crlf-between-requests-explicit-close-lenient': { closeAfter: 1 },
  'connection/multiple-tokens-with-folding': { refuse: 'ObsFold' },
  'connection/multiple-tokens-with-folding-lws-and-crlf': { refuse: 'ObsFold' },
  'connection/invalid-whitespace-token-with-connection-header-field-lenien': { refuse: 'BadRequest' },
  'content-length/invalid-whitespace-token-with-content-length-header-field-le': { refuse: 'BadRequest' },
  'content-length/no-error-on-simultaneous-content-length-and-transfer-encodin': { refuse: 'LengthWithChunked' },
  'content-length/missing-crlf-crlf-before-body-lenient': { refuse: 'BadRequest' },
  'invalid/headers-separated-by-dummy-characters-lenient': { refuse: 'BadRequest' },
  'invalid/only-lfs-present-lenient': { refuse: 'BadVersion' },
  'invalid/spaces-before-headers-lenient': { refuse: 'ObsFold' },
  'lenient-header-value-relaxed/control-char-in-header-value-relaxed': { refuse: 'BadRequest' },
  'lenient-header-value-relaxed/lf-in-header-value-should-be-rejected-even-with-relaxed-flag': { refuse: 'BadRequest' },
  'lenient-header-value-relaxed/cr-without-lf-in-header-value-should-be-rejected-even-with-r': { refuse: 'BadRequest' },
  'lenient-header-value-relaxed/space-after-start-line-must-still-fail': { refuse: 'ObsFold' },
  'lenient-headers/header-value-lenient': { refuse: 'BadRequest' },
  'lenient-headers/second-request-header-value-lenient': { refuse: 'BadRequest', messages: 1 },
  'lenient-headers/empty-headers-separated-by-cr-lenient': { refuse: 'BadRequest' },
  'lenient-version/invalid-http-version-lenient': { refuse: 'UnsupportedVersion' },
  'sample/line-folding-in-header-value-with-crlf': { refuse: 'ObsFold' },
  'sample/no-lf-after-cr-lenient': { refuse: 'BadRequest' },
  'sample/x-ssl-nonsense': { refuse: 'ObsFold' },
  'transfer-encoding/post-with-transfer-encoding-and-content-length-lenient': { refuse: 'LengthWithChunked' },
  'transfer-encoding/post-with-chunked-before-other-transfer-coding-lenient': { refuse: 'BadTransferEncoding' },
  'transfer-encoding/post-with-chunked-and-duplicate-transfer-encoding-lenient': { refuse: 'BadTransferEncoding' },
  'transfer-encoding/invalid-obs-fold-after-chunked-value': { refuse: 'ObsFold' },
  'transfer-encoding/chunk-header-not-terminated-by-crlf-lenient': { refuse: 'BadChunkedBody' },
  'transfer-encoding/chunk-data-not-terminated-by-crlf-lenient': { refuse: 'BadChunkedBody' },
  'transfer-encoding/space-after-chunk-header-lenient': { refuse: 'BadChunkedBody' },
};

export function lenientExpectation(rec: LlRecord, input: Input): Expectation {
  const v = LENIENT[rec.id];
  const prefix = (n: number) => rec.expect.messages.slice(0, n).map((m, i) => toMsg(m, input.injected[i] === true));
  if ('closeAfter' in v) return { kind: 'close', messages: prefix(v.closeAfter), minRest: 1 };
  return { kind: 'refuse', messages: prefix(v.messages ?? 0), errorName: v.refuse };
}

// ---------------------------------------------------------------------------
// The records by kind, and the expectation for each input

export const strict = RECORDS.filter((r) => r.lenient === null && !r.harnessOnly);
export const lenient = RECORDS.filter((r) => r.lenient !== null);
export const harnessOnly = RECORDS.filter((r) => r.harnessOnly);
export const diffById = new Map(DIFFERENCES.map((d) => [d.id, d]));

export function differenceFor(id: string, label: Input['label']): Difference | undefined {
  const d = diffById.get(id);
  return d && (d.input === 'both' || d.input === label) ? d : undefined;
}

// What llhttp's verdict (or our listed difference) means for one input of a
// strict record. `inputs` are all of the record's inputs (inputsOf): when an
// input also lacks Host, we may refuse it for that first, so only the
// withHost input (or the only one) pins the error named in OUR_ERROR.
export function expectationFor(rec: LlRecord, input: Input, inputs: Input[]): Expectation {
  const diff = differenceFor(rec.id, input.label);
  if (diff) {
    return {
      kind: 'refuse',
      messages: rec.expect.messages.slice(0, diff.ours.messages ?? 0).map((m, i) => toMsg(m, input.injected[i] === true)),
      status: diff.ours.status,
      errorName: diff.ours.errorName,
    };
  }
  return llhttpExpectation(rec, input, input.label === 'withHost' || inputs.length === 1);
}

// The HTTP status the server answers for each of our error names
// (native/http_parser.cc httpStatus(), plus the chunked decoder's).
export const ERROR_STATUS: Record<string, number> = {
  BadRequest: 400,
  BadContentLength: 400,
  LengthWithChunked: 400,
  BadTransferEncoding: 400,
  UnknownCoding: 501,
  MissingHost: 400,
  BadHost: 400,
  ObsFold: 400,
  UnknownMethod: 501,
  HeadTooLarge: 431,
  UriTooLong: 414,
  TooManyHeaders: 400,
  BadVersion: 400,
  UnsupportedVersion: 505,
  BadExpect: 417,
  BadChunkedBody: 400,
};

/** The status expected for a refusal, when the expectation pins one. */
export function refusalStatus(exp: Expectation & { kind: 'refuse' }): number | undefined {
  return exp.status ?? (exp.errorName !== undefined ? ERROR_STATUS[exp.errorName] : undefined);
}
