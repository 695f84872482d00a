// engine.reloadTls(): certificate files replaced on disk and re-read; new
// connections get the new certificate, open connections keep theirs and go
// on working; a broken replacement throws and changes nothing; SNI and CA
// files are re-read too; reloading while connections are mid-handshake.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Feersum } from '../lib/index';
import { openFdCount, parseResponses, sleep, waitFor } from './helpers';
import {
  type CertFiles,
  type Described,
  describeHandler,
  type Fixtures,
  httpsRequest,
  makeFixtures,
  makeLeaf,
  removeFixtures,
  startTlsServer,
  tlsClient,
  type TlsListenOptions,
  type TlsServer,
} from './tls-certs';

let fx: Fixtures;
let replacement: CertFiles; // CN=localhost, O=Reloaded, serial 3003
let otherReplacement: CertFiles; // CN=other.test, O=Reloaded, serial 3004
let baselineFds = 0;
const servers: TlsServer[] = [];

beforeAll(async () => {
  baselineFds = openFdCount();
  fx = await makeFixtures();
  [replacement, otherReplacement] = await Promise.all([
    makeLeaf(fx.dir, 'replacement', fx.ca, { subject: '/CN=localhost/O=Reloaded', san: 'DNS:localhost,IP:127.0.0.1', serial: '0x3003' }),
    makeLeaf(fx.dir, 'other-replacement', fx.ca, { subject: '/CN=other.test/O=Reloaded', san: 'DNS:other.test', serial: '0x3004' }),
  ]);
}, 60000);

afterAll(async () => {
  for (const s of servers.splice(0)) await s.close();
  removeFixtures(fx);
});

let seq = 0;
/** Copies of a certificate and key under new names, so a test can overwrite them. */
function liveCopy(from: CertFiles): { cert: string; key: string } {
  const n = ++seq;
  const cert = path.join(fx.dir, `live-${n}.pem`);
  const key = path.join(fx.dir, `live-${n}.key`);
  fs.copyFileSync(from.cert, cert);
  fs.copyFileSync(from.key, key);
  return { cert, key };
}

function replaceFiles(live: { cert: string; key: string }, by: CertFiles) {
  // Write to a temporary name and rename, as deployment tools do.
  fs.writeFileSync(`${live.cert}.tmp`, by.certPem);
  fs.writeFileSync(`${live.key}.tmp`, by.keyPem);
  fs.renameSync(`${live.cert}.tmp`, live.cert);
  fs.renameSync(`${live.key}.tmp`, live.key);
}

async function serve(tlsOptions: TlsListenOptions) {
  const s = await startTlsServer(describeHandler, tlsOptions);
  servers.push(s);
  return s;
}

/** The serial of the certificate a new connection gets (hex, as Node prints it). */
async function servedSerial(port: number, servername?: string): Promise<string> {
  const c = tlsClient(port, { ca: fx.ca.certPem, servername });
  await c.secure;
  const serial = c.sock.getPeerCertificate().serialNumber.toUpperCase();
  c.sock.destroy();
  return serial;
}

/** One request on an open TLS connection (keep-alive). */
async function requestOn(c: ReturnType<typeof tlsClient>, uri: string): Promise<Described> {
  const had = parseResponses(c.data).length;
  c.sock.write(`GET ${uri} HTTP/1.1\r\nHost: x\r\n\r\n`);
  await waitFor(() => parseResponses(c.data).length > had, 10000, `response to ${uri}`);
  return JSON.parse(parseResponses(c.data)[had].body.toString()) as Described;
}

