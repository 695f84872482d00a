// HTTPS with real clients: node:https (keep-alive), undici (pipelining),
// raw tls.connect pipelining, curl; 50 MB uploads and downloads with exact
// sha256; HTTP and HTTPS listeners side by side on one engine.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';

import { Agent, Client } from 'undici';
import { beforeAll, describe, expect, it } from 'vitest';

import { Feersum, type FeersumRequest, type Writer } from '../lib/index';
import { openFdCount, parseResponses, sleep, waitFor } from './helpers';
import {
  curl,
  type Described,
  describeHandler,
  httpsRequest,
  run,
  startTlsServer,
  tlsClient,
  tlsStats,
  tlsSuite,
} from './tls-certs';

const suite = tlsSuite();

async function serve(handler: (req: FeersumRequest) => unknown, tls: Partial<Parameters<typeof startTlsServer>[1]> = {}) {
  const s = await startTlsServer(handler, { key: suite.fx.server.key, cert: suite.fx.server.cert, ...tls });
  suite.servers.push(s);
  return s;
}

const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
const json = (b: Buffer) => JSON.parse(b.toString()) as Described;

describe('node:https', () => {
  it('serves a request: scheme https, req.tls filled, certificate verified against the CA', async () => {
    const s = await serve(describeHandler);
    const r = await httpsRequest(s.port, { ca: suite.fx.ca.certPem, agent: false, path: '/hello?x=1' });
    expect(r.status).toBe(200);
    const d = json(r.body);
    expect(d.uri).toBe('/hello?x=1');
    expect(d.scheme).toBe('https');
    expect(d.tls).not.toBeNull();
    expect(d.tls!.protocol).toBe('TLSv1.3');
    expect(d.tls!.cipher).toMatch(/^TLS_/);
    expect(d.tls!.serverName).toBe(''); // Node sends no SNI for an IP address
    expect(d.tls!.clientVerify).toBe('NONE');
    expect(d.tls!.clientSubject).toBe('');
    expect(d.tls!.clientIssuer).toBe('');
    expect(d.tls!.clientSerial).toBe('');
    expect(d.tls!.clientCert).toBe('');
  });

  it('reports the SNI name the client sent', async () => {
    const s = await serve(describeHandler);
    const r = await httpsRequest(s.port, { ca: suite.fx.ca.certPem, agent: false, servername: 'localhost' });
    expect(json(r.body).tls!.serverName).toBe('localhost');
  });

  it('refuses to talk to a client that does not trust the CA (client side check)', async () => {
    const s = await serve(describeHandler);
    await expect(httpsRequest(s.port, { agent: false })).rejects.toThrow(/self[- ]signed|unable to (get|verify)/i);
    // And the server is still fine.
    expect((await httpsRequest(s.port, { ca: suite.fx.ca.certPem, agent: false })).status).toBe(200);
  });

  it('keeps the connection alive: several requests, one connection, one handshake', async () => {
    const s = await serve(describeHandler);
    const before = tlsStats(s.engine);
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: suite.fx.ca.certPem });
    try {
      const ports = new Set<number>();
      for (let i = 0; i < 10; i++) {
        const r = await httpsRequest(s.port, { agent, path: `/r${i}` });
        expect(r.status).toBe(200);
        const d = json(r.body);
        expect(d.uri).toBe(`/r${i}`);
        ports.add(d.remotePort);
      }
      expect(ports.size).toBe(1);
      const after = tlsStats(s.engine);
      expect(after.tlsHandshakes - before.tlsHandshakes).toBe(1);
      expect(after.tlsResumed - before.tlsResumed).toBe(0);
    } finally {
      agent.destroy();
    }
  });

  it('POST bodies and Expect: 100-continue over TLS', async () => {
    const s = await serve((req) => {
      const parts: Buffer[] = [];
      req.input.on('data', (d: Buffer) => parts.push(d));
      req.input.on('end', () => req.sendResponse(200, [], sha(Buffer.concat(parts))));
    });
    const body = crypto.randomBytes(200_000);
    const r = await new Promise<string>((resolve, reject) => {
      const req = https.request(
        {
          host: '127.0.0.1',
          port: s.port,
          method: 'POST',
          path: '/up',
          ca: suite.fx.ca.certPem,
          agent: false,
          headers: { 'Content-Length': body.length, Expect: '100-continue' },
        },
        (res) => {
          let t = '';
          res.on('data', (d) => (t += d));
          res.on('end', () => resolve(t));
        },
      );
      req.on('error', reject);
      req.on('continue', () => req.end(body));
    });
    expect(r).toBe(sha(body));
  });

  it('Connection: close ends with close_notify: the client sees a clean end, no reset', async () => {
    const s = await serve((req) => req.sendResponse(200, ['Content-Type', 'text/plain'], 'bye'));
    const c = tlsClient(s.port, { ca: suite.fx.ca.certPem });
    let ended = false;
    c.sock.on('end', () => (ended = true));
    await c.secure;
    c.sock.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await waitFor(() => c.closed, 10000, 'the server to close');
    expect(ended).toBe(true); // 'end' = close_notify received (Node)
    expect(c.error).toBeUndefined();
    const [res] = parseResponses(c.data);
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('bye');
  });
});

