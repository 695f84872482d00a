/**
 * Request-parser conformance against llhttp's own request tests.
 *
 * Each input of the llhttp corpus (see test/conformance-cases.ts, which also
 * holds how llhttp's verdicts map onto the server's request loop, the
 * Host insertion, and the tables of deliberate differences) is run through
 * the addon's `probeRequests`, which drives our parser and chunked decoder
 * with the connection's request loop (parse head, read body, stop after a
 * non-keep-alive or upgrade request), fed whole and in pieces of 1, 2 and 7
 * bytes, with the best scanners and with the scalar ones forced.
 *
 * The test fails if we stop refusing any listed difference, and if a record
 * differs that is not listed. Lenient-mode records (llhttp with a leniency
 * flag on): LENIENT asserts that we refuse every one of them (or stop
 * reading, for the keep-alive leniency), with the reason.
 *
 * test/conformance-socket.test.ts runs the same strict records over TCP
 * against a running engine.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { METHODS } from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';

import {
  DIFFERENCES,
  ERROR_STATUS,
  type Expectation,
  H2_PREFACE,
  HTTP09,
  harnessOnly,
  inputsOf,
  LENIENT,
  lenient,
  lenientExpectation,
  expectationFor,
  NO_HOST,
  NON_HTTP,
  OUR_ERROR,
  RECORDS,
  ROOT,
  diffById,
  strict,
  UNKNOWN_CODING,
  withHost,
} from './conformance-cases';

// ---------------------------------------------------------------------------
// Addon

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
      expect(r.status, `${summary}: ERROR_STATUS[${r.errorName}]`).toBe(ERROR_STATUS[r.errorName]);
      break;
  }
}

// ---------------------------------------------------------------------------
// Bookkeeping, reported at the end

const tally = { asIs: new Set<string>(), differences: new Set<string>(), hostInserted: new Set<string>(), lenientRefused: new Set<string>() };

// ---------------------------------------------------------------------------
// Tests

describe('llhttp request corpus: strict records', () => {
  for (const rec of strict) {
    it(rec.id, () => {
      const inputs = inputsOf(rec);
      for (const input of inputs) {
        const exp = expectationFor(rec, input, inputs);
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
