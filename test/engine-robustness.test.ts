// Bad input and bad clients: malformed requests get a clear status and a
// close, slow clients hit the header/read timeouts, abrupt disconnects at
// every stage release their descriptors, and the server keeps serving.
import net from 'node:net';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { FeersumRequest } from '../lib/index';
import { openFdCount, parseResponses, rawExchange, sleep, startServer, type TestServer, waitFor } from './helpers';

let server: TestServer;
let baselineFds = 0;
const seen: string[] = [];

function handler(req: FeersumRequest): void {
  seen.push(req.uri);
  if (req.uri === '/hold') return; // never answers
  if (req.uri === '/later') {
    setTimeout(() => req.sendResponse(200, [], 'later'), 100);
    return;
  }
  if (req.hasBody && !req.bodyBuffered) {
    req.input.resume();
    req.input.on('end', () => req.sendResponse(200, [], 'got body'));
    return;
  }
  req.sendResponse(200, [], 'ok');
}

beforeAll(async () => {
  baselineFds = openFdCount();
  server = await startServer(handler, { headerTimeout: 0.5, readTimeout: 0.5, maxHeaderSize: 4096, maxHeaderCount: 20 });
});

afterAll(async () => {
  await server.close();
});

async function stillServes(): Promise<void> {
  const { data } = await rawExchange(server.port, 'GET /alive HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  expect(parseResponses(data)[0]?.body.toString()).toBe('ok');
}

const malformed: Array<[string, string, number]> = [
  ['garbage', 'HELLO\r\n\r\n', 400],
  ['lowercase method (a token, but no registered method)', 'get / HTTP/1.1\r\nHost: x\r\n\r\n', 501],
  ['unknown method', 'FOO / HTTP/1.1\r\nHost: x\r\n\r\n', 501],
  ['no Host on 1.1', 'GET / HTTP/1.1\r\n\r\n', 400],
  ['two Hosts', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 400],
  ['bad Host', 'GET / HTTP/1.1\r\nHost: a b\r\n\r\n', 400],
  ['space before colon', 'GET / HTTP/1.1\r\nHost : x\r\n\r\n', 400],
  ['obs-fold', 'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n', 400],
  ['bare LF', 'GET / HTTP/1.1\nHost: x\n\n', 400],
  ['NUL in value', 'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n', 400],
  ['CL and TE', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
  ['TE on HTTP/1.0', 'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
  ['unknown coding', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', 501],
  ['chunked not last', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n', 400],
  ['signed CL', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello', 400],
  ['hex CL', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\nhello', 400],
  ['differing CLs', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!', 400],
  ['bad Expect', 'GET / HTTP/1.1\r\nHost: x\r\nExpect: something\r\n\r\n', 417],
  ['HTTP/2.0', 'GET / HTTP/2.0\r\nHost: x\r\n\r\n', 505],
  ['HTTP/0.9', 'GET /\r\n\r\n', 400],
  ['chunk size overflow', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\n', 400],
  ['header too large', `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(5000)}\r\n\r\n`, 431],
  ['request line too long', `GET /${'a'.repeat(5000)} HTTP/1.1\r\nHost: x\r\n\r\n`, 414],
  ['too many headers', 'GET / HTTP/1.1\r\nHost: x\r\n' + 'X-A: 1\r\n'.repeat(25) + '\r\n', 400],
];

describe('malformed requests', () => {
  for (const [name, raw, status] of malformed) {
    it(`${name}: ${status} and close`, async () => {
      const before = seen.length;
      const { data, closed } = await rawExchange(server.port, raw);
      const [r] = parseResponses(data);
      expect(r?.status).toBe(status);
      expect(r.headers.connection).toBe('close');
      expect(closed).toBe(true);
      expect(seen.length).toBe(before); // the application never saw it
    });
  }

  it('answers earlier pipelined requests before refusing a bad one', async () => {
    const { data, closed } = await rawExchange(
      server.port,
      'GET /later HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n\r\n',
    );
    expect(parseResponses(data).map((r) => r.status)).toEqual([200, 400]);
    expect(closed).toBe(true);
  });

  it('survives the error responses and keeps serving', stillServes);
});

describe('slow clients', () => {
  it('answers an unfinished head with 408 after headerTimeout, even while bytes trickle in', async () => {
    const t0 = Date.now();
    const { data, closed } = await rawExchange(
      server.port,
      ['GET / HTTP/1.1\r\n', 'Host: x\r\n', 'X-1: a\r\n', 'X-2: b\r\n', 'X-3: c\r\n', 'X-4: d\r\n', 'X-5: e\r\n'],
      { gapMs: 150, timeout: 3000 },
    );
    expect(parseResponses(data)[0]?.status).toBe(408);
    expect(closed).toBe(true);
    expect(Date.now() - t0).toBeLessThan(1500);
  });

  it('closes a connection that sends nothing after headerTimeout', async () => {
    const t0 = Date.now();
    const { data, closed } = await rawExchange(server.port, [], { timeout: 3000 });
    expect(data.length).toBe(0);
    expect(closed).toBe(true);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(400);
  });

  it('drops a client whose body stalls longer than readTimeout and aborts the body', async () => {
    const { closed } = await rawExchange(
      server.port,
      'POST /slowbody HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n' + 'x'.repeat(100000),
      { timeout: 3000 },
    );
    expect(closed).toBe(true);
  });

  it('survives the slow clients and keeps serving', stillServes);
});

describe('abrupt disconnects', () => {
  async function abort(raw: string, waitMs = 30): Promise<void> {
    const sock = net.connect(server.port, '127.0.0.1');
    await new Promise<void>((r) => sock.on('connect', () => r()));
    if (raw) sock.write(raw);
    await sleep(waitMs);
    sock.destroy();
  }

  it('releases every connection cut at any stage; descriptors return to baseline', async () => {
    for (let i = 0; i < 20; i++) {
      await abort('');
      await abort('GET / HTTP/1.1\r\nHo');
      await abort('GET /hold HTTP/1.1\r\nHost: x\r\n\r\n');
      await abort('GET /later HTTP/1.1\r\nHost: x\r\n\r\n', 5);
      await abort('POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n' + 'x'.repeat(200000));
      await abort('POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc');
    }
    await sleep(200); // /later responses land on closed connections
    await waitFor(() => server.engine.stats().connections === 0, 3000, 'all connections closed');
    await waitFor(() => server.engine.stats().requests === 0, 3000, 'all requests released');
    // The listener is the only descriptor the server added.
    await waitFor(() => openFdCount() <= baselineFds + 1, 3000, `fds back to baseline (${openFdCount()} vs ${baselineFds})`);
  });

  it('keeps serving after the disconnects', stillServes);
});
