// Public engine API not covered elsewhere, over real sockets: readTimeout() get/set,
// configure() after construction, the native accessors, and the engine's own Date header.
import fs from 'node:fs';

import { afterAll, describe, expect, it } from 'vitest';

import { Feersum, type EngineOptions, type FeersumRequest } from '../lib/index';
import { parseResponses, rawClient, rawExchange, sleep, startServer, type TestServer, waitFor } from './helpers';

const servers: TestServer[] = [];
afterAll(async () => {
  for (const s of servers.splice(0)) await s.close();
});

async function serve(handler: (req: FeersumRequest) => unknown, options?: EngineOptions): Promise<TestServer> {
  const s = await startServer(handler, options);
  servers.push(s);
  return s;
}

/** Answers 200 with the body length it got. */
const echoLength = (req: FeersumRequest) => req.sendResponse(200, ['Content-Type', 'text/plain'], `got ${req.body?.length ?? 0}`);

async function statusOf(port: number, request: string): Promise<number> {
  const { data } = await rawExchange(port, request, { idleMs: 300 });
  const [r] = parseResponses(data);
  if (!r) throw new Error(`no response: ${JSON.stringify(data.toString('latin1'))}`);
  return r.status;
}

// ---------------------------------------------------------------- readTimeout()

describe('engine.readTimeout()', () => {
  it('gets the constructor value (or the 60 s default), and sets a new one', () => {
    expect(new Feersum().readTimeout()).toBe(60);
    const e = new Feersum({ readTimeout: 7 });
    expect(e.readTimeout()).toBe(7);
    expect(e.readTimeout(0.5)).toBe(0.5);
    expect(e.readTimeout()).toBe(0.5);
    expect(e.options.readTimeout).toBe(0.5);
    expect(() => e.readTimeout(-1)).toThrow(RangeError);
    expect(e.readTimeout()).toBe(0.5); // a refused value changes nothing
  });

  it('a value set after construction governs a stalled body on the wire (closed, no response)', async () => {
    let seen = 0;
    const s = await serve((req) => {
      seen++;
      echoLength(req);
    }, { readTimeout: 30, headerTimeout: 30 });
    const stall = async () => {
      const c = rawClient(s.port);
      await c.connected;
      const t0 = Date.now();
      c.send('POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n123');
      await c.waitClosed(5000);
      return { elapsed: Date.now() - t0, bytes: c.data.length };
    };

    s.engine.readTimeout(0.5);
    const short = await stall();
    expect(short.elapsed).toBeGreaterThanOrEqual(400);
    expect(short.elapsed).toBeLessThan(1500);
    expect(short.bytes).toBe(0); // a body timeout drops the connection without an answer

    s.engine.readTimeout(1.5);
    const longer = await stall();
    expect(longer.elapsed).toBeGreaterThanOrEqual(1400);
    expect(longer.elapsed).toBeLessThan(2800);
    expect(seen).toBe(0); // the buffered request never reached the handler
  });
});

// ---------------------------------------------------------------- configure()

