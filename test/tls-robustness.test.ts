// Bad input around TLS: broken certificates and keys refused by listen()
// (and nothing bound), plain HTTP to the TLS port, garbage and broken
// handshakes, stalled handshakes closed by the headerTimeout deadline,
// handshakes arriving a byte at a time, clients vanishing mid-handshake and
// mid-response, client certificates failing verification; fd count back to
// the baseline at the end.
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';

import { describe, expect, it } from 'vitest';

import { Feersum } from '../lib/index';
import { openFdCount, parseResponses, sleep, waitFor } from './helpers';
import {
  type Described,
  describeHandler,
  ENCRYPTED_PASSPHRASE,
  httpsRequest,
  startTlsServer,
  tlsClient,
  type TlsListenOptions,
  tlsSuite,
} from './tls-certs';

const suite = tlsSuite();

async function serve(extra: Partial<TlsListenOptions> = {}, engineOptions = {}) {
  const s = await startTlsServer(describeHandler, { key: suite.fx.server.key, cert: suite.fx.server.cert, ...extra }, engineOptions);
  suite.servers.push(s);
  return s;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** True when 127.0.0.1:port can be bound (nothing listens there). */
function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** A raw TCP client: what it received, and when it was closed (ms after connect). */
function rawClient(port: number) {
  const sock = net.connect(port, '127.0.0.1');
  let buf = Buffer.alloc(0);
  let connectedAt = 0;
  let closedAfter = -1;
  const connected = new Promise<void>((r) =>
    sock.once('connect', () => {
      connectedAt = Date.now();
      r();
    }),
  );
  sock.on('data', (d) => (buf = Buffer.concat([buf, d])));
  sock.on('error', () => {});
  sock.on('close', () => (closedAfter = Date.now() - connectedAt));
  return {
    sock,
    connected,
    get data() {
      return buf;
    },
    get closed() {
      return closedAfter >= 0;
    },
    get closedAfter() {
      return closedAfter;
    },
  };
}

/** The first bytes of a real ClientHello (captured from Node's tls client through a local server). */
async function captureClientHello(): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer((c) => {
      c.once('data', (d) => {
        resolve(d);
        c.destroy();
        srv.close();
      });
    });
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      const t = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
      t.on('error', () => {});
    });
    srv.on('error', reject);
  });
}

