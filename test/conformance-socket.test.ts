/**
 * llhttp request-corpus conformance over a real socket.
 *
 * test/conformance-parser.test.ts checks the parser alone (probeRequests);
 * this runs the same inputs against a running engine. Every input (each
 * strict record as sent, and with Host inserted where it lacks one; for the
 * lenient-mode records, the input the parser test judges) is written on its
 * own connection, without a half-close (a FIN while a response is pending
 * makes the server abort, as nginx does), and the client reads until the
 * server closes or nothing more arrives for a short while. The application
 * records each request it gets (method, uri, req.headers, the body) and
 * answers 200 at once. The expectation is the parser test's, from
 * test/conformance-cases.ts (llhttp's verdict, or our listed difference):
 *
 *   accept   the app saw exactly llhttp's completed messages (method, url,
 *            headers with OWS trimmed, body), one 200 for each; the connection
 *            is still open unless the last message was not keep-alive (with an
 *            incomplete message at the end, the app saw only the completed ones)
 *   stop     (CONNECT / Upgrade) the app saw the upgrade request and what
 *            llhttp completed before it, each answered 200. The server stops
 *            parsing after such a request until its response; we answer it
 *            normally, so the connection goes on as HTTP and the bytes llhttp
 *            left to the new protocol are parsed as requests (in the corpus
 *            they are refused with 400, or, after the HTTP/1.0 CONNECT
 *            records, which are not keep-alive, never read): only the
 *            messages llhttp completed are compared
 *   close    (data after a non-keep-alive message) the app saw the messages
 *            up to it, one 200 each, and nothing after; the connection closed
 *   refuse   the app saw the messages llhttp completed before the error, one
 *            200 each; then one error response (4xx/5xx, the status pinned by
 *            the difference or OUR_ERROR where there is one) with
 *            Connection: close, and the connection closed
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { FeersumRequest } from '../lib/index';
import {
  type Expectation,
  expectationFor,
  type Input,
  inputsOf,
  lenient,
  lenientExpectation,
  type LlRecord,
  type Msg,
  refusalStatus,
  strict,
} from './conformance-cases';
import { openFdCount, parseResponses, rawExchange, startServer, type TestServer, waitFor, wholeBodyHandler } from './helpers';

// ------------------------------------------------------------------ server

interface Seen {
  method: string;
  uri: string;
  headers: [string, string][];
  body: Buffer;
}

let server: TestServer;
let baselineFds = 0;
/** What the application saw, by the client's port (one connection per input). */
const seenByPort = new Map<number, Seen[]>();

function record(req: FeersumRequest, body: Buffer): void {
  const flat = req.headers;
  const headers: [string, string][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) headers.push([flat[i], flat[i + 1]]);
  const list = seenByPort.get(req.remotePort) ?? [];
  list.push({ method: req.method, uri: req.uri, headers, body });
  seenByPort.set(req.remotePort, list);
}

const handler = wholeBodyHandler(record);

// ------------------------------------------------------------------ the inputs

interface Case {
  rec: LlRecord;
  input: Input;
  exp: Expectation;
  where: string;
}

interface Outcome {
  seen: Seen[];
  statuses: number[];
  lastConnection: string | undefined;
  closed: boolean;
  wire: string;
}

const cases: Case[] = [];
for (const rec of strict) {
  const inputs = inputsOf(rec);
  for (const input of inputs) cases.push({ rec, input, exp: expectationFor(rec, input, inputs), where: `${rec.id} (${input.label})` });
}
for (const rec of lenient) {
  const inputs = inputsOf(rec);
  const effective = inputs[inputs.length - 1];
  cases.push({ rec, input: effective, exp: lenientExpectation(rec, effective), where: `${rec.id} (${effective.label}, lenient)` });
}

/** True when the server is expected to close the connection by itself. */
function expectsClose(exp: Expectation): boolean {
  if (exp.kind === 'refuse' || exp.kind === 'close') return true;
  return exp.kind === 'accept' && exp.messages.length > 0 && !exp.messages[exp.messages.length - 1].keepAlive;
}

const outcomes = new Map<Case, Outcome>();

async function run(c: Case): Promise<void> {
  // Where the server must close, wait for it (up to the timeout); else stop
  // once nothing has arrived for a while.
  const closes = expectsClose(c.exp);
  const res = await rawExchange(server.port, c.input.buf, { timeout: closes ? 6000 : 4000, idleMs: closes ? 3000 : 1000 });
  await new Promise((r) => setTimeout(r, 20)); // a late request would be recorded by now
  const seen = seenByPort.get(res.localPort) ?? [];
  seenByPort.delete(res.localPort);
  const headRequests = c.exp.messages.flatMap((m, i) => (m.method === 'HEAD' ? [i] : []));
  const finals = parseResponses(res.data, { headRequests }).filter((r) => r.status >= 200);
  outcomes.set(c, {
    seen,
    statuses: finals.map((r) => r.status),
    lastConnection: finals.at(-1)?.headers.connection,
    closed: res.closed,
    wire: res.data.toString('latin1'),
  });
}