describe('engine.configure()', () => {
  it('maxBodySize set after construction answers 413 to new requests', async () => {
    const s = await serve(echoLength);
    const post = (n: number) => `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${n}\r\n\r\n${'b'.repeat(n)}`;
    expect(await statusOf(s.port, post(20))).toBe(200);
    expect(s.engine.configure({ maxBodySize: 10 })).toBe(s.engine);
    expect(s.engine.options.maxBodySize).toBe(10);
    expect(await statusOf(s.port, post(20))).toBe(413);
    expect(await statusOf(s.port, post(10))).toBe(200);
  });

  it('maxHeaderSize set after construction answers 431 to new requests', async () => {
    const s = await serve(echoLength);
    const get = `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'h'.repeat(600)}\r\n\r\n`;
    expect(await statusOf(s.port, get)).toBe(200);
    s.engine.configure({ maxHeaderSize: 512 });
    expect(await statusOf(s.port, get)).toBe(431);
    expect(await statusOf(s.port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n')).toBe(200);
  });

  it('maxHeaderCount raised after construction lets more header fields through to the handler', async () => {
    const counts: number[] = [];
    const s = await serve((req) => {
      counts.push(req.headers.length / 2);
      req.sendResponse(200, [], 'ok');
    });
    let head = 'GET / HTTP/1.1\r\nHost: x\r\n';
    for (let i = 0; i < 149; i++) head += `X-H${i}: ${i}\r\n`;
    head += '\r\n';
    expect(await statusOf(s.port, head)).toBe(400); // 150 fields > default 100
    s.engine.configure({ maxHeaderCount: 200 });
    expect(await statusOf(s.port, head)).toBe(200);
    expect(counts).toEqual([150]);
  });

  it('invalid options throw (naming the option) and leave the configuration as it was', async () => {
    const s = await serve(echoLength, { maxBodySize: 100 });
    const before = { ...s.engine.options };
    expect(() => s.engine.configure({ maxBodySize: -1 })).toThrow(/maxBodySize/);
    expect(() => s.engine.configure({ maxBodySize: -1 })).toThrow(RangeError);
    expect(() => s.engine.configure({ maxHeaderSize: 100 })).toThrow(RangeError); // below the 256 minimum
    expect(() => s.engine.configure({ readTimeout: Number.NaN })).toThrow(RangeError);
    expect(() => s.engine.configure({ nope: 1 } as EngineOptions)).toThrow(/unknown engine option 'nope'/);
    expect(() => s.engine.configure({ allowUnderscoreHeaders: 'yes' } as unknown as EngineOptions)).toThrow(TypeError);
    expect(() => s.engine.configure({ maxBodySize: 5, maxHeaderSize: 1 })).toThrow(/maxHeaderSize/);
    expect(s.engine.options).toEqual(before);
    // maxBodySize is still 100: the half-valid update above was not applied.
    expect(await statusOf(s.port, `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n${'b'.repeat(50)}`)).toBe(200);
  });
});

// ---------------------------------------------------------------- native accessors

describe('native accessors', () => {
  it('req.header(name): case-insensitive, repeats joined with ", " ("; " for Cookie), missing -> undefined', async () => {
    const s = await serve((req) =>
      req.sendResponse(200, ['Content-Type', 'application/json'], JSON.stringify({
        multi: req.header('X-MULTI'),
        lower: req.header('x-single'),
        cookie: req.header('Cookie'),
        host: req.header('HOST'),
        missing: req.header('X-Missing') ?? '<undefined>',
      })),
    );
    const { data } = await rawExchange(
      s.port,
      'GET / HTTP/1.1\r\nHost: example.test\r\nX-Multi: a\r\nX-Single: one\r\nx-multi: b\r\n' +
        'Cookie: c1=1\r\ncookie: c2=2\r\nX-MULTI: c\r\nConnection: close\r\n\r\n',
    );
    const [r] = parseResponses(data);
    expect(JSON.parse(r.body.toString())).toEqual({
      multi: 'a, b, c',
      lower: 'one',
      cookie: 'c1=1; c2=2',
      host: 'example.test',
      missing: '<undefined>',
    });
  });

  it('req.query: the raw query without "?", "" when absent or empty, stops at "#"', async () => {
    const s = await serve((req) => req.sendResponse(200, [], `[${req.query}]`));
    const targets = ['/p?a=1&b=%20x', '/p', '/p?', '/p?x=1#frag', '/p#f?not'];
    const { data } = await rawExchange(s.port, targets.map((t) => `GET ${t} HTTP/1.1\r\nHost: x\r\n\r\n`).join(''), { idleMs: 300 });
    const bodies = parseResponses(data).map((r) => r.body.toString());
    expect(bodies).toEqual(['[a=1&b=%20x]', '[]', '[]', '[x=1]', '[]']);
  });

  it('req.fileno: the connection socket fd (same on keep-alive), -1 once the connection is closed', async () => {
    const seen: Array<{ req: FeersumRequest; fd: number; socket: boolean }> = [];
    const s = await serve((req) => {
      const fd = req.fileno;
      seen.push({ req, fd, socket: fd >= 0 && fs.fstatSync(fd).isSocket() });
      req.sendResponse(200, [], String(fd));
    });
    const c = rawClient(s.port);
    await c.connected;
    c.send('GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n');
    const rs = await c.responses(2);
    expect(seen).toHaveLength(2);
    expect(seen[0].fd).toBeGreaterThanOrEqual(0);
    expect(seen[0].socket).toBe(true);
    expect(seen[1].fd).toBe(seen[0].fd);
    expect(rs.map((r) => r.body.toString())).toEqual([String(seen[0].fd), String(seen[0].fd)]);
    c.sock.destroy();
    await waitFor(() => seen[1].req.fileno === -1, 2000, 'fileno -1 after close');
  });

  // Streamed response of unknown length, so the framing shows the effect.
  const streamer = (req: FeersumRequest) => {
    if (req.query === '11') req.forceHttp11();
    if (req.query === '10') req.forceHttp10();
    if (req.path === '/fixed') {
      req.sendResponse(200, ['Content-Type', 'text/plain'], 'fixed');
      return;
    }
    const w = req.startStreaming(200, ['Content-Type', 'text/plain']);
    w.write('hello');
    w.close();
  };

  it('HTTP/1.0 request: plain is close-delimited; forceHttp11() makes it chunked (HTTP/1.1 status line)', async () => {
    const s = await serve(streamer);
    const plain = await rawExchange(s.port, 'GET /s HTTP/1.0\r\n\r\n');
    const p = plain.data.toString('latin1');
    expect(p.startsWith('HTTP/1.1 200 OK\r\n')).toBe(true);
    expect(p).not.toMatch(/transfer-encoding/i);
    expect(p).toMatch(/\r\nConnection: close\r\n/);
    expect(p.endsWith('\r\n\r\nhello')).toBe(true);
    expect(plain.closed).toBe(true);

    const forced = await rawExchange(s.port, 'GET /s?11 HTTP/1.0\r\n\r\n');
    const f = forced.data.toString('latin1');
    expect(f.startsWith('HTTP/1.1 200 OK\r\n')).toBe(true);
    expect(f).toMatch(/\r\nTransfer-Encoding: chunked\r\n/);
    expect(f.endsWith('\r\n\r\n5\r\nhello\r\n0\r\n\r\n')).toBe(true);
    expect(forced.closed).toBe(true); // HTTP/1.0 without keep-alive still closes
  });

  it('HTTP/1.0 keep-alive request with forceHttp11(): chunked, "Connection: keep-alive", connection reused', async () => {
    const s = await serve(streamer);
    const c = rawClient(s.port);
    await c.connected;
    c.send('GET /s?11 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
    const [r1] = await c.responses(1);
    expect(r1.rawHead).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(r1.headers['transfer-encoding']).toBe('chunked');
    expect(r1.headers.connection).toBe('keep-alive');
    expect(r1.body.toString()).toBe('hello');
    c.send('GET /fixed HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
    const rs = await c.responses(2);
    expect(rs[1].body.toString()).toBe('fixed');
    expect(c.closed).toBe(false);
    c.sock.destroy();
  });

  it('HTTP/1.1 request with forceHttp10(): HTTP/1.0 status line, no chunking (close-delimited stream)', async () => {
    const s = await serve(streamer);
    const plain = await rawExchange(s.port, 'GET /s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(parseResponses(plain.data)[0].headers['transfer-encoding']).toBe('chunked');

    const forced = await rawExchange(s.port, 'GET /s?10 HTTP/1.1\r\nHost: x\r\n\r\n');
    const f = forced.data.toString('latin1');
    expect(f.startsWith('HTTP/1.0 200 OK\r\n')).toBe(true);
    expect(f).not.toMatch(/transfer-encoding/i);
    expect(f).toMatch(/\r\nConnection: close\r\n/);
    expect(f.endsWith('\r\n\r\nhello')).toBe(true);
    expect(forced.closed).toBe(true);
  });

  it('forceHttp10() with a complete response keeps the connection (Content-Length, "Connection: keep-alive")', async () => {
    const s = await serve(streamer);
    const c = rawClient(s.port);
    await c.connected;
    c.send('GET /fixed?10 HTTP/1.1\r\nHost: x\r\n\r\nGET /fixed HTTP/1.1\r\nHost: x\r\n\r\n');
    const [r1, r2] = await c.responses(2);
    expect(r1.rawHead).toMatch(/^HTTP\/1\.0 200 OK\r\n/);
    expect(r1.headers['content-length']).toBe('5');
    expect(r1.headers.connection).toBe('keep-alive');
    expect(r2.rawHead).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(r2.body.toString()).toBe('fixed');
    c.sock.destroy();
  });
});

// ---------------------------------------------------------------- Date header

describe('the engine’s Date header', () => {
  const IMF_FIXDATE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/;

  function dateOf(rawHead: string): string {
    const values = rawHead.split('\r\n').filter((l) => /^date:/i.test(l)).map((l) => l.slice(l.indexOf(':') + 1).trim());
    expect(values).toHaveLength(1);
    return values[0];
  }

  function expectFreshImfDate(value: string) {
    expect(value).toMatch(IMF_FIXDATE);
    const t = Date.parse(value);
    expect(new Date(t).toUTCString()).toBe(value); // weekday consistent with the date
    expect(Math.abs(Date.now() - t)).toBeLessThan(2000);
  }

  it('exactly one IMF-fixdate Date on app, streamed, HEAD, 204 and engine-made error responses', async () => {
    const s = await serve(
      (req) => {
        if (req.path === '/stream') {
          const w = req.startStreaming(200, []);
          w.write('x');
          w.close();
        } else if (req.path === '/204') {
          req.sendResponse(204, []);
        } else {
          req.sendResponse(200, [], 'ok');
        }
      },
      { maxBodySize: 10 },
    );
    const { data } = await rawExchange(
      s.port,
      'GET / HTTP/1.1\r\nHost: x\r\n\r\n' +
        'GET /stream HTTP/1.1\r\nHost: x\r\n\r\n' +
        'HEAD / HTTP/1.1\r\nHost: x\r\n\r\n' +
        'GET /204 HTTP/1.1\r\nHost: x\r\n\r\n' +
        'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n',
    );
    const rs = parseResponses(data, { headRequests: [2] });
    expect(rs.map((r) => r.status)).toEqual([200, 200, 200, 204, 413]);
    for (const r of rs) expectFreshImfDate(dateOf(r.rawHead));
  });

  it('an app-supplied Date replaces the engine’s (still exactly one)', async () => {
    const appDate = 'Sun, 06 Nov 1994 08:49:37 GMT';
    const s = await serve((req) => req.sendResponse(200, ['Date', appDate], 'ok'));
    const { data } = await rawExchange(s.port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(dateOf(parseResponses(data)[0].rawHead)).toBe(appDate);
  });

  it('moves on across a second boundary (two requests ~1.1 s apart on one connection)', async () => {
    const s = await serve((req) => req.sendResponse(200, [], 'ok'));
    const c = rawClient(s.port);
    await c.connected;
    c.send('GET /1 HTTP/1.1\r\nHost: x\r\n\r\n');
    const [r1] = await c.responses(1);
    await sleep(1100);
    c.send('GET /2 HTTP/1.1\r\nHost: x\r\n\r\n');
    const [, r2] = await c.responses(2);
    const d1 = dateOf(r1.rawHead);
    const d2 = dateOf(r2.rawHead);
    expectFreshImfDate(d2);
    expect(d2).not.toBe(d1);
    expect(Date.parse(d2) - Date.parse(d1)).toBeGreaterThanOrEqual(1000);
    expect(Date.parse(d2) - Date.parse(d1)).toBeLessThanOrEqual(3000);
    c.sock.destroy();
  });
});