describe('listen() refuses bad TLS configurations, binding nothing', () => {
  const garbageCert = '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n';
  const garbageKey = '-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n';
  const cases: Array<[string, () => TlsListenOptions, RegExp]> = [
    ['missing certificate file', () => ({ key: suite.fx.server.key, cert: path.join(suite.fx.dir, 'nope.pem') }), /cannot read TLS cert file .*nope\.pem/],
    ['missing key file', () => ({ key: path.join(suite.fx.dir, 'nope.key'), cert: suite.fx.server.cert }), /cannot read TLS key file .*nope\.key/],
    ['missing CA file', () => ({ key: suite.fx.server.key, cert: suite.fx.server.cert, ca: path.join(suite.fx.dir, 'nope-ca.pem') }), /cannot read TLS ca file/],
    ['a directory as the certificate', () => ({ key: suite.fx.server.key, cert: suite.fx.dir }), /cannot read TLS cert file/],
    ['key not matching the certificate', () => ({ key: suite.fx.other.key, cert: suite.fx.server.cert }), /TLS configuration refused: .*does not match/],
    ['key not matching the certificate (PEM strings)', () => ({ key: suite.fx.client.keyPem, cert: suite.fx.server.certPem }), /TLS configuration refused: .*does not match/],
    ['wrong passphrase', () => ({ key: suite.fx.encrypted.key, cert: suite.fx.encrypted.cert, passphrase: 'wrong' }), /TLS configuration refused: .*passphrase/],
    ['encrypted key without a passphrase', () => ({ key: suite.fx.encrypted.key, cert: suite.fx.encrypted.cert }), /TLS configuration refused: .*passphrase/],
    ['garbage PEM certificate', () => ({ key: suite.fx.server.key, cert: garbageCert }), /TLS configuration refused: .*certificate/],
    ['garbage PEM key', () => ({ key: garbageKey, cert: suite.fx.server.cert }), /TLS configuration refused: .*private key/],
    ['certificate file holding no PEM at all', () => {
      const f = path.join(suite.fx.dir, 'junk.pem');
      fs.writeFileSync(f, 'just some text\n');
      return { key: suite.fx.server.key, cert: f };
    }, /TLS configuration refused: .*certificate/],
    ['empty key file', () => {
      const f = path.join(suite.fx.dir, 'empty.key');
      fs.writeFileSync(f, '');
      return { key: f, cert: suite.fx.server.cert };
    }, /TLS configuration refused|cannot read/],
    ['certificate and key swapped', () => ({ key: suite.fx.server.cert, cert: suite.fx.server.key }), /TLS configuration refused/],
    ['garbage CA', () => ({ key: suite.fx.server.key, cert: suite.fx.server.cert, ca: garbageCert, requestCert: true }), /TLS configuration refused: .*CA/],
    ['unknown TLS 1.2 cipher list', () => ({ key: suite.fx.server.key, cert: suite.fx.server.cert, ciphers: 'NOT-A-CIPHER' }), /TLS configuration refused: .*cipher/],
    ['unknown TLS 1.3 suite', () => ({ key: suite.fx.server.key, cert: suite.fx.server.cert, ciphers: 'TLS_NOT_A_SUITE' }), /TLS configuration refused: .*cipher/i],
    ['minVersion TLSv1.1', () => ({ key: suite.fx.server.key, cert: suite.fx.server.cert, minVersion: 'TLSv1.1' as 'TLSv1.2' }), /minVersion/],
    ['ticketKeys of the wrong size', () => ({ key: suite.fx.server.key, cert: suite.fx.server.cert, ticketKeys: Buffer.alloc(48) }), /ticketKeys/],
    ['an SNI identity with a mismatched key', () => ({
      key: suite.fx.server.key,
      cert: suite.fx.server.cert,
      sni: { 'other.test': { key: suite.fx.server.key, cert: suite.fx.other.cert } },
    }), /TLS configuration refused: SNI 'other\.test': .*does not match/],
    ['an SNI identity with a wrong passphrase', () => ({
      key: suite.fx.server.key,
      cert: suite.fx.server.cert,
      sni: { 'enc.test': { key: suite.fx.encrypted.key, cert: suite.fx.encrypted.cert, passphrase: 'nope' } },
    }), /SNI 'enc\.test'.*passphrase/],
    ['empty key string', () => ({ key: '', cert: suite.fx.server.cert }), /tls\.key/],
  ];

  for (const [name, make, re] of cases) {
    it(`${name}: listen() rejects (${re}), the port stays free`, async () => {
      const engine = new Feersum();
      engine.requestHandler(describeHandler);
      const port = await freePort();
      const fds = openFdCount();
      await expect(engine.listen({ host: '127.0.0.1', port, tls: make() })).rejects.toThrow(re);
      expect(openFdCount()).toBe(fds);
      expect(await portIsFree(port)).toBe(true);
      // The engine is fine: a good configuration listens on that very port.
      await engine.listen({ host: '127.0.0.1', port, tls: { key: suite.fx.server.key, cert: suite.fx.server.cert } });
      expect((await httpsRequest(port, { ca: suite.fx.ca.certPem, agent: false })).status).toBe(200);
      await engine.gracefulShutdown();
      expect(await portIsFree(port)).toBe(true);
    });
  }

  it('the encrypted key with the right passphrase serves', async () => {
    const s = await serve({ key: suite.fx.encrypted.key, cert: suite.fx.encrypted.cert, passphrase: ENCRYPTED_PASSPHRASE });
    const c = tlsClient(s.port, { ca: suite.fx.ca.certPem });
    await c.secure;
    expect(c.sock.getPeerCertificate().subject.O).toBe('Encrypted Key');
    c.sock.destroy();
  });

  it('an SNI identity with an encrypted key and its passphrase serves', async () => {
    const s = await serve({ sni: { 'localhost': { key: suite.fx.encrypted.key, cert: suite.fx.encrypted.cert, passphrase: ENCRYPTED_PASSPHRASE } } });
    const c = tlsClient(s.port, { ca: suite.fx.ca.certPem, servername: 'localhost' });
    await c.secure;
    expect(c.sock.getPeerCertificate().subject.O).toBe('Encrypted Key');
    c.sock.destroy();
  });
});