async function runAll(list: Case[], concurrency: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < list.length) await run(list[next++]);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

beforeAll(async () => {
  baselineFds = openFdCount();
  server = await startServer(handler, { bodyBufferSize: 1 << 20 });
  await runAll(cases, 16);
}, 120_000);

afterAll(async () => {
  await server?.close();
});

// ------------------------------------------------------------------ checks

function assertSeen(seen: Seen[], expected: Msg[], where: string): void {
  expected.forEach((m, i) => {
    const got = seen[i];
    const ctx = `${where}, message ${i}`;
    expect(got, `${ctx}: the app did not see it`).toBeDefined();
    expect(got.method, ctx).toBe(m.method);
    expect(got.uri, ctx).toBe(m.url);
    expect(got.headers, ctx).toEqual(m.headers);
    expect(got.body.equals(m.body), `${ctx}: body ${JSON.stringify(got.body.toString('latin1'))} vs ${JSON.stringify(m.body.toString('latin1'))}`).toBe(true);
  });
}

const tally = { inputs: 0, accept: 0, incomplete: 0, stop: 0, close: 0, refuse: 0 };

function check(c: Case): void {
  const o = outcomes.get(c);
  expect(o, `${c.where}: not run`).toBeDefined();
  const { seen, statuses, closed, wire } = o!;
  const exp = c.exp;
  const n = exp.messages.length;
  const where = `${c.where} [${exp.kind}] got ${JSON.stringify({ seen: seen.length, statuses, closed })} wire ${JSON.stringify(wire.slice(0, 300))}`;
  const ok200 = Array.from({ length: n }, () => 200);

  if (exp.kind === 'stop') {
    expect(seen.length, where).toBeGreaterThanOrEqual(n);
    assertSeen(seen.slice(0, n), exp.messages, where);
    expect(statuses.slice(0, n), where).toEqual(ok200);
    tally.stop++;
  } else {
    expect(seen.length, where).toBe(n);
    assertSeen(seen, exp.messages, where);
    switch (exp.kind) {
      case 'accept':
        expect(statuses, where).toEqual(ok200);
        expect(closed, where).toBe(expectsClose(exp));
        if (exp.incomplete) tally.incomplete++;
        else tally.accept++;
        break;
      case 'close':
        expect(statuses, where).toEqual(ok200);
        expect(closed, where).toBe(true);
        tally.close++;
        break;
      case 'refuse': {
        expect(statuses.slice(0, n), where).toEqual(ok200);
        expect(statuses.length, where).toBe(n + 1);
        const last = statuses[n];
        expect(last >= 400 && last <= 599, where).toBe(true);
        const pinned = refusalStatus(exp);
        if (pinned !== undefined) expect(last, where).toBe(pinned);
        expect(o!.lastConnection, where).toBe('close');
        expect(closed, where).toBe(true);
        tally.refuse++;
        break;
      }
    }
  }
  tally.inputs++;
}

describe('llhttp request corpus over a socket: strict records', () => {
  for (const rec of strict) {
    it(rec.id, () => {
      for (const c of cases.filter((x) => x.rec === rec)) check(c);
    });
  }
});

describe('llhttp request corpus over a socket: lenient-mode records are refused', () => {
  for (const rec of lenient) {
    it(`${rec.id} [${rec.lenient!.join(', ')}]`, () => {
      for (const c of cases.filter((x) => x.rec === rec)) check(c);
    });
  }
});

describe('after the corpus', () => {
  it('still answers a normal request', async () => {
    const res = await rawExchange(server.port, 'GET /alive HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { timeout: 3000 });
    expect(parseResponses(res.data).map((r) => r.status)).toEqual([200]);
    expect(res.closed).toBe(true);
  });

  it('released every connection: descriptors back to baseline', async () => {
    await waitFor(() => server.engine.stats().connections === 0, 5000, 'all connections closed');
    await waitFor(() => openFdCount() <= baselineFds + 1, 5000, `fds back to baseline (${openFdCount()} vs ${baselineFds})`);
  });
});

afterAll(() => {
  console.log(
    `llhttp corpus over a socket: ${cases.length} inputs (${strict.length} strict records, ${lenient.length} lenient); ` +
      `checked ${tally.inputs}: ${tally.accept} accepted, ${tally.incomplete} incomplete, ${tally.stop} upgrade/CONNECT, ` +
      `${tally.close} closed after a non-keep-alive message, ${tally.refuse} refused`,
  );
});
