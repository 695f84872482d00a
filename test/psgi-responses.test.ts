// PSGI conformance, part 2: responses. Every response form ([status,
// headers, body] with each body shape, delayed responses with respond() and
// the streaming writer, Promises of them), status and header checks,
// errors before and after the response began, bodies the engine must
// close/return/destroy, psgix.informational, psgix.cleanup and the guard.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';

import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';

import type { PsgiApp, PsgiEnv, Writer } from '../lib/index';
import { openFdCount, parseResponses, rawExchange, sleep, startPsgi, type TestServer, waitFor } from './helpers';

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const GET = (p = '/', extra = '') => `GET ${p} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`;
const LAST = (p = '/') => GET(p, 'Connection: close\r\n');
const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

/** Starts an app and records what the engine reports through its error hook. */
async function startWithErrors(app: PsgiApp, options?: Parameters<typeof startPsgi>[1]) {
  const errors: unknown[] = [];
  server = await startPsgi(app, options);
  server.engine.onError((err) => errors.push(err));
  return errors;
}

async function get(p: string, init?: Parameters<typeof request>[1]) {
  const r = await request(`http://127.0.0.1:${server!.port}${p}`, init);
  return { status: r.statusCode, headers: r.headers, body: Buffer.from(await r.body.arrayBuffer()) };
}

/** A client that connects, sends one request, reads `readBytes` of the answer and goes away. */
async function readSomeThenLeave(port: number, req: string, readBytes = 1): Promise<void> {
  const sock = net.connect(port, '127.0.0.1');
  sock.on('error', () => {});
  await new Promise((r) => sock.on('connect', r));
  sock.write(req);
  let n = 0;
  await new Promise<void>((resolve) => {
    sock.on('data', (d) => {
      n += d.length;
      if (n >= readBytes) resolve();
    });
    sock.on('close', () => resolve());
  });
  sock.destroy();
}

/** Engine and process back to idle: no connection, no request, no extra fd. */
async function expectIdle(baselineFds: number) {
  await waitFor(() => {
    const s = server!.engine.stats();
    return s.connections === 0 && s.requests === 0;
  }, 3000, 'engine idle');
  await waitFor(() => openFdCount() <= baselineFds, 3000, `fds back to ${baselineFds} (now ${openFdCount()})`);
}

