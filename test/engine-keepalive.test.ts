// Keep-alive, HTTP/1.0, Connection: close, pipelining and request ordering,
// over raw sockets.
import net from 'node:net';

import { afterEach, describe, expect, it } from 'vitest';

import { parseResponses, rawExchange, sleep, startServer, type TestServer } from './helpers';

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const echoPath = (req: import('../lib/index').FeersumRequest) =>
  req.sendResponse(200, ['Content-Type', 'text/plain'], `${req.method} ${req.uri}`);

/** A client that keeps one connection and reads responses as they come. */
function connection(port: number) {
  const sock = net.connect(port, '127.0.0.1');
  let buf = Buffer.alloc(0);
  let closed = false;
  sock.on('data', (d) => (buf = Buffer.concat([buf, d])));
  sock.on('close', () => (closed = true));
  sock.on('error', () => {});
  return {
    sock,
    send: (s: string | Buffer) => sock.write(s),
    get closed() {
      return closed;
    },
    async responses(n: number, ms = 3000) {
      const start = Date.now();
      for (;;) {
        const rs = parseResponses(buf);
        if (rs.length >= n) return rs;
        if (Date.now() - start > ms) throw new Error(`got ${rs.length} of ${n} responses: ${buf.toString('latin1')}`);
        await sleep(5);
      }
    },
    async waitClosed(ms = 3000) {
      const start = Date.now();
      while (!closed) {
        if (Date.now() - start > ms) throw new Error('connection not closed');
        await sleep(5);
      }
    },
  };
}