describe('pipelining over a raw TLS socket', () => {
  it('pipelined requests then close_notify + FIN (half-close): answered when the handler is synchronous, as over plain HTTP', async () => {
    const s = await serve((req) => req.sendResponse(200, [], req.uri));
    for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
      const c = tlsClient(s.port, { ca: suite.fx.ca.certPem, maxVersion });
      await c.secure;
      c.sock.end('GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n');
      await waitFor(() => c.closed, 10000, 'close');
      expect(parseResponses(c.data).map((r) => r.body.toString())).toEqual(['/1', '/2']);
    }
  });

  it('answers pipelined requests in order (one write, mixed methods and bodies)', async () => {
    const s = await serve((req) => {
      const parts: Buffer[] = [];
      req.input.on('data', (d: Buffer) => parts.push(d));
      req.input.on('end', () => req.sendResponse(200, [], `${req.method} ${req.uri} ${Buffer.concat(parts).toString()}`));
    });
    const c = tlsClient(s.port, { ca: suite.fx.ca.certPem });
    await c.secure;
    c.sock.write(
      'GET /a HTTP/1.1\r\nHost: x\r\n\r\n' +
        'POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello' +
        'POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n' +
        'HEAD /d HTTP/1.1\r\nHost: x\r\n\r\n' +
        'GET /e HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    await waitFor(() => c.closed, 10000, 'the server to close');
    const rs = parseResponses(c.data, { headRequests: [3] });
    expect(rs.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    expect(rs.map((r) => r.body.toString())).toEqual(['GET /a ', 'POST /b hello', 'POST /c abc', '', 'GET /e ']);
    c.sock.destroy();
  });

  it('200 pipelined requests written in odd-sized pieces, async handler: all answered in order', async () => {
    const s = await serve((req) => {
      setTimeout(() => req.sendResponse(200, [], `${req.uri}`), Math.random() < 0.3 ? 2 : 0);
    });
    const c = tlsClient(s.port, { ca: suite.fx.ca.certPem });
    await c.secure;
    const all = Buffer.from(
      Array.from({ length: 200 }, (_, i) => `GET /p${i} HTTP/1.1\r\nHost: x\r\nX-Pad: ${'y'.repeat(i * 7)}\r\n\r\n`).join(''),
    );
    for (let off = 0, step = 1; off < all.length; off += step, step = (step * 7 + 13) % 5000 + 1) {
      c.sock.write(all.subarray(off, off + step));
    }
    await waitFor(() => parseResponses(c.data).length >= 200, 20000, '200 responses');
    const rs = parseResponses(c.data);
    expect(rs.map((r) => r.body.toString())).toEqual(Array.from({ length: 200 }, (_, i) => `/p${i}`));
    c.sock.destroy();
  });
});

describe('TLS records on the wire', () => {
  /** A TCP proxy in front of the server that records what the server sends. */
  async function recordingProxy(port: number) {
    let fromServer = Buffer.alloc(0);
    const proxy = net.createServer((down) => {
      const up = net.connect(port, '127.0.0.1');
      down.on('data', (d) => up.write(d));
      up.on('data', (d: Buffer) => {
        fromServer = Buffer.concat([fromServer, d]);
        down.write(d);
      });
      up.on('close', () => down.destroy());
      down.on('close', () => up.destroy());
      up.on('error', () => {});
      down.on('error', () => {});
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    return {
      port: (proxy.address() as net.AddressInfo).port,
      get length() {
        return fromServer.length;
      },
      /** TLS records (content type, length) from byte offset `from`. */
      records(from: number) {
        const out: Array<{ type: number; length: number }> = [];
        for (let p = from; p + 5 <= fromServer.length; ) {
          const length = fromServer.readUInt16BE(p + 3);
          out.push({ type: fromServer[p], length });
          p += 5 + length;
        }
        return out;
      },
      close: () => proxy.close(),
    };
  }

  it('TLS 1.2: every way the server closes a connection after the handshake ends with close_notify', async () => {
    const s = await startTlsServer((req) => req.sendResponse(200, [], 'ok'), { key: suite.fx.server.key, cert: suite.fx.server.cert }, {
      keepaliveTimeout: 1,
      headerTimeout: 1,
    });
    suite.servers.push(s);
    const proxy = await recordingProxy(s.port);
    try {
      const results: Record<string, string> = {};
      for (const [how, request] of [
        ['Connection: close', 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'],
        ['keepaliveTimeout on an idle connection', 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'],
        ['headerTimeout in the middle of a head (408)', 'GET / HTTP/1.1\r\n'],
      ]) {
        const mark = proxy.length;
        const c = tlsClient(proxy.port, { ca: suite.fx.ca.certPem, servername: 'localhost', maxVersion: 'TLSv1.2' });
        await c.secure;
        await sleep(50);
        c.sock.write(request);
        await waitFor(() => c.closed, 5000, `${how}: close`);
        await sleep(50);
        const recs = proxy.records(mark);
        // The last record the server sent: an alert (21 = close_notify, encrypted) rather than data.
        results[how] = recs[recs.length - 1]?.type === 0x15 ? 'close_notify' : `last record type ${recs[recs.length - 1]?.type}`;
      }
      expect(results).toEqual({
        'Connection: close': 'close_notify',
        'keepaliveTimeout on an idle connection': 'close_notify',
        'headerTimeout in the middle of a head (408)': 'close_notify',
      });
    } finally {
      proxy.close();
    }
  });

  for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
    it(`${maxVersion}: a response is one TLS record; 16 pipelined responses share one record`, async () => {
      const s = await serve((req) => req.sendResponse(200, ['Content-Type', 'text/plain'], `hello ${req.uri}`));
      const proxy = await recordingProxy(s.port);
      try {
        const c = tlsClient(proxy.port, { ca: suite.fx.ca.certPem, servername: 'localhost', maxVersion });
        await c.secure;
        await sleep(200); // TLS 1.3: the session tickets come after the handshake
        for (const n of [1, 16]) {
          const mark = proxy.length;
          const had = parseResponses(c.data).length;
          c.sock.write(Array.from({ length: n }, (_, i) => `GET /r${i} HTTP/1.1\r\nHost: x\r\n\r\n`).join(''));
          await waitFor(() => parseResponses(c.data).length === had + n, 10000, `${n} responses`);
          await sleep(50);
          const recs = proxy.records(mark);
          expect(recs.map((r) => r.type)).toEqual([0x17]); // one application-data record
        }
        c.sock.destroy();
      } finally {
        proxy.close();
      }
    });
  }
});

describe('undici', () => {
  it('Agent with the CA: keep-alive', async () => {
    const s = await serve(describeHandler);
    const agent = new Agent({ connect: { ca: suite.fx.ca.certPem }, connections: 1 });
    try {
      const ports = new Set<number>();
      for (let i = 0; i < 5; i++) {
        const r = await agent.request({ origin: `https://127.0.0.1:${s.port}`, path: `/u${i}`, method: 'GET' });
        expect(r.statusCode).toBe(200);
        const d = (await r.body.json()) as Described;
        expect(d.uri).toBe(`/u${i}`);
        expect(d.scheme).toBe('https');
        ports.add(d.remotePort);
      }
      expect(ports.size).toBe(1);
    } finally {
      await agent.close();
    }
  });

  it('Client with pipelining: 20 requests in flight on one connection', async () => {
    const s = await serve((req) => setTimeout(() => describeHandler(req), 5));
    const client = new Client(`https://127.0.0.1:${s.port}`, { connect: { ca: suite.fx.ca.certPem }, pipelining: 20 });
    try {
      const rs = await Promise.all(
        Array.from({ length: 20 }, async (_, i) => {
          const r = await client.request({ path: `/q${i}`, method: 'GET' });
          return (await r.body.json()) as Described;
        }),
      );
      expect(rs.map((d) => d.uri)).toEqual(Array.from({ length: 20 }, (_, i) => `/q${i}`));
      expect(new Set(rs.map((d) => d.remotePort)).size).toBe(1);
    } finally {
      await client.close();
    }
  });
});

describe('curl', () => {
  it('curl --cacert: GET, verified, TLS 1.2 and 1.3', async () => {
    const s = await serve(describeHandler);
    for (const [flags, proto] of [
      [['--tlsv1.2', '--tls-max', '1.2'], 'TLSv1.2'],
      [['--tlsv1.3'], 'TLSv1.3'],
    ] as const) {
      const r = await curl(s.port, ['--cacert', suite.fx.ca.cert, ...flags]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const [body, code] = r.stdout.split('\n');
      expect(code).toBe('200');
      const d = JSON.parse(body) as Described;
      expect(d.tls!.protocol).toBe(proto);
      expect(d.scheme).toBe('https');
    }
  });

  it('curl without the CA refuses the certificate (exit 60), server unaffected', async () => {
    const s = await serve(describeHandler);
    const bad = await curl(s.port, []);
    expect(bad.code).toBe(60);
    const good = await curl(s.port, ['--cacert', suite.fx.ca.cert]);
    expect(good.code).toBe(0);
  });
});

describe('50 MB over TLS', () => {
  const SIZE = 50 * 1024 * 1024;
  let big: Buffer;
  beforeAll(() => {
    big = crypto.randomBytes(SIZE);
  });

  it('upload: 50 MB POST, exact sha256 on the server', async () => {
    const s = await serve((req) => {
      const h = crypto.createHash('sha256');
      let n = 0;
      req.input.on('data', (d: Buffer) => {
        h.update(d);
        n += d.length;
      });
      req.input.on('end', () => req.sendResponse(200, [], `${h.digest('hex')} ${n}`));
    });
    const r = await new Promise<string>((resolve, reject) => {
      const req = https.request(
        { host: '127.0.0.1', port: s.port, method: 'POST', path: '/up', ca: suite.fx.ca.certPem, agent: false, headers: { 'Content-Length': SIZE } },
        (res) => {
          let t = '';
          res.on('data', (d) => (t += d));
          res.on('end', () => resolve(t));
        },
      );
      req.on('error', reject);
      for (let i = 0; i < SIZE; i += 1024 * 1024) req.write(big.subarray(i, i + 1024 * 1024));
      req.end();
    });
    expect(r).toBe(`${sha(big)} ${SIZE}`);
  }, 120000);

  it('upload: 50 MB while the application pauses its input now and then (backpressure through TLS), exact sha256', async () => {
    const s = await serve((req) => {
      const h = crypto.createHash('sha256');
      let n = 0;
      let nextPause = 5 * 1024 * 1024;
      req.input.on('data', (d: Buffer) => {
        h.update(d);
        n += d.length;
        if (n >= nextPause) {
          nextPause += 10 * 1024 * 1024;
          req.input.pause();
          setTimeout(() => req.input.resume(), 300);
        }
      });
      req.input.on('end', () => req.sendResponse(200, [], `${h.digest('hex')} ${n}`));
    });
    const r = await new Promise<string>((resolve, reject) => {
      const req = https.request(
        { host: '127.0.0.1', port: s.port, method: 'POST', path: '/up', ca: suite.fx.ca.certPem, agent: false, headers: { 'Content-Length': SIZE } },
        (res) => {
          let t = '';
          res.on('data', (d) => (t += d));
          res.on('end', () => resolve(t));
        },
      );
      req.on('error', reject);
      // Written with backpressure: the client only goes on when the socket drains.
      let off = 0;
      const pump = () => {
        while (off < SIZE) {
          const ok = req.write(big.subarray(off, off + 256 * 1024));
          off += 256 * 1024;
          if (!ok) return void req.once('drain', pump);
        }
        req.end();
      };
      pump();
    });
    expect(r).toBe(`${sha(big)} ${SIZE}`);
  }, 120000);

  it('upload: 50 MB chunked with curl --data-binary, exact sha256', async () => {
    const s = await serve((req) => {
      const h = crypto.createHash('sha256');
      let n = 0;
      req.input.on('data', (d: Buffer) => {
        h.update(d);
        n += d.length;
      });
      req.input.on('end', () => req.sendResponse(200, [], `${h.digest('hex')} ${n}`));
    });
    const file = path.join(suite.fx.dir, 'upload.bin');
    fs.writeFileSync(file, big);
    try {
      const r = await curl(s.port, ['--cacert', suite.fx.ca.cert, '-H', 'Transfer-Encoding: chunked', '--data-binary', `@${file}`], '/up');
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe(`${sha(big)} ${SIZE}\n200`);
    } finally {
      fs.rmSync(file, { force: true });
    }
  }, 120000);

  it('download: 50 MB in one sendResponse, exact sha256', async () => {
    const s = await serve((req) => req.sendResponse(200, ['Content-Type', 'application/octet-stream'], big));
    const r = await httpsRequest(s.port, { ca: suite.fx.ca.certPem, agent: false });
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(SIZE);
    expect(sha(r.body)).toBe(sha(big));
  }, 120000);

  it('download: 50 MB streamed (chunked, pollCb), read slowly by curl, exact sha256', async () => {
    const s = await serve((req) => {
      const w: Writer = req.startStreaming(200, ['Content-Type', 'application/octet-stream']);
      let off = 0;
      w.pollCb((wr) => {
        if (off >= SIZE) {
          wr.pollCb(null);
          wr.close();
          return;
        }
        const piece = 100_003; // not a multiple of the TLS record size
        wr.write(big.subarray(off, off + piece));
        off += piece;
      });
    });
    const file = path.join(suite.fx.dir, 'download.bin');
    try {
      const r = await run('curl', [
        '-sS', '--max-time', '100', '--limit-rate', '20M', '--cacert', suite.fx.ca.cert, '-o', file, '-w', '%{http_code}',
        `https://127.0.0.1:${s.port}/`,
      ], { timeout: 110000 });
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('200');
      const got = fs.readFileSync(file);
      expect(got.length).toBe(SIZE);
      expect(sha(got)).toBe(sha(big));
    } finally {
      fs.rmSync(file, { force: true });
    }
  }, 120000);
});

describe('HTTP and HTTPS listeners on one engine', () => {
  it('serves both: scheme and req.tls per listener; each port refuses the other protocol', async () => {
    const engine = new Feersum();
    engine.requestHandler(describeHandler);
    engine.onError(() => {});
    suite.servers.push({ engine, port: 0, errors: [], close: () => engine.gracefulShutdown() });
    const plain = await engine.listen({ host: '127.0.0.1', port: 0 });
    const secure = await engine.listen({ host: '127.0.0.1', port: 0, tls: { key: suite.fx.server.keyPem, cert: suite.fx.server.certPem } });
    const plain2 = await engine.listen({ host: '127.0.0.1', port: 0 });

    for (let round = 0; round < 2; round++) {
      for (const port of [plain.port, plain2.port]) {
        const d = await new Promise<Described>((resolve, reject) => {
          http
            .get({ host: '127.0.0.1', port, path: '/plain', agent: false }, (res) => {
              let t = '';
              res.on('data', (c) => (t += c));
              res.on('end', () => resolve(JSON.parse(t)));
            })
            .on('error', reject);
        });
        expect(d.scheme).toBe('http');
        expect(d.tls).toBeNull();
      }
      const r = await httpsRequest(secure.port, { ca: suite.fx.ca.certPem, agent: false, path: '/secure' });
      const d = json(r.body);
      expect(d.scheme).toBe('https');
      expect(d.tls!.protocol).toMatch(/^TLSv1\.[23]$/);
    }

    // TLS to the plain port: the client gets an HTTP 400 (not TLS) and fails.
    await expect(httpsRequest(plain.port, { ca: suite.fx.ca.certPem, agent: false })).rejects.toThrow();
    // Plain HTTP to the TLS port: closed.
    const closed = await new Promise<{ data: Buffer }>((resolve) => {
      const sock = net.connect(secure.port, '127.0.0.1', () => sock.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
      const parts: Buffer[] = [];
      sock.on('data', (d) => parts.push(d));
      sock.on('error', () => {});
      sock.on('close', () => resolve({ data: Buffer.concat(parts) }));
    });
    expect(closed.data.toString('latin1')).not.toMatch(/^HTTP\//);
    // Both still serve.
    expect((await httpsRequest(secure.port, { ca: suite.fx.ca.certPem, agent: false })).status).toBe(200);
    expect(tlsStats(engine).tlsHandshakes).toBeGreaterThanOrEqual(3);
  });
});

describe('gracefulShutdown() with TLS connections', () => {
  it('an idle keep-alive connection gets close_notify; an in-flight request finishes first', async () => {
    const s = await startTlsServer(
      (req) => {
        if (req.uri === '/slow') setTimeout(() => req.sendResponse(200, [], 'slow done'), 300);
        else req.sendResponse(200, [], 'quick');
      },
      { key: suite.fx.server.key, cert: suite.fx.server.cert },
    );
    const idle = tlsClient(s.port, { ca: suite.fx.ca.certPem });
    const busy = tlsClient(s.port, { ca: suite.fx.ca.certPem });
    await Promise.all([idle.secure, busy.secure]);
    let idleEnded = false;
    idle.sock.on('end', () => (idleEnded = true));
    idle.sock.write('GET /quick HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor(() => parseResponses(idle.data).length === 1, 5000, 'first response');
    busy.sock.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n');
    await sleep(50);
    const done = s.close();
    await waitFor(() => idle.closed, 5000, 'the idle connection to close');
    expect(idleEnded).toBe(true); // close_notify, not a reset
    expect(idle.error).toBeUndefined();
    await done;
    await waitFor(() => busy.closed, 5000, 'the busy connection to close');
    const [res] = parseResponses(busy.data);
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('slow done');
    expect(busy.error).toBeUndefined();
  });
});

describe('cleanup', () => {
  it('after everything above: no open connections, fd count back to baseline', async () => {
    for (const s of suite.servers) await waitFor(() => s.engine.stats().connections === 0, 10000, 'connections to close');
    for (const s of suite.servers.splice(0)) await s.close();
    await sleep(100);
    await waitFor(() => openFdCount() <= suite.baselineFds, 10000, `fds back to ${suite.baselineFds} (now ${openFdCount()})`);
  });
});