describe('not TLS, broken TLS', () => {
  it('plain HTTP to the TLS port: closed without an HTTP answer; the server keeps serving', async () => {
    const s = await serve();
    const clients = Array.from({ length: 20 }, () => rawClient(s.port));
    for (const c of clients) {
      await c.connected;
      c.sock.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    }
    for (const c of clients) await waitFor(() => c.closed, 5000, 'plain HTTP client closed');
    for (const c of clients) expect(c.data.toString('latin1')).not.toMatch(/^HTTP\//);
    // Closed at once, not at a timeout.
    expect(Math.max(...clients.map((c) => c.closedAfter))).toBeLessThan(2000);
    await waitFor(() => s.engine.stats().connections === 0, 5000, 'no connections');
    expect((await httpsRequest(s.port, { ca: suite.fx.ca.certPem, agent: false })).status).toBe(200);
  });

  it('random bytes, a bogus TLS record, a ClientHello with nothing acceptable: closed at once', async () => {
    const s = await serve();
    const hello = await captureClientHello();
    expect(hello[0]).toBe(0x16);
    const corrupt = Buffer.from(hello);
    for (let i = 60; i < corrupt.length; i += 3) corrupt[i] ^= 0x5a; // mangle the extensions
    const inputs: Buffer[] = [
      crypto.randomBytes(4096),
      Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0xff, 0xff, 0xff, 0xff, 0xff]), // handshake record, unknown message
      Buffer.from([0x17, 0x03, 0x03, 0x00, 0x10, ...crypto.randomBytes(16)]), // application data before any handshake
      Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0x00, 0xff, 0xfb]), // record length 65535: over any TLS limit
      corrupt,
    ];
    for (const input of inputs) {
      const c = rawClient(s.port);
      await c.connected;
      c.sock.write(input);
      await waitFor(() => c.closed, 5000, `closed after ${input.subarray(0, 8).toString('hex')}`);
      expect(c.closedAfter).toBeLessThan(2000);
      // Whatever came back is a TLS alert record or nothing.
      if (c.data.length) expect(c.data[0]).toBe(0x15);
    }
    // TLS 1.2 with ciphers the server does not have.
    const mism = await serve({ ciphers: 'ECDHE-RSA-AES256-GCM-SHA384' });
    const t = tlsClient(mism.port, { ca: suite.fx.ca.certPem, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' });
    await expect(t.secure).rejects.toThrow(/handshake failure|no shared cipher|alert/i);
    await waitFor(() => s.engine.stats().connections === 0 && mism.engine.stats().connections === 0, 5000, 'no connections');
    expect((await httpsRequest(s.port, { ca: suite.fx.ca.certPem, agent: false })).status).toBe(200);
  });

  it('clients vanishing mid-handshake (after the ClientHello, or half of it) leave nothing behind', async () => {
    const s = await serve();
    const hello = await captureClientHello();
    for (let i = 0; i < 30; i++) {
      const c = rawClient(s.port);
      await c.connected;
      c.sock.write(i % 2 ? hello : hello.subarray(0, hello.length >> 1));
      if (i % 3 === 0) await sleep(5);
      c.sock.destroy();
    }
    await waitFor(() => s.engine.stats().connections === 0, 5000, 'no connections');
    expect((await httpsRequest(s.port, { ca: suite.fx.ca.certPem, agent: false })).status).toBe(200);
  });

  it('a handshake and request arriving one byte per TCP segment complete', async () => {
    const s = await serve();
    // A proxy that forwards the client's bytes one at a time.
    const proxy = net.createServer((down) => {
      const up = net.connect(s.port, '127.0.0.1');
      up.setNoDelay(true);
      let chain = Promise.resolve();
      down.on('data', (d: Buffer) => {
        down.pause();
        chain = chain.then(async () => {
          for (const b of d) {
            up.write(Buffer.from([b]));
            await new Promise((r) => setImmediate(r));
          }
          down.resume();
        });
      });
      up.on('data', (d) => down.write(d));
      up.on('end', () => down.end());
      down.on('end', () => chain.then(() => up.end()));
      up.on('error', () => down.destroy());
      down.on('error', () => up.destroy());
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    try {
      const port = (proxy.address() as net.AddressInfo).port;
      const r = await httpsRequest(port, { ca: suite.fx.ca.certPem, agent: false, path: '/byte-by-byte' });
      expect(r.status).toBe(200);
      expect((JSON.parse(r.body.toString()) as Described).uri).toBe('/byte-by-byte');
    } finally {
      proxy.close();
    }
    await waitFor(() => s.engine.stats().connections === 0, 5000, 'no connections');
  });

  it('a client certificate failing verification (require): connection closed, nothing served', async () => {
    const s = await serve({ ca: suite.fx.ca.cert, requestCert: true, rejectUnauthorized: true });
    for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
      const c = tlsClient(s.port, { ca: suite.fx.ca.certPem, maxVersion, cert: suite.fx.rogueClient.certPem, key: suite.fx.rogueClient.keyPem });
      c.sock.on('secureConnect', () => c.sock.write('GET /nope HTTP/1.1\r\nHost: x\r\n\r\n'));
      await waitFor(() => c.closed, 5000, `${maxVersion} client closed`);
      expect(c.data.length).toBe(0);
      expect(c.error?.message).toMatch(/unknown ca|alert/i);
    }
    await waitFor(() => s.engine.stats().connections === 0, 5000, 'no connections');
  });

  it('a client leaving in the middle of a 20 MB response: connection cleaned up', async () => {
    const big = crypto.randomBytes(20 * 1024 * 1024);
    const s = await startTlsServer((req) => req.sendResponse(200, [], big), { key: suite.fx.server.key, cert: suite.fx.server.cert });
    suite.servers.push(s);
    for (let i = 0; i < 3; i++) {
      const c = tlsClient(s.port, { ca: suite.fx.ca.certPem });
      await c.secure;
      c.sock.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      await waitFor(() => c.data.length > 1024 * 1024, 10000, 'some of the response');
      c.sock.destroy();
    }
    await waitFor(() => s.engine.stats().connections === 0, 10000, 'no connections');
  });
});