describe('[status, headers, body]', () => {
  it('array bodies of strings, Buffers and Uint8Arrays; strings are UTF-8', async () => {
    server = await startPsgi((env) => {
      switch (env.PATH_INFO) {
        case '/strings':
          return [200, ['Content-Type', 'text/plain; charset=utf-8'], ['héllo', ' ', 'wörld ☃']];
        case '/mixed':
          return [200, [], ['a', Buffer.from('b'), new Uint8Array([99]), '']];
        case '/empty':
          return [200, [], []];
        default:
          return [200, [], [Buffer.from('one')]];
      }
    });
    const s = await get('/strings');
    expect(s.body.toString('utf8')).toBe('héllo wörld ☃');
    expect(s.headers['content-length']).toBe(String(Buffer.byteLength('héllo wörld ☃')));
    expect((await get('/mixed')).body.toString()).toBe('abc');
    const e = await get('/empty');
    expect(e.headers['content-length']).toBe('0');
    expect(e.body.length).toBe(0);
    expect((await get('/one')).body.toString()).toBe('one');
  });

  it('a string or Buffer body on its own (not wrapped in an array)', async () => {
    server = await startPsgi((env) => [200, [], env.PATH_INFO === '/s' ? 'just a string' : Buffer.from('just bytes')]);
    expect((await get('/s')).body.toString()).toBe('just a string');
    expect((await get('/b')).body.toString()).toBe('just bytes');
  });

  it('status as a number or numeric string; reason phrases from the engine', async () => {
    server = await startPsgi((env) => [env.PATH_INFO === '/404' ? 404 : '201', [], ['x']]);
    const { data } = await rawExchange(server.port, GET('/201') + LAST('/404'));
    const rs = parseResponses(data);
    expect(rs.map((r) => r.status)).toEqual([201, 404]);
    expect(rs[0].rawHead).toMatch(/^HTTP\/1\.1 201 Created/);
    expect(rs[1].rawHead).toMatch(/^HTTP\/1\.1 404 Not Found/);
  });

  it('multi-valued response headers are all sent, in order; numbers become decimal strings', async () => {
    server = await startPsgi(() => [
      200,
      ['Set-Cookie', 'a=1; Path=/', 'X-Num', 42, 'Set-Cookie', 'b=2', 'X-Float', 1.5, 'Vary', 'Accept', 'Vary', 'Cookie'],
      ['ok'],
    ]);
    const { data } = await rawExchange(server.port, LAST());
    const head = parseResponses(data)[0].rawHead;
    expect(head).toContain('\r\nSet-Cookie: a=1; Path=/\r\n');
    expect(head).toContain('\r\nSet-Cookie: b=2\r\n');
    expect(head.indexOf('a=1')).toBeLessThan(head.indexOf('b=2'));
    expect(head).toContain('\r\nX-Num: 42\r\n');
    expect(head).toContain('\r\nX-Float: 1.5\r\n');
    expect(head).toContain('\r\nVary: Accept\r\nVary: Cookie\r\n');
    const r = await get('/');
    expect(r.headers['set-cookie']).toEqual(['a=1; Path=/', 'b=2']);
  });

  it('304 carries no body and no entity headers the app did not send', async () => {
    server = await startPsgi(() => [304, ['ETag', '"v1"', 'Cache-Control', 'max-age=60'], []]);
    const { data } = await rawExchange(server.port, GET('/', 'If-None-Match: "v1"\r\n') + LAST());
    const rs = parseResponses(data);
    expect(rs.map((r) => r.status)).toEqual([304, 304]);
    const head = rs[0].rawHead.toLowerCase();
    expect(head).toContain('etag: "v1"');
    expect(head).not.toContain('content-length');
    expect(head).not.toContain('transfer-encoding');
    expect(head).not.toContain('content-type');
    expect(rs[0].body.length).toBe(0);
  });

  it('204 carries no body', async () => {
    server = await startPsgi(() => [204, [], ['ignored']]);
    const { data } = await rawExchange(server.port, GET() + LAST());
    const rs = parseResponses(data);
    expect(rs.map((r) => r.status)).toEqual([204, 204]);
    expect(rs[0].rawHead.toLowerCase()).not.toContain('content-length');
  });

  it('HEAD: no body on the wire, Content-Length kept (computed or the app\'s own)', async () => {
    server = await startPsgi((env) =>
      env.PATH_INFO === '/declared'
        ? [200, ['Content-Length', '1000'], []]
        : env.PATH_INFO === '/stream'
          ? [200, ['Content-Type', 'text/plain'], (async function* () {
              yield 'streamed';
            })()]
          : [200, ['Content-Type', 'text/plain'], ['hello world']],
    );
    const { data } = await rawExchange(
      server.port,
      'HEAD / HTTP/1.1\r\nHost: x\r\n\r\nHEAD /declared HTTP/1.1\r\nHost: x\r\n\r\nHEAD /stream HTTP/1.1\r\nHost: x\r\n\r\n' + LAST(),
    );
    const rs = parseResponses(data, { headRequests: [0, 1, 2] });
    expect(rs.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    expect(rs[0].headers['content-length']).toBe('11');
    expect(rs[1].headers['content-length']).toBe('1000');
    expect(rs[3].body.toString()).toBe('hello world'); // nothing leaked between the HEAD answers
    const h = await request(`http://127.0.0.1:${server.port}/`, { method: 'HEAD' });
    expect(h.headers['content-length']).toBe('11');
    expect((await h.body.arrayBuffer()).byteLength).toBe(0);
  });

  it('the engine never adds or removes Content-Encoding', async () => {
    const gz = Buffer.from('1f8b0800000000000003cb48cdc9c95728cf2fca490100c2a99b0a0b000000', 'hex');
    server = await startPsgi(() => [200, ['Content-Encoding', 'gzip', 'Content-Type', 'text/plain'], [gz]]);
    const { data } = await rawExchange(server.port, GET('/', 'Accept-Encoding: gzip\r\nConnection: close\r\n'));
    const [r] = parseResponses(data);
    expect(r.headers['content-encoding']).toBe('gzip');
    expect(r.body.equals(gz)).toBe(true);
  });

  it('an app Content-Length that does not match the body: a 500, the connection closed, error reported', async () => {
    // Refused before anything is written; as DESIGN.md asks of every length
    // mismatch, the connection is not kept.
    const errors = await startWithErrors((env) =>
      env.PATH_INFO === '/bad' ? [200, ['Content-Length', '10'], ['short']] : [200, [], ['fine']],
    );
    const { data, closed } = await rawExchange(server!.port, GET('/bad') + LAST('/ok'));
    const rs = parseResponses(data);
    expect(rs.map((r) => r.status)).toEqual([500]);
    expect(rs[0].headers.connection).toBe('close');
    expect(closed).toBe(true);
    expect(data.toString()).not.toContain('short');
    expect(errors.map(String).join('\n')).toMatch(/Content-Length/);
  });

  it('a streamed body longer or shorter than the app Content-Length: connection closed, error reported', async () => {
    const errors = await startWithErrors((env) => [
      200,
      ['Content-Length', '4'],
      (function* () {
        yield env.PATH_INFO === '/long' ? 'abcdef' : 'ab';
      })(),
    ]);
    const long = await rawExchange(server!.port, GET('/long') + GET('/never'));
    expect(long.closed).toBe(true);
    expect(long.data.toString('latin1').endsWith('\r\n\r\nabcd')).toBe(true);
    const short = await rawExchange(server!.port, GET('/short') + GET('/never'));
    expect(short.closed).toBe(true);
    expect(short.data.toString('latin1').endsWith('\r\n\r\nab')).toBe(true);
    expect(errors.map(String).join('\n')).toMatch(/longer[\s\S]*shorter/);
  });
});

describe('invalid responses: 500 and a reported error, never a malformed response', () => {
  const bad: Array<[string, unknown]> = [
    ['status not a number', ['abc', [], ['x']]],
    ['status too small', [99, [], ['x']]],
    ['status too large', [1000, [], ['x']]],
    ['status fractional', [200.5, [], ['x']]],
    ['1xx as a final status', [101, [], ['x']]],
    ['headers not an array', [200, { 'Content-Type': 'text/plain' }, ['x']]],
    ['odd header list', [200, ['Content-Type'], ['x']]],
    ['header name not a string', [200, [42, 'x'], ['x']]],
    ['header value an object', [200, ['X-Obj', { a: 1 }], ['x']]],
    ['CR LF in a header value', [200, ['X-Evil', 'a\r\nInjected: yes'], ['x']]],
    ['space in a header name', [200, ['Bad Name', 'x'], ['x']]],
    ['body part of the wrong type', [200, [], [{ not: 'a chunk' }]]],
    ['body of the wrong type', [200, [], 12345]],
    ['not an array', { status: 200 }],
    ['too short', [200]],
    ['undefined', undefined],
  ];
  for (const [label, response] of bad) {
    it(label, async () => {
      const errors = await startWithErrors((env) => (env.PATH_INFO === '/bad' ? (response as never) : [200, [], ['fine']]));
      const { data, closed } = await rawExchange(server!.port, GET('/bad') + LAST('/ok'));
      const rs = parseResponses(data);
      expect(rs.map((r) => r.status)).toEqual([500, 200]);
      expect(rs[1].body.toString()).toBe('fine'); // the connection stays usable
      expect(data.toString('latin1')).not.toContain('Injected');
      expect(closed).toBe(true);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toBeInstanceOf(Error);
    });
  }
});

describe('streamed bodies', () => {
  it('an iterable (generator) body', async () => {
    server = await startPsgi(() => [
      200,
      ['Content-Type', 'text/plain'],
      (function* () {
        yield 'one ';
        yield Buffer.from('two ');
        yield new Uint8Array([51]);
      })(),
    ]);
    const r = await get('/');
    expect(r.body.toString()).toBe('one two 3');
    expect(r.headers['transfer-encoding']).toBe('chunked');
  });

  it('an iterable object that is not an array, with its own Content-Length', async () => {
    const body = { *[Symbol.iterator]() { yield 'abc'; yield 'def'; } };
    server = await startPsgi(() => [200, ['Content-Length', 6], body]);
    const r = await get('/');
    expect(r.body.toString()).toBe('abcdef');
    expect(r.headers['content-length']).toBe('6');
    expect(r.headers['transfer-encoding']).toBeUndefined();
  });

  it('a large generator body (16 MB) arrives exactly', async () => {
    const part = crypto.randomBytes(64 * 1024);
    const n = 256;
    server = await startPsgi(() => [
      200,
      [],
      (function* () {
        for (let i = 0; i < n; i++) yield part;
      })(),
    ]);
    const expected = crypto.createHash('sha256');
    for (let i = 0; i < n; i++) expected.update(part);
    const r = await get('/');
    expect(r.body.length).toBe(n * part.length);
    expect(sha256(r.body)).toBe(expected.digest('hex'));
  });

  it('an async generator body, with awaits between parts', async () => {
    server = await startPsgi(() => [
      200,
      ['Content-Type', 'text/plain'],
      (async function* () {
        for (let i = 0; i < 5; i++) {
          await sleep(2);
          yield `part${i};`;
        }
      })(),
    ]);
    expect((await get('/')).body.toString()).toBe('part0;part1;part2;part3;part4;');
  });

  it('an async generator that produces fast is held back by a client that does not read', async () => {
    let produced = 0;
    let finished = false;
    const part = Buffer.alloc(64 * 1024, 97);
    server = await startPsgi(() => [
      200,
      [],
      (async function* () {
        try {
          for (;;) {
            produced += part.length;
            yield part;
          }
        } finally {
          finished = true;
        }
      })(),
    ]);
    const sock = net.connect(server.port, '127.0.0.1');
    sock.on('error', () => {});
    await new Promise((r) => sock.on('connect', r));
    sock.write(GET());
    sock.pause(); // read nothing
    await sleep(400);
    expect(produced).toBeLessThan(64 * 1024 * 1024);
    const before = produced;
    await sleep(200);
    expect(produced).toBe(before); // stalled, not spinning
    sock.destroy();
    await waitFor(() => finished, 3000, 'the abandoned generator to be returned');
  });

  it('a Node Readable body, produced over time', async () => {
    server = await startPsgi(() => {
      let i = 0;
      const r = new Readable({
        read() {
          if (i === 3) this.push(null);
          else setTimeout(() => this.push(`r${i++} `), 2);
        },
      });
      return [200, ['Content-Type', 'text/plain'], r];
    });
    expect((await get('/')).body.toString()).toBe('r0 r1 r2 ');
  });

  it('Readable.from an array of strings, and an object-mode stream of Buffers', async () => {
    server = await startPsgi((env) =>
      env.PATH_INFO === '/from'
        ? [200, [], Readable.from(['x', 'y', 'z'])]
        : [200, [], Readable.from([Buffer.from('B1'), Buffer.from('B2')], { objectMode: true })],
    );
    expect((await get('/from')).body.toString()).toBe('xyz');
    expect((await get('/obj')).body.toString()).toBe('B1B2');
  });

  it('fs.createReadStream of a 24 MB file: exact bytes, backpressure, file closed', async () => {
    const file = path.join(os.tmpdir(), `feersum-psgi-file-${process.pid}-${Date.now()}.bin`);
    const content = crypto.randomBytes(24 * 1024 * 1024);
    fs.writeFileSync(file, content);
    const streams: fs.ReadStream[] = [];
    try {
      server = await startPsgi(() => {
        const s = fs.createReadStream(file, { highWaterMark: 256 * 1024 });
        streams.push(s);
        return [200, ['Content-Type', 'application/octet-stream', 'Content-Length', content.length], s];
      });
      const baseline = openFdCount();
      // A fast client gets the exact bytes (on its own connection, closed after).
      const res = await new Promise<http.IncomingMessage>((resolve, reject) =>
        http.get({ host: '127.0.0.1', port: server!.port, agent: false }, resolve).on('error', reject),
      );
      const parts: Buffer[] = [];
      for await (const d of res) parts.push(d);
      expect(res.headers['content-length']).toBe(String(content.length));
      expect(sha256(Buffer.concat(parts))).toBe(sha256(content));
      await waitFor(() => streams[0].closed, 2000, 'file stream closed');

      // A client that reads nothing: the file is not read ahead without bound.
      const sock = net.connect(server.port, '127.0.0.1');
      sock.on('error', () => {});
      await new Promise((res) => sock.on('connect', res));
      sock.write(GET());
      sock.pause();
      await sleep(400);
      expect(streams[1].bytesRead).toBeLessThan(content.length / 2);
      // ...and when it goes away, the stream is destroyed and the file closed.
      sock.destroy();
      await waitFor(() => streams[1].destroyed && streams[1].closed, 3000, 'stream destroyed');
      await expectIdle(baseline);
    } finally {
      fs.rmSync(file, { force: true });
    }
  });

  it('a stream that errors mid-body: connection closed, error reported', async () => {
    const errors = await startWithErrors(() => {
      let sent = false;
      const r = new Readable({
        read() {
          if (!sent) {
            sent = true;
            this.push('begun ');
          } else setTimeout(() => this.destroy(new Error('disk on fire')), 5);
        },
      });
      return [200, [], r];
    });
    const { data, closed } = await rawExchange(server!.port, GET() + GET());
    expect(closed).toBe(true);
    expect(data.toString()).toContain('begun ');
    expect(data.toString()).not.toMatch(/0\r\n\r\n$/); // not a complete chunked body
    expect(errors.map(String).join()).toMatch(/disk on fire/);
  });

  it('a generator that throws mid-body: connection closed, error reported', async () => {
    const errors = await startWithErrors(() => [
      200,
      [],
      (function* () {
        yield 'first ';
        throw new Error('generator failed');
      })(),
    ]);
    const { data, closed } = await rawExchange(server!.port, GET());
    expect(closed).toBe(true);
    expect(parseResponses(data)).toHaveLength(0); // the chunked body never completed
    expect(errors.map(String)).toEqual(['Error: generator failed']);
  });

  it('an async generator that throws mid-body: connection closed, error reported', async () => {
    const errors = await startWithErrors(() => [
      200,
      [],
      (async function* () {
        yield 'first ';
        await sleep(5);
        throw new Error('async generator failed');
      })(),
    ]);
    const { closed } = await rawExchange(server!.port, GET());
    expect(closed).toBe(true);
    expect(errors.map(String)).toEqual(['Error: async generator failed']);
  });
});

describe('body objects: close(), return(), destroy()', () => {
  it('calls close() on an array body that has one, after sending it', async () => {
    let closed = 0;
    server = await startPsgi(() => {
      const body = Object.assign(['a', 'b'], { close: () => closed++ });
      return [200, [], body];
    });
    expect((await get('/')).body.toString()).toBe('ab');
    expect(closed).toBe(1);
  });

  it('calls close() on an iterable / async iterable / Readable body that has one', async () => {
    const closes: string[] = [];
    server = await startPsgi((env) => {
      if (env.PATH_INFO === '/iter') {
        return [200, [], { *[Symbol.iterator]() { yield 'i'; }, close: () => closes.push('iter') }];
      }
      if (env.PATH_INFO === '/async') {
        return [200, [], { async *[Symbol.asyncIterator]() { yield 'a'; }, close: () => closes.push('async') }];
      }
      const r = Object.assign(Readable.from(['r']), { close: () => closes.push('readable') });
      return [200, [], r];
    });
    expect((await get('/iter')).body.toString()).toBe('i');
    expect((await get('/async')).body.toString()).toBe('a');
    expect((await get('/readable')).body.toString()).toBe('r');
    await waitFor(() => closes.length === 3);
    expect(closes).toEqual(['iter', 'async', 'readable']);
  });

  it('calls close() (once) when the client goes away in the middle of an iterable body', async () => {
    let closes = 0;
    let returned = false;
    server = await startPsgi(() => {
      const it = {
        [Symbol.iterator]() {
          return it;
        },
        next: (): IteratorResult<Buffer> => ({ value: Buffer.alloc(64 * 1024, 98), done: false }),
        return: (): IteratorResult<Buffer> => {
          returned = true;
          return { value: undefined, done: true };
        },
        close: () => closes++,
      };
      return [200, [], it];
    });
    await readSomeThenLeave(server.port, GET(), 1000);
    await waitFor(() => returned && closes === 1, 3000, 'return() and close()');
    await sleep(50);
    expect(closes).toBe(1);
  });

  it('calls return() on a generator the engine abandons (its finally block runs)', async () => {
    let cleaned = false;
    server = await startPsgi(() => [
      200,
      [],
      (function* () {
        try {
          for (;;) yield Buffer.alloc(64 * 1024, 99);
        } finally {
          cleaned = true;
        }
      })(),
    ]);
    await readSomeThenLeave(server.port, GET(), 1000);
    await waitFor(() => cleaned, 3000, 'generator finally');
  });

  it('destroys a Readable body when the client goes away', async () => {
    let stream: Readable | undefined;
    server = await startPsgi(() => {
      stream = new Readable({
        read() {
          this.push(Buffer.alloc(64 * 1024, 100));
        },
      });
      return [200, [], stream];
    });
    const baseline = openFdCount();
    await readSomeThenLeave(server.port, GET(), 1000);
    await waitFor(() => stream!.destroyed, 3000, 'stream destroyed');
    await expectIdle(baseline);
  });
});

describe('delayed responses: respond() and the writer', () => {
  it('respond([status, headers, body]) sends at once, later or from a timer', async () => {
    server = await startPsgi((env) => (respond) => {
      if (env.PATH_INFO === '/now') respond([200, ['Content-Type', 'text/plain'], ['now']]);
      else setTimeout(() => respond([201, [], ['later']]), 10);
    });
    expect((await get('/now')).body.toString()).toBe('now');
    const l = await get('/later');
    expect(l.status).toBe(201);
    expect(l.body.toString()).toBe('later');
  });

  it('respond() with every body form', async () => {
    server = await startPsgi((env) => (respond) => {
      const bodies: Record<string, unknown> = {
        '/array': ['arr', 'ay'],
        '/gen': (function* () {
          yield 'g';
          yield 'en';
        })(),
        '/async': (async function* () {
          yield 'as';
          yield 'ync';
        })(),
        '/readable': Readable.from(['rea', 'dable']),
        '/string': 'string',
      };
      respond([200, [], bodies[env.PATH_INFO] as never]);
    });
    for (const p of ['/array', '/gen', '/async', '/readable', '/string']) {
      expect((await get(p)).body.toString()).toBe(p.slice(1));
    }
  });

  it('respond([status, headers]) returns a writer: write, close, chunked for HTTP/1.1', async () => {
    let writerSeen: Writer | undefined;
    server = await startPsgi(() => (respond) => {
      const w = respond([200, ['Content-Type', 'text/plain']])!;
      writerSeen = w;
      w.write('one ');
      w.write(Buffer.from('two '));
      setTimeout(() => {
        w.write(new Uint8Array([51]));
        w.close();
      }, 5);
    });
    const { data } = await rawExchange(server.port, GET() + LAST());
    const rs = parseResponses(data);
    expect(rs.map((r) => r.body.toString())).toEqual(['one two 3', 'one two 3']);
    expect(rs[0].headers['transfer-encoding']).toBe('chunked');
    expect(typeof writerSeen!.pollCb).toBe('function');
    expect(typeof writerSeen!.responseGuard).toBe('function');
  });

  it('the writer to an HTTP/1.0 client: close-delimited, never chunked', async () => {
    server = await startPsgi(() => (respond) => {
      const w = respond([200, ['Content-Type', 'text/plain']])!;
      w.write('ten ');
      setImmediate(() => {
        w.write('four');
        w.close();
      });
    });
    const { data, closed } = await rawExchange(server.port, 'GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
    const [r] = parseResponses(data, { toEnd: true });
    expect(r.headers['transfer-encoding']).toBeUndefined();
    expect(r.body.toString()).toBe('ten four');
    expect(closed).toBe(true);
  });

  it('an HTTP/1.0 keep-alive request with a complete response stays open and says so', async () => {
    server = await startPsgi(() => [200, [], ['ka']]);
    const { data } = await rawExchange(
      server.port,
      'GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n',
    );
    const rs = parseResponses(data, { toEnd: true });
    expect(rs).toHaveLength(2);
    expect(rs[0].headers.connection?.toLowerCase()).toBe('keep-alive');
  });

  it('pollCb streams 20 MB to a slow reader with backpressure; exact bytes', async () => {
    const chunk = crypto.randomBytes(64 * 1024);
    const total = 20 * 1024 * 1024;
    let sawBackpressure = false;
    let polls = 0;
    server = await startPsgi(() => (respond) => {
      const w = respond([200, ['Content-Type', 'application/octet-stream']])!;
      let sent = 0;
      w.pollCb((writer) => {
        polls++;
        while (sent < total) {
          sent += chunk.length;
          if (!writer.write(chunk)) {
            sawBackpressure = true;
            return;
          }
        }
        writer.close();
      });
    });
    const expected = crypto.createHash('sha256');
    for (let i = 0; i < total / chunk.length; i++) expected.update(chunk);
    const res = await new Promise<http.IncomingMessage>((resolve, reject) =>
      http.get({ host: '127.0.0.1', port: server!.port, agent: false }, resolve).on('error', reject),
    );
    const got = crypto.createHash('sha256');
    let n = 0;
    for await (const d of res) {
      got.update(d);
      n += d.length;
      if (Math.random() < 0.05) await sleep(2); // a slow reader now and then
    }
    expect(n).toBe(total);
    expect(got.digest('hex')).toBe(expected.digest('hex'));
    expect(sawBackpressure).toBe(true);
    expect(polls).toBeGreaterThan(1);
  });

  it('pollCb(null) stops the polls; close() ends them', async () => {
    let polls = 0;
    server = await startPsgi(() => (respond) => {
      const w = respond([200, []])!;
      w.pollCb((writer) => {
        polls++;
        writer.write(`p${polls} `);
        if (polls === 3) {
          writer.pollCb(null);
          setTimeout(() => {
            writer.write('end');
            writer.close();
          }, 30);
        }
      });
    });
    expect((await get('/')).body.toString()).toBe('p1 p2 p3 end');
    await sleep(30);
    expect(polls).toBe(3);
  });

  it('an async app: a Promise of a response or of a delayed response', async () => {
    server = await startPsgi(async (env) => {
      await sleep(5);
      if (env.PATH_INFO === '/array') return [200, [], ['async array']];
      return (respond) => {
        setTimeout(() => respond([200, [], ['async delayed']]), 5);
      };
    });
    expect((await get('/array')).body.toString()).toBe('async array');
    expect((await get('/delayed')).body.toString()).toBe('async delayed');
  });

  it('writes and closes after close() are ignored, never crash', async () => {
    const results: unknown[] = [];
    const errors = await startWithErrors(() => (respond) => {
      const w = respond([200, []])!;
      w.write('done');
      w.close();
      results.push(w.write('after'));
      w.close();
      w.end();
      setTimeout(() => {
        results.push(w.write('much later'));
        w.close();
      }, 20);
    });
    const { data } = await rawExchange(server!.port, GET() + LAST());
    expect(parseResponses(data).map((r) => r.body.toString())).toEqual(['done', 'done']);
    await sleep(40);
    expect(results).toEqual([false, false, false, false]);
    expect(errors).toEqual([]);
  });

  it('a second respond() is reported and closes the connection; the first response stays intact', async () => {
    const secondResults: unknown[] = [];
    const errors = await startWithErrors(() => (respond) => {
      respond([200, [], ['first']]);
      const w = respond([200, [], ['second']]);
      secondResults.push(w);
    });
    const { data, closed } = await rawExchange(server!.port, GET() + GET());
    const text = data.toString();
    expect(closed).toBe(true);
    expect(text).not.toContain('second');
    expect(text.match(/HTTP\/1\.1 200/g)?.length ?? 0).toBeLessThanOrEqual(1);
    expect(errors.map(String).join()).toMatch(/more than once/);
  });

  it('a second respond() while the first is streaming: reported, connection closed, writer inert', async () => {
    let second: Writer | undefined;
    const errors = await startWithErrors(() => (respond) => {
      const w = respond([200, []])!;
      w.write('streaming ');
      second = respond([200, []]);
      second?.write('never');
      setTimeout(() => w.close(), 5);
    });
    const { data, closed } = await rawExchange(server!.port, GET());
    expect(closed).toBe(true);
    expect(data.toString()).not.toContain('never');
    expect(errors.map(String).join()).toMatch(/more than once/);
  });

  it('respond() with a bad response does not throw: 500, reported, connection usable', async () => {
    const returned: unknown[] = [];
    const errors = await startWithErrors((env) => (respond) => {
      if (env.PATH_INFO === '/ok') return respond([200, [], ['fine']]);
      // From a timer: a throw here would take the process down.
      setTimeout(() => {
        const w = respond(env.PATH_INFO === '/short' ? ([200] as never) : [200, ['Bad Name', 'x']]);
        returned.push(w?.write('ignored'));
      }, 2);
    });
    const { data } = await rawExchange(server!.port, GET('/short') + GET('/badheader') + LAST('/ok'));
    expect(parseResponses(data).map((r) => r.status)).toEqual([500, 500, 200]);
    expect(data.toString()).not.toContain('ignored');
    expect(returned).toEqual([false, false]);
    expect(errors).toHaveLength(2);
    expect(errors.every((e) => e instanceof TypeError)).toBe(true);
  });

  it('respond never called and the client gone: nothing leaks, cleanup and guard run', async () => {
    const events: string[] = [];
    let pending = 0;
    server = await startPsgi((env) => {
      env['psgix.cleanup.handlers'].push(() => events.push(`cleanup ${env.PATH_INFO}`));
      return () => {
        pending++; // never responds
      };
    });
    const baseline = openFdCount();
    for (let i = 0; i < 5; i++) {
      const sock = net.connect(server.port, '127.0.0.1');
      sock.on('error', () => {});
      await new Promise((r) => sock.on('connect', r));
      sock.write(GET(`/n${i}`));
      await waitFor(() => pending === i + 1);
      sock.destroy();
    }
    await expectIdle(baseline);
    await waitFor(() => events.length === 5, 3000, 'cleanup after abort');
    expect(events.sort()).toEqual(['/n0', '/n1', '/n2', '/n3', '/n4'].map((p) => `cleanup ${p}`));
  });

  it('a writer left open with the client gone: guard fires, writes return false, no leak', async () => {
    let writer: Writer | undefined;
    let guard = 0;
    const errors = await startWithErrors(() => (respond) => {
      writer = respond([200, []])!;
      writer.responseGuard(() => guard++);
      writer.write('partial');
    });
    const baseline = openFdCount();
    await readSomeThenLeave(server!.port, GET(), 5);
    await waitFor(() => guard === 1, 3000, 'guard');
    expect(writer!.write('more')).toBe(false);
    writer!.close();
    writer!.pollCb(() => {
      throw new Error('must not poll a dead writer');
    });
    await sleep(20);
    await expectIdle(baseline);
    expect(errors).toEqual([]);
  });
});

describe('pipelining and request bodies', () => {
  it('pipelined requests answered out of order still go out in order', async () => {
    server = await startPsgi((env) => (respond) => {
      const delay = { '/a': 30, '/b': 15, '/c': 0 }[env.PATH_INFO] ?? 0;
      setTimeout(() => {
        if (env.PATH_INFO === '/b') {
          const w = respond([200, []])!;
          w.write('b-');
          setTimeout(() => {
            w.write('streamed');
            w.close();
          }, 20);
        } else respond([200, [], [env.PATH_INFO.slice(1)]]);
      }, delay);
    });
    const { data } = await rawExchange(server.port, GET('/a') + GET('/b') + LAST('/c'));
    expect(parseResponses(data).map((r) => r.body.toString())).toEqual(['a', 'b-streamed', 'c']);
  });

  it('an app that answers without reading a large body: the body is skipped, the connection goes on', async () => {
    server = await startPsgi((env) => [200, [], [`${env.PATH_INFO} ${env['psgix.input.buffered']}`]]);
    const body = Buffer.alloc(1024 * 1024, 120);
    const sock = net.connect(server.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    sock.on('data', (d) => chunks.push(d));
    await new Promise((r) => sock.on('connect', r));
    sock.write(`POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n`);
    sock.write(body);
    sock.write(LAST('/after'));
    await new Promise((r) => sock.on('close', r));
    expect(parseResponses(Buffer.concat(chunks)).map((r) => r.body.toString())).toEqual(['/big false', '/after true']);
  });

  it('a streamed body the app stops reading when the client leaves: no leak', async () => {
    let aborted: unknown;
    server = await startPsgi(async (env) => {
      const input = env['psgi.input'];
      try {
        for await (const _ of input) {
          // read until the client goes away
        }
      } catch (err) {
        aborted = err;
      }
      return [200, [], ['never seen']];
    });
    const baseline = openFdCount();
    const sock = net.connect(server.port, '127.0.0.1');
    sock.on('error', () => {});
    await new Promise((r) => sock.on('connect', r));
    sock.write(`POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${10 * 1024 * 1024}\r\n\r\n`);
    sock.write(Buffer.alloc(512 * 1024));
    await sleep(50);
    sock.destroy();
    await waitFor(() => aborted !== undefined, 3000, 'the body stream to fail');
    expect(String(aborted)).toMatch(/closed|completed|aborted/i);
    await expectIdle(baseline);
  });
});

describe('application errors', () => {
  it('a throwing app gets a 500, the error is reported, the connection stays usable', async () => {
    const errors = await startWithErrors((env) => {
      if (env.PATH_INFO === '/throw') throw new Error('app exploded');
      return [200, [], ['fine']];
    });
    const { data, closed } = await rawExchange(server!.port, GET('/throw') + GET('/ok') + LAST('/throw'));
    const rs = parseResponses(data);
    expect(rs.map((r) => r.status)).toEqual([500, 200, 500]);
    expect(rs[1].body.toString()).toBe('fine');
    expect(closed).toBe(true);
    expect(errors.map(String)).toEqual(['Error: app exploded', 'Error: app exploded']);
  });

  it('a rejected Promise gets a 500 and is reported', async () => {
    const errors = await startWithErrors(async (env) => {
      await sleep(2);
      if (env.PATH_INFO === '/reject') throw new Error('async failure');
      return [200, [], ['fine']];
    });
    const { data } = await rawExchange(server!.port, GET('/reject') + LAST('/ok'));
    expect(parseResponses(data).map((r) => r.status)).toEqual([500, 200]);
    expect(errors.map(String)).toEqual(['Error: async failure']);
  });

  it('throwing non-Errors is reported too', async () => {
    const errors = await startWithErrors(() => {
      throw 'a string'; // eslint-disable-line no-throw-literal
    });
    const { data } = await rawExchange(server!.port, LAST());
    expect(parseResponses(data)[0].status).toBe(500);
    expect(errors).toEqual(['a string']);
  });

  it('a throw from the delayed function before respond: 500', async () => {
    const errors = await startWithErrors(() => () => {
      throw new Error('delayed failed');
    });
    const { data } = await rawExchange(server!.port, GET() + LAST());
    expect(parseResponses(data).map((r) => r.status)).toEqual([500, 500]);
    expect(errors.map(String)).toEqual(['Error: delayed failed', 'Error: delayed failed']);
  });

  it('a throw after streaming began closes the connection and is reported', async () => {
    const errors = await startWithErrors(() => (respond) => {
      const w = respond([200, []])!;
      w.write('begun');
      throw new Error('mid-stream');
    });
    const { data, closed } = await rawExchange(server!.port, GET() + GET());
    expect(closed).toBe(true);
    expect(parseResponses(data)).toHaveLength(0);
    expect(errors.map(String)).toEqual(['Error: mid-stream']);
  });

  it('a rejection after streaming began closes the connection and is reported', async () => {
    const errors = await startWithErrors(() => async (respond) => {
      const w = respond([200, []])!;
      w.write('begun');
      await sleep(5);
      throw new Error('async mid-stream');
    });
    const { closed } = await rawExchange(server!.port, GET());
    expect(closed).toBe(true);
    expect(errors.map(String)).toEqual(['Error: async mid-stream']);
  });

  it('a throw after the response was complete is reported; the connection goes on', async () => {
    const errors = await startWithErrors((env) => async (respond) => {
      if (env.PATH_INFO !== '/late-throw') await sleep(30); // still to answer when the first one throws
      respond([200, [], [`done ${env.PATH_INFO}`]]);
      await sleep(5);
      if (env.PATH_INFO === '/late-throw') throw new Error('after the fact');
    });
    const { data, closed } = await rawExchange(server!.port, GET('/late-throw') + GET('/next') + LAST('/last'));
    expect(parseResponses(data).map((r) => r.body.toString())).toEqual(['done /late-throw', 'done /next', 'done /last']);
    expect(closed).toBe(true);
    await waitFor(() => errors.length === 1, 2000, 'the error');
    expect(errors.map(String)).toEqual(['Error: after the fact']);
  });

  it('a throw from a pollCb callback closes the connection and is reported', async () => {
    const errors = await startWithErrors(() => (respond) => {
      const w = respond([200, []])!;
      w.write('x');
      w.pollCb(() => {
        throw new Error('poll failed');
      });
    });
    const { closed } = await rawExchange(server!.port, GET() + GET());
    expect(closed).toBe(true);
    expect(errors.map(String)).toEqual(['Error: poll failed']);
  });

  it('an error hook that throws does not take the process down', async () => {
    server = await startPsgi(() => {
      throw new Error('first');
    });
    const original = process.stderr.write;
    const lines: string[] = [];
    process.stderr.write = ((s: string) => lines.push(String(s))) as never;
    try {
      server.engine.onError(() => {
        throw new Error('hook failed');
      });
      const { data } = await rawExchange(server.port, LAST());
      expect(parseResponses(data)[0].status).toBe(500);
    } finally {
      process.stderr.write = original;
    }
    expect(lines.join()).toMatch(/hook failed/);
  });
});

describe('psgix.informational', () => {
  it('sends 103 Early Hints before the final response', async () => {
    server = await startPsgi((env) => {
      env['psgix.informational'](103, ['Link', '</style.css>; rel=preload; as=style', 'Link', '</app.js>; rel=preload']);
      return (respond) => setTimeout(() => respond([200, ['Content-Type', 'text/html'], ['<html>']]), 10);
    });
    const { data } = await rawExchange(server.port, LAST());
    const text = data.toString();
    expect(text.startsWith('HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\nLink: </app.js>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\n')).toBe(true);
    expect(text.endsWith('<html>')).toBe(true);
  });

  it('undici (a real client) gets the final response after the 1xx', async () => {
    server = await startPsgi((env) => {
      env['psgix.informational'](103, ['Link', '</a.css>; rel=preload']);
      return [200, [], ['final']];
    });
    const r = await get('/');
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('final');
  });

  it('is ignored for HTTP/1.0 clients', async () => {
    server = await startPsgi((env) => {
      env['psgix.informational'](103, ['Link', '</a.css>; rel=preload']);
      return [200, [], ['final']];
    });
    const { data } = await rawExchange(server.port, 'GET / HTTP/1.0\r\n\r\n');
    expect(data.toString()).not.toContain('103');
    expect(data.toString()).toMatch(/^HTTP\/1\.[01] 200 /);
  });

  it('refuses a non-1xx status (101 included) by throwing', async () => {
    const thrown: string[] = [];
    server = await startPsgi((env) => {
      for (const s of [200, 101, 99]) {
        try {
          env['psgix.informational'](s, []);
        } catch (err) {
          thrown.push(String(s));
        }
      }
      return [200, [], ['ok']];
    });
    const { data } = await rawExchange(server.port, LAST());
    expect(data.toString()).toMatch(/^HTTP\/1\.1 200 /);
    expect(thrown).toEqual(['200', '101', '99']);
  });
});

describe('psgix.cleanup and psgix.output.guard', () => {
  it('cleanup handlers run with env after the response is completely written', async () => {
    const events: string[] = [];
    let clientGotIt = false;
    server = await startPsgi((env) => {
      env['psgix.cleanup.handlers'].push((e: PsgiEnv) => events.push(`cleanup ${e.PATH_INFO} client=${clientGotIt}`));
      env['psgix.cleanup.handlers'].push(() => events.push('second'));
      return [200, [], [Buffer.alloc(2 * 1024 * 1024, 97)]];
    });
    const r = await get('/c');
    clientGotIt = r.body.length === 2 * 1024 * 1024;
    await waitFor(() => events.length === 2, 2000, 'cleanup');
    expect(events[0]).toMatch(/^cleanup \/c/);
    expect(events[1]).toBe('second');
  });

  it('cleanup handlers run after a streamed response and after a delayed one', async () => {
    const events: string[] = [];
    server = await startPsgi((env) => {
      env['psgix.cleanup.handlers'].push(() => events.push(env.PATH_INFO));
      if (env.PATH_INFO === '/gen') return [200, [], (function* () { yield 'g'; })()];
      return (respond) => {
        const w = respond([200, []])!;
        setTimeout(() => {
          w.write('w');
          w.close();
        }, 5);
      };
    });
    await get('/gen');
    await get('/writer');
    await waitFor(() => events.length === 2);
    expect(events).toEqual(['/gen', '/writer']);
  });

  it('cleanup handlers pushed after the app returned still run', async () => {
    const events: string[] = [];
    server = await startPsgi((env) => (respond) => {
      setTimeout(() => {
        env['psgix.cleanup.handlers'].push(() => events.push('late'));
        respond([200, [], ['x']]);
      }, 5);
    });
    await get('/');
    await waitFor(() => events.length === 1, 2000, 'late cleanup');
  });

  it('cleanup handlers run after an abort, and after a 500', async () => {
    const events: string[] = [];
    server = await startPsgi((env) => {
      env['psgix.cleanup.handlers'].push(() => events.push(env.PATH_INFO));
      if (env.PATH_INFO === '/throw') throw new Error('x');
      return (respond) => {
        const w = respond([200, []])!;
        w.write('hanging');
      };
    });
    await rawExchange(server.port, LAST('/throw'));
    await readSomeThenLeave(server.port, GET('/abort'), 5);
    await waitFor(() => events.length === 2, 2000, 'cleanup after 500 and abort');
    expect(events.sort()).toEqual(['/abort', '/throw']);
  });

  it('an error in a cleanup handler is reported, not thrown; the others still run', async () => {
    const events: string[] = [];
    const errors = await startWithErrors((env) => {
      env['psgix.cleanup.handlers'].push(() => {
        throw new Error('cleanup failed');
      });
      env['psgix.cleanup.handlers'].push(() => events.push('ran'));
      return [200, [], ['ok']];
    });
    const { data } = await rawExchange(server!.port, GET() + LAST());
    expect(parseResponses(data).map((r) => r.body.toString())).toEqual(['ok', 'ok']);
    await waitFor(() => events.length === 2, 2000);
    expect(errors.map(String)).toEqual(['Error: cleanup failed', 'Error: cleanup failed']);
  });

  it('writer.responseGuard fires once the streamed response is fully written', async () => {
    const events: string[] = [];
    server = await startPsgi((env) => (respond) => {
      events.push(`guard-key ${env['psgix.output.guard']}`);
      const w = respond([200, []])!;
      w.responseGuard(() => events.push('guard'));
      w.write(Buffer.alloc(1024 * 1024, 101));
      setTimeout(() => {
        events.push('closing');
        w.close();
      }, 10);
    });
    const r = await get('/');
    expect(r.body.length).toBe(1024 * 1024);
    await waitFor(() => events.includes('guard'));
    expect(events).toEqual(['guard-key true', 'closing', 'guard']);
  });
});
