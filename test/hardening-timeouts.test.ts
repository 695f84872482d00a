// Timeouts with real slow clients: the header deadline (not reset by each
// byte), the body read (idle) timeout, the keep-alive timeout, the write
// timeout (a client that stops reading), handlerTimeout (503 when the app
// does not start its response in time), and the maxWriteBuffer hard cap on
// an app that ignores backpressure.
import net from 'node:net';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { EngineOptions, FeersumRequest, Writer } from '../lib/index';
import { openFdCount, parseResponses, rawClient, sleep, startServer, type TestServer, waitFor } from './helpers';

let baselineFds = 0;
const servers: TestServer[] = [];

beforeAll(() => {
  baselineFds = openFdCount();
});

afterAll(async () => {
  for (const s of servers.splice(0)) await s.close();
});

async function serve(handler: (req: FeersumRequest) => unknown, options: EngineOptions) {
  const errors: unknown[] = [];
  const server = await startServer(handler, options);
  server.engine.onError((err) => errors.push(err));
  servers.push(server);
  return { server, errors };
}

const ok = (req: FeersumRequest) => {
  if (req.bodyBuffered) {
    req.sendResponse(200, [], `ok ${req.body?.length ?? 0}`);
    return;
  }
  let n = 0;
  req.input.on('data', (d: Buffer) => (n += d.length));
  req.input.on('error', () => {});
  req.input.on('end', () => req.sendResponse(200, [], `ok ${n}`));
};

// ---------------------------------------------------------------- header timeout

describe('headerTimeout (1 s)', () => {
  let port = 0;
  let seen = 0;
  beforeAll(async () => {
    const { server } = await serve((req) => {
      seen++;
      ok(req);
    }, { headerTimeout: 1, keepaliveTimeout: 10 });
    port = server.port;
  });

  it('a slow-trickle head (a byte every 50 ms) gets 408 at the deadline: the deadline is not reset per byte', async () => {
    const before = seen;
    const c = rawClient(port);
    await c.connected;
    const head = 'GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ' + 'a'.repeat(200) + '\r\n\r\n';
    const t0 = Date.now();
    let i = 0;
    const trickle = setInterval(() => c.send(head[i++] ?? ''), 50); // 4 s to send it all
    try {
      const [r] = await c.responses(1, 4000);
      const elapsed = Date.now() - t0;
      expect(r.status).toBe(408);
      expect(r.headers.connection).toBe('close');
      expect(elapsed).toBeGreaterThanOrEqual(900);
      expect(elapsed).toBeLessThan(2000);
      expect(i).toBeLessThan(head.length); // the head was still incomplete
      await c.waitClosed();
    } finally {
      clearInterval(trickle);
      c.sock.destroy();
    }
    expect(seen).toBe(before);
  });

  it('a connection that sends nothing is closed silently at the deadline', async () => {
    const c = rawClient(port);
    await c.connected;
    await c.waitClosed(4000);
    expect(c.data.length).toBe(0);
    const elapsed = c.closedAt - c.connectedAt;
    expect(elapsed).toBeGreaterThanOrEqual(900);
    expect(elapsed).toBeLessThan(2500);
  });

  it('a head that arrives in pieces within the deadline is served', async () => {
    const c = rawClient(port);
    await c.connected;
    for (const piece of ['GET /pie', 'ces HTTP/1.1\r\n', 'Host: x\r\n', '\r\n']) {
      c.send(piece);
      await sleep(150);
    }
    const [r] = await c.responses(1);
    expect(r.status).toBe(200);
    c.sock.destroy();
  });

  it('on a keep-alive connection, the next head has its own deadline from its first byte', async () => {
    const c = rawClient(port);
    await c.connected;
    c.send('GET /1 HTTP/1.1\r\nHost: x\r\n\r\n');
    await c.responses(1);
    await sleep(1500); // idle longer than headerTimeout: only the keep-alive timeout (10 s) applies
    expect(c.closed).toBe(false);
    const t0 = Date.now();
    c.send('GET /2 HTTP/1.1\r\nHo');
    const rs = await c.responses(2, 4000);
    expect(rs[1].status).toBe(408);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(Date.now() - t0).toBeLessThan(2500);
    await c.waitClosed();
  });
});

// ---------------------------------------------------------------- read (body) timeout