describe('the headerTimeout deadline covers the handshake', () => {
  const opts = { headerTimeout: 1 };

  it('connect and send nothing: closed after about headerTimeout', async () => {
    const s = await serve({}, opts);
    const c = rawClient(s.port);
    await c.connected;
    await waitFor(() => c.closed, 5000, 'closed');
    expect(c.closedAfter).toBeGreaterThanOrEqual(900);
    expect(c.closedAfter).toBeLessThan(3000);
    expect(c.data.length).toBe(0);
  });

  it('half a ClientHello, then nothing: closed after about headerTimeout', async () => {
    const s = await serve({}, opts);
    const hello = await captureClientHello();
    const c = rawClient(s.port);
    await c.connected;
    c.sock.write(hello.subarray(0, hello.length >> 1));
    await waitFor(() => c.closed, 5000, 'closed');
    expect(c.closedAfter).toBeGreaterThanOrEqual(900);
    expect(c.closedAfter).toBeLessThan(3000);
  });

  it('a ClientHello dribbled in one byte every 100 ms: closed at the deadline, not reset by each byte', async () => {
    const s = await serve({}, opts);
    const hello = await captureClientHello();
    const c = rawClient(s.port);
    await c.connected;
    c.sock.setNoDelay(true);
    for (let i = 0; i < hello.length && !c.closed; i++) {
      c.sock.write(hello.subarray(i, i + 1));
      await sleep(100);
      if (i > 40) break;
    }
    await waitFor(() => c.closed, 5000, 'closed');
    expect(c.closedAfter).toBeLessThan(3000);
  });

  it('handshake done, then no request (or half a head): closed at the deadline', async () => {
    const s = await serve({}, opts);
    for (const partial of ['', 'GET / HTTP/1.1\r\nHost: x\r\n']) {
      const t0 = Date.now();
      const c = tlsClient(s.port, { ca: suite.fx.ca.certPem });
      await c.secure;
      if (partial) c.sock.write(partial);
      await waitFor(() => c.closed, 5000, 'closed');
      const after = Date.now() - t0;
      expect(after).toBeGreaterThanOrEqual(900);
      expect(after).toBeLessThan(3000);
      // If anything was said, it is an HTTP 408 inside TLS.
      if (c.data.length) expect(parseResponses(c.data, { toEnd: true })[0].status).toBe(408);
    }
    await waitFor(() => s.engine.stats().connections === 0, 5000, 'no connections');
  });

  it('a prompt client on the same server is unaffected', async () => {
    const s = await serve({}, opts);
    const stalled = Array.from({ length: 10 }, () => rawClient(s.port));
    for (let i = 0; i < 5; i++) {
      expect((await httpsRequest(s.port, { ca: suite.fx.ca.certPem, agent: false })).status).toBe(200);
      await sleep(100);
    }
    for (const c of stalled) await waitFor(() => c.closed, 5000, 'stalled client closed');
  });
});

describe('cleanup', () => {
  it('after everything above: fd count back to baseline', async () => {
    for (const s of suite.servers) await waitFor(() => s.engine.stats().connections === 0, 10000, 'connections to close');
    for (const s of suite.servers.splice(0)) await s.close();
    await sleep(100);
    await waitFor(() => openFdCount() <= suite.baselineFds, 10000, `fds back to ${suite.baselineFds} (now ${openFdCount()})`);
  });
});