describe('reloadTls()', () => {
  it('new connections get the replaced certificate; an open keep-alive connection keeps working', async () => {
    const live = liveCopy(fx.server);
    const s = await serve({ ...live });
    const old = tlsClient(s.port, { ca: fx.ca.certPem });
    await old.secure;
    expect(old.sock.getPeerCertificate().serialNumber.toUpperCase()).toBe('1001');
    const first = await requestOn(old, '/before');
    expect(await servedSerial(s.port)).toBe('1001');

    replaceFiles(live, replacement);
    // Nothing changes until reloadTls().
    expect(await servedSerial(s.port)).toBe('1001');
    s.engine.reloadTls();

    const fresh = tlsClient(s.port, { ca: fx.ca.certPem });
    await fresh.secure;
    const cert = fresh.sock.getPeerCertificate();
    expect(cert.serialNumber.toUpperCase()).toBe('3003');
    expect(cert.subject.O).toBe('Reloaded');
    expect((await requestOn(fresh, '/fresh')).uri).toBe('/fresh');

    // The old connection: same socket, still served, still the old certificate.
    const again = await requestOn(old, '/after');
    expect(again.uri).toBe('/after');
    expect(again.remotePort).toBe(first.remotePort);
    expect(old.closed).toBe(false);
    expect(old.sock.getPeerCertificate().serialNumber.toUpperCase()).toBe('1001');

    // curl agrees (a different client, full verification against the CA).
    const r = await httpsRequest(s.port, { ca: fx.ca.certPem, agent: false });
    expect(r.status).toBe(200);
    old.sock.destroy();
    fresh.sock.destroy();
  });

  it('a broken replacement: reloadTls() throws, the current certificate stays; fixed files then load', async () => {
    const live = liveCopy(fx.server);
    const s = await serve({ ...live });
    // The key no longer matches the certificate (only the cert was replaced).
    fs.writeFileSync(live.cert, replacement.certPem);
    expect(() => s.engine.reloadTls()).toThrow(/TLS configuration refused: .*does not match/);
    expect(await servedSerial(s.port)).toBe('1001');
    // A missing file.
    fs.rmSync(live.key);
    expect(() => s.engine.reloadTls()).toThrow(/cannot read TLS key file/);
    expect(await servedSerial(s.port)).toBe('1001');
    // Garbage.
    fs.writeFileSync(live.key, 'garbage');
    expect(() => s.engine.reloadTls()).toThrow(/TLS configuration refused/);
    expect(await servedSerial(s.port)).toBe('1001');
    // Fixed.
    fs.writeFileSync(live.key, replacement.keyPem);
    s.engine.reloadTls();
    expect(await servedSerial(s.port)).toBe('3003');
  });

  it('SNI certificates are re-read too', async () => {
    const live = liveCopy(fx.server);
    const liveOther = liveCopy(fx.other);
    const s = await serve({ ...live, sni: { 'other.test': liveOther } });
    expect(await servedSerial(s.port, 'other.test')).toBe('1002');
    replaceFiles(liveOther, otherReplacement);
    s.engine.reloadTls();
    expect(await servedSerial(s.port, 'other.test')).toBe('3004');
    expect(await servedSerial(s.port)).toBe('1001');
  });

  it('the CA file is re-read: a client certificate from a newly trusted CA is accepted', async () => {
    const live = liveCopy(fx.server);
    const caFile = path.join(fx.dir, `live-ca-${++seq}.pem`);
    fs.copyFileSync(fx.ca.cert, caFile);
    const s = await serve({ ...live, ca: caFile, requestCert: true, rejectUnauthorized: true });
    const rogue = { ca: fx.ca.certPem, cert: fx.rogueClient.certPem, key: fx.rogueClient.keyPem, agent: false as const };
    await expect(httpsRequest(s.port, rogue)).rejects.toThrow();
    fs.writeFileSync(caFile, fx.ca.certPem + fx.rogueCa.certPem);
    s.engine.reloadTls();
    const r = await httpsRequest(s.port, rogue);
    const d = JSON.parse(r.body.toString()) as Described;
    expect(d.tls!.clientVerify).toBe('SUCCESS');
    expect(d.tls!.clientIssuer).toBe('CN=Rogue CA');
  });

  it('an engine with HTTP and HTTPS listeners: only the HTTPS one changes, both keep serving', async () => {
    const live = liveCopy(fx.server);
    const engine = new Feersum();
    engine.requestHandler(describeHandler);
    engine.onError(() => {});
    servers.push({ engine, port: 0, errors: [], close: () => engine.gracefulShutdown() });
    const plain = await engine.listen({ host: '127.0.0.1', port: 0 });
    const secure = await engine.listen({ host: '127.0.0.1', port: 0, tls: { ...live } });
    const pemOnly = await engine.listen({ host: '127.0.0.1', port: 0, tls: { key: fx.server.keyPem, cert: fx.server.certPem } });
    replaceFiles(live, replacement);
    engine.reloadTls();
    expect(await servedSerial(secure.port)).toBe('3003');
    expect(await servedSerial(pemOnly.port)).toBe('1001'); // PEM given inline: nothing to re-read
    const body = await new Promise<string>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: plain.port, agent: false }, (res) => {
          let t = '';
          res.on('data', (c) => (t += c));
          res.on('end', () => resolve(t));
        })
        .on('error', reject);
    });
    expect((JSON.parse(body) as Described).scheme).toBe('http');
  });

  it('reloading while connections are mid-handshake and under load: every request succeeds', async () => {
    const live = liveCopy(fx.server);
    const liveOther = liveCopy(fx.other);
    const s = await serve({ ...live, sni: { 'other.test': liveOther } });
    let stop = false;
    let flips = 0;
    const flipper = (async () => {
      while (!stop) {
        replaceFiles(live, flips % 2 ? fx.server : replacement);
        replaceFiles(liveOther, flips % 2 ? fx.other : otherReplacement);
        s.engine.reloadTls();
        flips++;
        await sleep(3);
      }
    })();
    const serials = new Set<string>();
    const workers = Array.from({ length: 4 }, async (_, w) => {
      for (let i = 0; i < 25; i++) {
        const c = tlsClient(s.port, { ca: fx.ca.certPem, servername: w % 2 ? 'other.test' : undefined });
        await c.secure;
        serials.add(c.sock.getPeerCertificate().serialNumber.toUpperCase());
        expect((await requestOn(c, `/w${w}/${i}`)).uri).toBe(`/w${w}/${i}`);
        c.sock.destroy();
      }
    });
    try {
      await Promise.all(workers);
    } finally {
      stop = true;
      await flipper;
    }
    expect(flips).toBeGreaterThan(5);
    for (const serial of serials) expect(['1001', '3003', '1002', '3004']).toContain(serial);
  });
});

describe('cleanup', () => {
  it('fd count back to baseline', async () => {
    for (const s of servers) await waitFor(() => s.engine.stats().connections === 0, 10000, 'connections to close');
    for (const s of servers.splice(0)) await s.close();
    await sleep(100);
    await waitFor(() => openFdCount() <= baselineFds, 10000, `fds back to ${baselineFds} (now ${openFdCount()})`);
  });
});