describe('readTimeout (1 s)', () => {
  let port = 0;
  let seen = 0;
  const bodyErrors: string[] = [];
  beforeAll(async () => {
    const { server } = await serve(
      (req) => {
        seen++;
        if (req.uri === '/stream') {
          req.input.on('data', () => {});
          req.input.on('error', (e: Error) => bodyErrors.push(e.message));
          req.input.on('end', () => req.sendResponse(200, [], 'done'));
          return;
        }
        ok(req);
      },
      { readTimeout: 1, headerTimeout: 5 },
    );
    port = server.port;
  });

  it('a body that stalls is dropped after readTimeout; the app never saw the (buffered) request', async () => {
    const before = seen;
    const c = rawClient(port);
    await c.connected;
    const t0 = Date.now();
    c.send('POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789');
    await c.waitClosed(4000);
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(900);
    expect(elapsed).toBeLessThan(2500);
    expect(seen).toBe(before);
  });

  it('a body that trickles in (a byte every 300 ms) is not cut: the timeout is idle time, not a deadline', async () => {
    const c = rawClient(port);
    await c.connected;
    c.send('POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n');
    for (let i = 0; i < 8; i++) {
      await sleep(300);
      c.send('x');
    }
    const [r] = await c.responses(1);
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('ok 8');
    c.sock.destroy();
  });

  it('a streamed body that stalls is dropped and the app’s body stream errors', async () => {
    const { server } = await serve(
      (req) => {
        req.input.on('data', () => {});
        req.input.on('error', (e: Error) => bodyErrors.push(e.message));
        req.input.on('end', () => req.sendResponse(200, [], 'done'));
      },
      { readTimeout: 1, bodyBufferSize: 0 },
    );
    const before = bodyErrors.length;
    const c = rawClient(server.port);
    await c.connected;
    c.send('POST /stream HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
    await c.waitClosed(4000);
    await waitFor(() => bodyErrors.length === before + 1, 2000, 'body stream error');
  });
});

// ---------------------------------------------------------------- keep-alive timeout

describe('keepaliveTimeout (1 s)', () => {
  let port = 0;
  beforeAll(async () => {
    const { server } = await serve(ok, { keepaliveTimeout: 1, headerTimeout: 5 });
    port = server.port;
  });

  it('an idle keep-alive connection is closed after keepaliveTimeout', async () => {
    const c = rawClient(port);
    await c.connected;
    c.send('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await c.responses(1);
    const t0 = Date.now();
    await c.waitClosed(4000);
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(800);
    expect(elapsed).toBeLessThan(2500);
    expect(parseResponses(c.data)).toHaveLength(1);
  });

  it('each request restarts the idle timer', async () => {
    const c = rawClient(port);
    await c.connected;
    for (let i = 1; i <= 4; i++) {
      c.send(`GET /${i} HTTP/1.1\r\nHost: x\r\n\r\n`);
      await c.responses(i);
      await sleep(600);
    }
    expect(c.closed).toBe(false); // 2.4 s in all, never 1 s idle
    await c.waitClosed(3000);
  });
});

// ---------------------------------------------------------------- write timeout

describe('writeTimeout (1 s)', () => {
  it('a client that never reads a large streamed response is dropped; responseGuard fires', async () => {
    let guardAt = 0;
    let guards = 0;
    let written = 0;
    let startedAt = 0;
    const { server } = await serve(
      (req) => {
        const w = req.startStreaming(200, ['Content-Type', 'application/octet-stream']);
        startedAt = Date.now();
        w.responseGuard(() => {
          guards++;
          guardAt = Date.now();
        });
        const chunk = Buffer.alloc(256 * 1024, 0x61);
        w.pollCb((writer: Writer) => {
          if (written >= 1024 * 1024 * 1024) return writer.close();
          writer.write(chunk);
          written += chunk.length;
        });
      },
      { writeTimeout: 1 },
    );
    const c = rawClient(server.port, { paused: true });
    await c.connected;
    c.send('GET /big HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor(() => guards > 0, 10000, 'responseGuard after the write timeout');
    // Dropped once writes stopped making progress, not after the whole GiB.
    expect(written).toBeLessThan(256 * 1024 * 1024);
    expect(guardAt - startedAt).toBeGreaterThanOrEqual(900);
    await waitFor(() => server.engine.stats().connections === 0, 3000, 'connection closed');
    await sleep(100);
    expect(guards).toBe(1);
    c.sock.destroy();
  });

  it('a slow but steady reader (2 MiB bursts, 500 ms apart) is not dropped', async () => {
    let guards = 0;
    const total = 32 * 1024 * 1024;
    const { server } = await serve(
      (req) => {
        const w = req.startStreaming(200, ['Content-Length', String(total)]);
        w.responseGuard(() => guards++);
        let sent = 0;
        const chunk = Buffer.alloc(64 * 1024, 0x62);
        w.pollCb((writer: Writer) => {
          if (sent >= total) return writer.close();
          writer.write(chunk);
          sent += chunk.length;
        });
      },
      { writeTimeout: 1 },
    );
    // Count bytes only (the server shares this event loop: no big copies here).
    const sock = net.connect(server.port, '127.0.0.1');
    sock.pause();
    let head = '';
    let received = 0;
    let closed = false;
    sock.on('data', (d: Buffer) => {
      if (received < 4096) head += d.subarray(0, 4096).toString('latin1');
      received += d.length;
    });
    sock.on('close', () => (closed = true));
    sock.on('error', () => {});
    await new Promise((r) => sock.on('connect', r));
    sock.write('GET /steady HTTP/1.1\r\nHost: x\r\n\r\n');
    const headLen = () => head.indexOf('\r\n\r\n') + 4;
    const done = () => headLen() > 3 && received - headLen() >= total;
    // Each burst reads up to 2 MiB, then the client stops reading for 500 ms:
    // progress every ~0.5 s, under the 1 s timeout, while the server's
    // writes stall between bursts once the socket buffers are full.
    const deadline = Date.now() + 25000;
    let bursts = 0;
    while (Date.now() < deadline && !done() && !closed) {
      const target = received + 2 * 1024 * 1024;
      sock.resume();
      const t = Date.now();
      while (received < target && Date.now() - t < 200 && !done()) await sleep(2);
      sock.pause();
      bursts++;
      if (!done()) await sleep(500);
    }
    expect(head.startsWith('HTTP/1.1 200 ')).toBe(true);
    expect(received - headLen(), `after ${bursts} bursts, closed: ${closed}`).toBe(total);
    expect(bursts).toBeGreaterThan(3);
    expect(closed).toBe(false);
    await waitFor(() => guards === 1, 2000, 'responseGuard on completion');
    sock.destroy();
  });
});

describe('response completion (what the write timeout and guards rely on)', () => {
  it('a Content-Length stream closed after its bytes were flushed completes: guard runs, request released', async () => {
    let guards = 0;
    const { server } = await serve((req) => {
      const w = req.startStreaming(200, ['Content-Length', '5']);
      w.responseGuard(() => guards++);
      w.write('hello');
      setTimeout(() => w.close(), 50); // the 5 bytes are on the wire by now
    }, { keepaliveTimeout: 30 });
    const c = rawClient(server.port);
    await c.connected;
    c.send('GET /cl-late-close HTTP/1.1\r\nHost: x\r\n\r\n');
    const [r] = await c.responses(1);
    expect(r.body.toString()).toBe('hello');
    await waitFor(() => guards === 1, 2000, 'responseGuard after close()');
    await waitFor(() => server.engine.stats().requests === 0, 2000, 'request released');
    expect(c.closed).toBe(false);
    c.sock.destroy();
  });
});

// ---------------------------------------------------------------- handler timeout

describe('handlerTimeout (1 s)', () => {
  const late: Array<() => void> = [];
  let port = 0;
  let errors: unknown[];
  const guards: string[] = [];
  beforeAll(async () => {
    const s = await serve(
      (req) => {
        if (req.uri === '/never') return;
        if (req.uri === '/late') {
          late.push(() => req.sendResponse(200, [], 'too late'));
          return;
        }
        if (req.uri === '/late-guarded') {
          req.responseGuard(() => guards.push(req.uri));
          late.push(() => req.sendResponse(200, [], 'too late'));
          return;
        }
        if (req.uri === '/late-stream') {
          late.push(() => {
            const w = req.startStreaming(200, []);
            w.write('too late');
            w.close();
          });
          return;
        }
        if (req.uri === '/slow-stream') {
          // Starts in time, finishes well after handlerTimeout.
          const w = req.startStreaming(200, ['Content-Type', 'text/plain']);
          let n = 0;
          const t = setInterval(() => {
            w.write(`tick ${n}\n`);
            if (++n === 6) {
              clearInterval(t);
              w.close();
            }
          }, 300);
          return;
        }
        if (req.uri === '/quick') {
          setTimeout(() => req.sendResponse(200, [], 'quick'), 300);
          return;
        }
        ok(req);
      },
      { handlerTimeout: 1, keepaliveTimeout: 10 },
    );
    port = s.server.port;
    errors = s.errors;
  });

  it('an app that never answers: the client gets 503 and a close after handlerTimeout', async () => {
    const c = rawClient(port);
    await c.connected;
    const t0 = Date.now();
    c.send('GET /never HTTP/1.1\r\nHost: x\r\n\r\n');
    const [r] = await c.responses(1, 4000);
    expect(r.status).toBe(503);
    expect(r.headers.connection).toBe('close');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(Date.now() - t0).toBeLessThan(2500);
    await c.waitClosed();
  });

  it('a late sendResponse is silently ignored (no throw, nothing on the wire, no crash)', async () => {
    for (const uri of ['/late', '/late-guarded', '/late-stream']) {
      const c = rawClient(port);
      await c.connected;
      c.send(`GET ${uri} HTTP/1.1\r\nHost: x\r\n\r\n`);
      const [r] = await c.responses(1, 4000);
      expect(r.status).toBe(503);
      await c.waitClosed();
      const respondLate = late.shift()!;
      expect(respondLate).not.toThrow();
      await sleep(50);
      expect(c.data.toString('latin1')).not.toContain('too late');
    }
    expect(guards).toEqual(['/late-guarded']);
    expect(errors).toEqual([]);
  });

  it('a response started in time is not cut by handlerTimeout, however long it streams', async () => {
    const c = rawClient(port);
    await c.connected;
    c.send('GET /slow-stream HTTP/1.1\r\nHost: x\r\n\r\n');
    const [r] = await c.responses(1, 5000);
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe([0, 1, 2, 3, 4, 5].map((n) => `tick ${n}\n`).join(''));
    expect(c.closed).toBe(false);
    c.sock.destroy();
  });

  it('a response within the limit is untouched, and the connection stays usable', async () => {
    const c = rawClient(port);
    await c.connected;
    c.send('GET /quick HTTP/1.1\r\nHost: x\r\n\r\nGET /quick HTTP/1.1\r\nHost: x\r\n\r\n');
    const rs = await c.responses(2, 4000);
    expect(rs.map((r) => r.status)).toEqual([200, 200]);
    await sleep(1200);
    expect(parseResponses(c.data).filter((r) => r.status === 503)).toEqual([]);
    expect(c.closed).toBe(false);
    c.sock.destroy();
  });
});

// ---------------------------------------------------------------- maxWriteBuffer

describe('maxWriteBuffer (1 MiB)', () => {
  it('an app writing in a loop, ignoring backpressure, to a client that does not read is dropped and reported', async () => {
    let guards = 0;
    let attempted = 0;
    let falseReturns = 0;
    let peakRss = 0;
    let stop = false;
    const { server, errors } = await serve(
      (req) => {
        const w = req.startStreaming(200, ['Content-Type', 'application/octet-stream']);
        w.responseGuard(() => {
          guards++;
          stop = true;
        });
        // Up to 256 MiB in fresh 64 KiB buffers, 32 per turn, never looking at write()'s result.
        const pump = () => {
          for (let i = 0; i < 32 && !stop; i++) {
            if (attempted >= 256 * 1024 * 1024) return;
            if (!w.write(Buffer.alloc(64 * 1024, attempted & 0xff))) falseReturns++;
            attempted += 64 * 1024;
          }
          peakRss = Math.max(peakRss, process.memoryUsage().rss);
          if (!stop) setImmediate(pump);
        };
        pump();
      },
      { maxWriteBuffer: 1024 * 1024, writeTimeout: 30 },
    );
    const rssBefore = process.memoryUsage().rss;
    peakRss = rssBefore;
    const c = rawClient(server.port, { paused: true });
    await c.connected;
    c.send('GET /flood HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor(() => stop || attempted >= 256 * 1024 * 1024, 20000, 'the flood to stop');
    await waitFor(() => server.engine.stats().connections === 0, 5000, 'connection dropped');
    expect(guards).toBe(1);
    expect(errors.length).toBeGreaterThanOrEqual(1); // reported through onError
    expect(falseReturns).toBeGreaterThan(0);
    // Dropped long before the 256 MiB the app tried to queue.
    expect(attempted).toBeLessThan(64 * 1024 * 1024);
    expect(peakRss - rssBefore).toBeLessThan(64 * 1024 * 1024);
    // The client sees the connection end (after what the kernel buffered).
    c.sock.resume();
    await c.waitClosed(5000);
  });
});

// ---------------------------------------------------------------- afterwards

describe('afterwards', () => {
  it('still answers a normal request', async () => {
    const { server } = await serve(ok, {});
    const c = rawClient(server.port);
    await c.connected;
    c.send('GET /alive HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const [r] = await c.responses(1);
    expect(r.status).toBe(200);
    await c.waitClosed();
  });

  it('descriptors are back to baseline once the servers are closed', async () => {
    for (const s of servers.splice(0)) await s.close();
    await waitFor(() => openFdCount() <= baselineFds, 5000, `fds back to baseline (${openFdCount()} vs ${baselineFds})`);
  });
});