describe('keep-alive', () => {
  it('serves several requests on one HTTP/1.1 connection', async () => {
    server = await startServer(echoPath);
    const c = connection(server.port);
    for (let i = 1; i <= 3; i++) {
      c.send(`GET /r${i} HTTP/1.1\r\nHost: x\r\n\r\n`);
      const rs = await c.responses(i);
      expect(rs[i - 1].body.toString()).toBe(`GET /r${i}`);
      expect(rs[i - 1].headers.connection).toBeUndefined();
    }
    expect(c.closed).toBe(false);
    c.sock.destroy();
  });

  it('closes after Connection: close, saying so', async () => {
    server = await startServer(echoPath);
    const { data, closed } = await rawExchange(server.port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const [r] = parseResponses(data);
    expect(r.headers.connection).toBe('close');
    expect(closed).toBe(true);
  });

  it('HTTP/1.0 without keep-alive closes; with keep-alive it stays open and says so', async () => {
    server = await startServer(echoPath);
    const plain = await rawExchange(server.port, 'GET /a HTTP/1.0\r\n\r\n');
    expect(plain.closed).toBe(true);
    expect(parseResponses(plain.data)[0].body.toString()).toBe('GET /a');

    const c = connection(server.port);
    c.send('GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
    const [r] = await c.responses(1);
    expect(r.headers.connection).toBe('keep-alive');
    expect(r.headers['content-length']).toBe('6');
    c.send('GET /c HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
    const rs = await c.responses(2);
    expect(rs[1].body.toString()).toBe('GET /c');
    expect(c.closed).toBe(false);
    c.sock.destroy();
  });

  it('a handler can close the connection with Connection: close', async () => {
    server = await startServer((req) => req.sendResponse(200, ['Connection', 'close'], 'bye'));
    const { data, closed } = await rawExchange(server.port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(parseResponses(data)[0].headers.connection).toBe('close');
    expect(closed).toBe(true);
  });

  it('maxKeepaliveRequests closes after N requests', async () => {
    server = await startServer(echoPath, { maxKeepaliveRequests: 2 });
    const c = connection(server.port);
    c.send('GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\nHost: x\r\n\r\n');
    const rs = await c.responses(2);
    await c.waitClosed();
    expect(parseResponses(Buffer.from(rs.map((r) => r.rawHead).join('')))).toBeDefined();
    expect(rs.length).toBe(2);
    expect(rs[0].headers.connection).toBeUndefined();
    expect(rs[1].headers.connection).toBe('close');
  });

  it('keepaliveTimeout closes an idle connection', async () => {
    server = await startServer(echoPath, { keepaliveTimeout: 0.3 });
    const c = connection(server.port);
    c.send('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await c.responses(1);
    const t0 = Date.now();
    await c.waitClosed(3000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(200);
  });
});

describe('pipelining', () => {
  it('answers a burst of requests in one write, in order', async () => {
    server = await startServer(echoPath);
    const burst = Array.from({ length: 20 }, (_, i) => `GET /p${i} HTTP/1.1\r\nHost: x\r\n\r\n`).join('');
    const c = connection(server.port);
    c.send(burst);
    const rs = await c.responses(20);
    expect(rs.map((r) => r.body.toString())).toEqual(Array.from({ length: 20 }, (_, i) => `GET /p${i}`));
    c.sock.destroy();
  });

  it('keeps order when a slow first response is overtaken by a fast second', async () => {
    server = await startServer((req) => {
      if (req.uri === '/slow') setTimeout(() => req.sendResponse(200, [], 'slow'), 150);
      else req.sendResponse(200, [], 'fast');
    });
    const c = connection(server.port);
    c.send('GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\n\r\n');
    const rs = await c.responses(2);
    expect(rs.map((r) => r.body.toString())).toEqual(['slow', 'fast']);
    c.sock.destroy();
  });

  it('keeps order with asynchronous answers in random order, streaming ones included', async () => {
    server = await startServer((req) => {
      const n = Number(req.uri.slice(1));
      setTimeout(() => {
        if (n % 3 === 0) {
          const w = req.startStreaming(200, []);
          w.write(`s${n}-a `);
          setTimeout(() => {
            w.write(`s${n}-b`);
            w.close();
          }, 5);
        } else {
          req.sendResponse(200, [], `r${n}`);
        }
      }, Math.floor(Math.random() * 40));
    });
    const c = connection(server.port);
    const n = 30;
    c.send(Array.from({ length: n }, (_, i) => `GET /${i} HTTP/1.1\r\nHost: x\r\n\r\n`).join(''));
    const rs = await c.responses(n, 5000);
    expect(rs.map((r) => r.body.toString())).toEqual(
      Array.from({ length: n }, (_, i) => (i % 3 === 0 ? `s${i}-a s${i}-b` : `r${i}`)),
    );
    c.sock.destroy();
  });

  it('answers more pipelined requests than the pipeline depth, with bodies mixed in', async () => {
    server = await startServer(
      (req) => setImmediate(() => req.sendResponse(200, [], `${req.method} ${req.body ? req.body.toString() : '-'}`)),
      { maxPipeline: 4 },
    );
    const parts: string[] = [];
    for (let i = 0; i < 50; i++) {
      if (i % 2) parts.push(`POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: ${String(i).length}\r\n\r\n${i}`);
      else parts.push(`GET /x HTTP/1.1\r\nHost: x\r\n\r\n`);
    }
    const c = connection(server.port);
    c.send(parts.join(''));
    const rs = await c.responses(50, 5000);
    expect(rs.map((r) => r.body.toString())).toEqual(
      Array.from({ length: 50 }, (_, i) => (i % 2 ? `POST ${i}` : 'GET -')),
    );
    c.sock.destroy();
  });

  it('ignores requests pipelined after Connection: close', async () => {
    const seen: string[] = [];
    server = await startServer((req) => {
      seen.push(req.uri);
      req.sendResponse(200, [], 'ok');
    });
    const { data, closed } = await rawExchange(
      server.port,
      'GET /1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n',
    );
    expect(parseResponses(data).length).toBe(1);
    expect(closed).toBe(true);
    expect(seen).toEqual(['/1']);
  });

  it('answers what a client pipelined before half-closing when the answers are ready', async () => {
    server = await startServer((req) => req.sendResponse(200, [], req.uri));
    const { data, closed } = await rawExchange(
      server.port,
      'GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n',
      { endAfterWrite: true },
    );
    expect(parseResponses(data).map((r) => r.body.toString())).toEqual(['/1', '/2']);
    expect(closed).toBe(true);
  });

  it('treats EOF with a response still pending as the client leaving (as nginx does)', async () => {
    let late: unknown = 'not called';
    const done: string[] = [];
    server = await startServer((req) => {
      req.responseGuard(() => done.push(req.uri));
      setTimeout(() => {
        try {
          req.sendResponse(200, [], 'late');
          late = 'ignored';
        } catch (err) {
          late = err;
        }
      }, 50);
    });
    const { data, closed } = await rawExchange(server.port, 'GET /1 HTTP/1.1\r\nHost: x\r\n\r\n', {
      endAfterWrite: true,
    });
    expect(data.length).toBe(0);
    expect(closed).toBe(true);
    await sleep(100);
    expect(done).toEqual(['/1']);
    expect(late).toBe('ignored');
  });
});
