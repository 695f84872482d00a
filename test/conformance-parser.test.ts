/**
 * Request-parser conformance against llhttp's own request tests.
 *
 * The corpus (llhttp-requests.json: $LLHTTP_CORPUS, else test/fixtures/, else
 * /work/shared/conformance/; see its README) holds every request test of llhttp 9.4.2: the
 * bytes a client sends and what llhttp reports. Each input is run through
 * the addon's `probeRequests`, which drives our parser and chunked decoder
 * with the connection's request loop (parse head, read body, stop after a
 * non-keep-alive or upgrade request), fed whole and in pieces of 1, 2 and 7
 * bytes, with the best scanners and with the scalar ones forced.
 *
 * How llhttp's verdicts map onto the loop:
 *   ok                         -> the same completed messages; `incomplete` when llhttp waits for more
 *   HPE_PAUSED_UPGRADE         -> the same messages, the loop stops after the upgrade/CONNECT
 *                                 message and `rest` is exactly the bytes after llhttp's pause point
 *   HPE_CLOSED_CONNECTION      -> the same messages, the loop stops after the non-keep-alive
 *                                 message (no later than llhttp's error offset) with rest > 0
 *   any other error            -> error, with the messages completed before it; which of our
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
 * stricter-server choice named in the corpus README. The test fails if we
 * stop refusing any of them, and if a record differs that is not listed.
 *
 * Lenient-mode records (llhttp with a leniency flag on): LENIENT asserts
 * that we refuse every one of them (or stop reading, for the keep-alive
 * leniency), with the reason.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { METHODS } from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';

// ---------------------------------------------------------------------------
// Corpus and addon

const ROOT = path.resolve(__dirname, '..');
// LLHTTP_CORPUS, else a copy vendored at test/fixtures/, else the shared one.
const CORPUS_CANDIDATES = [
  process.env.LLHTTP_CORPUS,
  path.join(ROOT, 'test', 'fixtures', 'llhttp-requests.json'),
  '/work/shared/conformance/llhttp-requests.json',
].filter((p): p is string => !!p);

interface LlMessage {
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

interface LlRecord {
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

interface ProbeMessage {
  method: string;
  url: string;
  versionMinor: number;
  headers: [string, string][];
  body: Buffer;
  chunked: boolean;
  keepAlive: boolean;
  upgrade: boolean;
  expectContinue: boolean;
}

interface ProbeResult {
  messages: ProbeMessage[];
  error: boolean;
  status: number;
  reason: string;
  errorName: string;
  errorOffset: number;
  incomplete: boolean;
  rest: number;
}

interface Addon {
  probeRequests(buf: Buffer, splitEvery?: number, maxHeadSize?: number, maxHeaders?: number): ProbeResult;
  setScalarParser(force: boolean): string;
}

function loadCorpus(): LlRecord[] {
  const file = process.env.LLHTTP_CORPUS ?? CORPUS_CANDIDATES.find((p) => existsSync(p));
  if (!file || !existsSync(file)) throw new Error(`llhttp corpus not found (tried ${CORPUS_CANDIDATES.join(', ')}; set LLHTTP_CORPUS)`);
  const corpus = JSON.parse(readFileSync(file, 'utf8'));
  if (corpus.format !== 'llhttp-request-corpus/1') throw new Error(`unexpected corpus format ${corpus.format}`);
  return corpus.records;
}

// FEERSUM_ADDON may point at a .node file exporting probeRequests and
// setScalarParser; by default the package's own build is loaded.
function loadAddon(): Addon {
  const req = createRequire(path.join(ROOT, 'package.json'));
  const explicit = process.env.FEERSUM_ADDON;
  const addon = explicit ? req(path.resolve(explicit)) : req('node-gyp-build')(ROOT);
  if (typeof addon.probeRequests !== 'function' || typeof addon.setScalarParser !== 'function') {
    throw new Error('the addon does not export probeRequests/setScalarParser (see native/probe_binding.h)');
  }
  return addon as Addon;
}

const RECORDS = loadCorpus();
const addon = loadAddon();

// Ways of feeding each input: whole and in small pieces, with the best
// scanners and with the scalar fallback forced.
const RUNS = [0, 1, 2, 7].flatMap((splitEvery) =>
  [false, true].map((scalar) => ({ splitEvery, scalar, name: `${splitEvery ? `every ${splitEvery}` : 'whole'}${scalar ? ', scalar' : ''}` })),
);

function probe(buf: Buffer, splitEvery: number, scalar: boolean): ProbeResult {
  const impl = addon.setScalarParser(scalar);
  try {
    if (scalar) expect(impl).toBe('scalar');
    return addon.probeRequests(buf, splitEvery);
  } finally {
    addon.setScalarParser(false);
  }
}

// ---------------------------------------------------------------------------
// What we expect of the probe

interface Msg {
  method: string;
  url: string;
  versionMinor: number;
  headers: [string, string][];
  body: Buffer;
  chunked: boolean;
  upgrade: boolean;
  keepAlive: boolean;
}

type Expectation =
  | { kind: 'accept'; messages: Msg[]; incomplete: boolean } // no error, nothing left over
  | { kind: 'stop'; messages: Msg[]; rest: number } // upgrade/CONNECT: exactly `rest` bytes left to the new protocol
  | { kind: 'close'; messages: Msg[]; minRest: number } // stopped after a non-keep-alive message, rest >= minRest > 0
  | { kind: 'refuse'; messages: Msg[]; status?: number; errorName?: string };

const trimOws = (s: string) => s.replace(/^[ \t]+|[ \t]+$/g, '');

// llhttp's keep-alive decision for a request (llhttp_should_keep_alive):
// HTTP/1.1 unless F_CONNECTION_CLOSE (2), HTTP/1.0 only with F_CONNECTION_KEEP_ALIVE (1).
function llKeepAlive(m: LlMessage): boolean {
  const flags = m.flags ?? 0;
  return m.versionMinor === 1 ? (flags & 2) === 0 : (flags & 1) !== 0;
}

function toMsg(m: LlMessage, injectedHost: boolean): Msg {
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

const INJECTED_HOST_VALUE = 'example.test';
const INJECTED_HOST_LINE = `Host: ${INJECTED_HOST_VALUE}\r\n`;

interface Input {
  label: 'raw' | 'withHost';
  buf: Buffer;
  injected: boolean[]; // per llhttp message (completed ones, then the partial one): did we insert Host
}

// Inserts a Host field after each HTTP/1.1 request line (of the messages
// llhttp saw, in order) whose header section has none. Returns null when
// nothing needed inserting (or a request line never completed).
function withHost(rec: LlRecord): Input | null {
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

function inputsOf(rec: LlRecord): Input[] {
  const raw: Input = { label: 'raw', buf: Buffer.from(rec.raw, 'base64'), injected: [] };
  const host = withHost(rec);
  return host ? [raw, host] : [raw];
}

// llhttp's verdict on `input`, mapped onto the loop. `pinError`: expect the
// error named in OUR_ERROR (off for an input that also lacks Host, which we
// may refuse for that first; its withHost run pins the reason).
function llhttpExpectation(rec: LlRecord, input: Input, pinError: boolean): Expectation {
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

function assertProbe(r: ProbeResult, exp: Expectation, where: string): void {
  const summary = `${where}: ${JSON.stringify({ error: r.error, status: r.status, errorName: r.errorName, offset: r.errorOffset, incomplete: r.incomplete, rest: r.rest, messages: r.messages.length })}`;
  expect(r.messages.length, summary).toBe(exp.messages.length);
  exp.messages.forEach((m, i) => {
    const got = r.messages[i];
    const ctx = `${where}, message ${i}`;
    expect(got.method, ctx).toBe(m.method);
    expect(got.url, ctx).toBe(m.url);
    expect(got.versionMinor, ctx).toBe(m.versionMinor);
    expect(got.headers, ctx).toEqual(m.headers);
    expect(got.body.equals(m.body), `${ctx}: body ${JSON.stringify(got.body.toString('latin1'))} vs ${JSON.stringify(m.body.toString('latin1'))}`).toBe(true);
    expect(got.chunked, ctx).toBe(m.chunked);
    expect(got.upgrade, ctx).toBe(m.upgrade);
    expect(got.keepAlive, ctx).toBe(m.keepAlive);
  });
  switch (exp.kind) {
    case 'accept':
      expect(r.error, summary).toBe(false);
      expect(r.incomplete, summary).toBe(exp.incomplete);
      expect(r.rest, summary).toBe(0);
      break;
    case 'stop':
      expect(r.error, summary).toBe(false);
      expect(r.incomplete, summary).toBe(false);
      expect(r.messages.at(-1)?.upgrade, summary).toBe(true);
      expect(r.rest, summary).toBe(exp.rest);
      break;
    case 'close':
      expect(r.error, summary).toBe(false);
      expect(r.incomplete, summary).toBe(false);
      expect(r.messages.at(-1)?.keepAlive, summary).toBe(false);
      expect(r.rest, summary).toBeGreaterThanOrEqual(exp.minRest);
      break;
    case 'refuse':
      expect(r.error, summary).toBe(true);
      expect([400, 414, 417, 431, 501, 505], summary).toContain(r.status);
      if (exp.status !== undefined) expect(r.status, summary).toBe(exp.status);
      if (exp.errorName !== undefined) expect(r.errorName, summary).toBe(exp.errorName);
      break;
  }
}

// ---------------------------------------------------------------------------
// Deliberate differences from llhttp (strict records)

// The stricter-server choices the corpus README names.
const NO_HOST = 'HTTP/1.1 request without Host: RFC 9112 section 3.2 requires a 400 (README: "HTTP/1.1 without Host")';
const NON_HTTP = 'RTSP/ICE protocol versions are llhttp extensions; we speak HTTP/1.x only (README: "RTSP/ICE protocols")';
const HTTP09 = 'HTTP/0.9 request line (no version): we refuse it (README: "HTTP/0.9 request lines")';
const H2_PREFACE =
  'PRI is not a registered HTTP/1.1 method (llhttp pauses for an HTTP/2 upgrade); the corpus bytes are "PRI * HTTP/1.1", so 501; ' +
  'the real preface "PRI * HTTP/2.0" gets 505 (unit-tested) (README: "PRI")';
const UNKNOWN_CODING =
  'a transfer coding other than chunked before chunked: RFC 9112 section 6.1 allows 501 (README: "unknown transfer codings before chunked")';

interface Difference {
  id: string;
  input: 'raw' | 'withHost' | 'both';
  ours: { status: number; errorName: string; messages?: number };
  reason: string;
}

const refuse = (status: number, errorName: string, messages = 0) => ({ status, errorName, messages });
const noHost = (id: string): Difference => ({ id, input: 'raw', ours: refuse(400, 'MissingHost'), reason: NO_HOST });

const DIFFERENCES: Difference[] = [
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
const OUR_ERROR: Record<string, string> = {
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

type LenientVerdict = { refuse: string; messages?: number } | { closeAfter: number };

const LENIENT: Record<string, LenientVerdict> = {
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

function lenientExpectation(rec: LlRecord, input: Input): Expectation {
  const v = LENIENT[rec.id];
  const prefix = (n: number) => rec.expect.messages.slice(0, n).map((m, i) => toMsg(m, input.injected[i] === true));
  if ('closeAfter' in v) return { kind: 'close', messages: prefix(v.closeAfter), minRest: 1 };
  return { kind: 'refuse', messages: prefix(v.messages ?? 0), errorName: v.refuse };
}

// ---------------------------------------------------------------------------
// Bookkeeping, reported at the end

const strict = RECORDS.filter((r) => r.lenient === null && !r.harnessOnly);
const lenient = RECORDS.filter((r) => r.lenient !== null);
const harnessOnly = RECORDS.filter((r) => r.harnessOnly);
const diffById = new Map(DIFFERENCES.map((d) => [d.id, d]));
const tally = { asIs: new Set<string>(), differences: new Set<string>(), hostInserted: new Set<string>(), lenientRefused: new Set<string>() };

function differenceFor(id: string, label: Input['label']): Difference | undefined {
  const d = diffById.get(id);
  return d && (d.input === 'both' || d.input === label) ? d : undefined;
}

// ---------------------------------------------------------------------------
// Tests

describe('llhttp request corpus: strict records', () => {
  for (const rec of strict) {
    it(rec.id, () => {
      const inputs = inputsOf(rec);
      for (const input of inputs) {
        const diff = differenceFor(rec.id, input.label);
        const exp: Expectation = diff
          ? {
              kind: 'refuse',
              messages: rec.expect.messages.slice(0, diff.ours.messages ?? 0).map((m, i) => toMsg(m, input.injected[i] === true)),
              status: diff.ours.status,
              errorName: diff.ours.errorName,
            }
          : llhttpExpectation(rec, input, input.label === 'withHost' || inputs.length === 1);
        for (const run of RUNS) {
          assertProbe(probe(input.buf, run.splitEvery, run.scalar), exp, `${input.label}, ${run.name}`);
        }
      }
      if (diffById.has(rec.id)) tally.differences.add(rec.id);
      else tally.asIs.add(rec.id);
      if (inputs.length > 1) tally.hostInserted.add(rec.id);
    });
  }
});

describe('llhttp request corpus: lenient-mode records are refused', () => {
  for (const rec of lenient) {
    it(`${rec.id} [${rec.lenient!.join(', ')}]`, () => {
      expect(LENIENT[rec.id], 'every lenient record needs a verdict in LENIENT').toBeDefined();
      const inputs = inputsOf(rec);
      const effective = inputs[inputs.length - 1];
      for (const run of RUNS) {
        assertProbe(probe(effective.buf, run.splitEvery, run.scalar), lenientExpectation(rec, effective), `${effective.label}, ${run.name}`);
        if (effective.label === 'withHost') {
          // As sent (no Host), it is not accepted either.
          const r = probe(inputs[0].buf, run.splitEvery, run.scalar);
          expect(r.error || r.rest > 0, `raw, ${run.name}`).toBe(true);
        }
      }
      tally.lenientRefused.add(rec.id);
    });
  }
});

describe('llhttp request corpus: bookkeeping', () => {
  it('covers every record and keeps the tables honest', () => {
    const ids = new Set(RECORDS.map((r) => r.id));
    expect(RECORDS.length).toBe(166);
    expect(strict.length).toBe(136);
    expect(lenient.length).toBe(29);
    expect(harnessOnly.map((r) => r.id)).toEqual(['content-length/content-length-reset-when-no-body-is-received']);

    // every listed difference exists, is strict, and is a record llhttp accepts
    for (const d of DIFFERENCES) {
      const rec = RECORDS.find((r) => r.id === d.id);
      expect(rec, d.id).toBeDefined();
      expect(rec!.lenient, d.id).toBeNull();
      expect(rec!.expect.ok, `${d.id}: llhttp must accept it for it to be a difference`).toBe(true);
      if (d.input !== 'raw') expect(withHost(rec!), `${d.id}: has no withHost input`).not.toBeNull();
      expect([NO_HOST, NON_HTTP, HTTP09, H2_PREFACE, UNKNOWN_CODING]).toContain(d.reason);
    }
    expect(new Set(DIFFERENCES.map((d) => d.id)).size).toBe(DIFFERENCES.length);

    // OUR_ERROR covers exactly the strict records llhttp refuses (other than
    // the data-after-close ones, which map to the loop stopping)
    const strictErrors = strict.filter((r) => !r.expect.ok && r.expect.errorName !== 'HPE_CLOSED_CONNECTION').map((r) => r.id).sort();
    expect(Object.keys(OUR_ERROR).sort()).toEqual(strictErrors);

    // LENIENT covers exactly the lenient records
    expect(Object.keys(LENIENT).sort()).toEqual(lenient.map((r) => r.id).sort());
    for (const id of [...Object.keys(OUR_ERROR), ...Object.keys(LENIENT)]) expect(ids.has(id), id).toBe(true);
  });
});

describe('methods: the registered set Node accepts', () => {
  it('accepts every method in http.METHODS and refuses others with 501', () => {
    for (const m of METHODS) {
      const target = m === 'CONNECT' ? 'example.test:443' : m === 'OPTIONS' ? '*' : '/x';
      const r = addon.probeRequests(Buffer.from(`${m} ${target} HTTP/1.1\r\nHost: example.test\r\n\r\n`, 'latin1'));
      expect(r.error, m).toBe(false);
      expect(r.messages.map((x) => x.method), m).toEqual([m]);
    }
    for (const m of ['ANNOUNCE', 'DESCRIBE', 'SETUP', 'PLAY', 'PAUSE', 'TEARDOWN', 'GET_PARAMETER', 'SET_PARAMETER', 'RECORD', 'REDIRECT', 'FLUSH', 'PRI', 'get', 'FOO']) {
      const r = addon.probeRequests(Buffer.from(`${m} /x HTTP/1.1\r\nHost: example.test\r\n\r\n`, 'latin1'));
      expect([r.error, r.status, r.errorName], m).toEqual([true, 501, 'UnknownMethod']);
    }
    const r = addon.probeRequests(Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'));
    expect([r.error, r.status, r.errorName]).toEqual([true, 505, 'UnsupportedVersion']);
  });
});

afterAll(() => {
  const lines = [
    `llhttp corpus: ${RECORDS.length} records; ${strict.length} strict (+${harnessOnly.length} harness-only, not run), ${lenient.length} lenient`,
    `  strict matching llhttp as-is: ${tally.asIs.size}`,
    `  strict listed differences:    ${tally.differences.size} (${DIFFERENCES.filter((d) => d.reason === NO_HOST).length} no Host, ` +
      `${DIFFERENCES.filter((d) => d.reason === NON_HTTP).length} RTSP/ICE, ${DIFFERENCES.filter((d) => d.reason === HTTP09).length} HTTP/0.9, ` +
      `${DIFFERENCES.filter((d) => d.reason === H2_PREFACE).length} PRI, ${DIFFERENCES.filter((d) => d.reason === UNKNOWN_CODING).length} unknown coding before chunked)`,
    `  strict also run with Host inserted: ${tally.hostInserted.size}`,
    `  lenient records refused: ${tally.lenientRefused.size}`,
  ];
  console.log(lines.join('\n'));
});
