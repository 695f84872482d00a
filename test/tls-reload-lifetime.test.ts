// Lifetime of a TLS configuration after reloadTls() / unlisten(): a
// connection accepted with the old configuration that has not sent its
// ClientHello yet must still handshake with the old certificates once the
// listener has let go of them and JavaScript's handle has been collected.
// (Its own file: when this goes wrong it can take the process down.)
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import v8 from 'node:v8';
import vm from 'node:vm';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { sleep, waitFor } from './helpers';
import { describeHandler, type Fixtures, makeFixtures, removeFixtures, startTlsServer, type TlsServer } from './tls-certs';

let fx: Fixtures;
const servers: TlsServer[] = [];

beforeAll(async () => {
  fx = await makeFixtures();
}, 60000);

afterAll(async () => {
  for (const s of servers.splice(0)) await s.close();
  removeFixtures(fx);
});

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

async function collect() {
  for (let i = 0; i < 5; i++) {
    gc();
    await new Promise((r) => setImmediate(r)); // N-API finalizers run from the immediate queue
    await sleep(10);
  }
}

/** Opens n TCP connections that send nothing yet (accepted with the current configuration). */
async function idleConnections(port: number, n: number) {
  const socks: net.Socket[] = [];
  for (let i = 0; i < n; i++) {
    const raw = net.connect(port, '127.0.0.1');
    await new Promise((r) => raw.once('connect', r));
    socks.push(raw);
  }
  return socks;
}

/** Handshakes over an already-open TCP socket; 'ok <CN> <serial>' or 'error <message>'. */
function handshake(raw: net.Socket, servername: string): Promise<string> {
  const t = tls.connect({ socket: raw, servername, ca: fx.ca.certPem });
  return new Promise<string>((resolve) => {
    t.once('secureConnect', () => {
      const c = t.getPeerCertificate();
      resolve(`ok ${c.subject.CN} ${c.serialNumber}`);
      t.destroy();
    });
    t.once('error', (e) => resolve(`error ${e.message}`));
  });
}

function live(name: string, from: { cert: string; key: string }) {
  const cert = path.join(fx.dir, `${name}.pem`);
  const key = path.join(fx.dir, `${name}.key`);
  fs.copyFileSync(from.cert, cert);
  fs.copyFileSync(from.key, key);
  return { cert, key };
}

describe('old TLS configurations outlive the listener while connections use them', () => {
  it('reloadTls(), GC, then the early connections handshake with SNI: old SNI certificate served', async () => {
    const other = live('lt-other', fx.other);
    const s = await startTlsServer(describeHandler, { key: fx.server.key, cert: fx.server.cert, sni: { 'other.test': other } });
    servers.push(s);
    const socks = await idleConnections(s.port, 5);
    await waitFor(() => s.engine.stats().connections === 5, 5000, 'accepted');
    for (let i = 0; i < 3; i++) s.engine.reloadTls();
    await collect();
    for (const raw of socks) expect(await handshake(raw, 'other.test')).toBe('ok other.test 1002');
  });

  it('unlisten(), GC, then the early connections handshake with SNI', async () => {
    const s = await startTlsServer(describeHandler, {
      key: fx.server.key,
      cert: fx.server.cert,
      sni: { 'other.test': { key: fx.other.keyPem, cert: fx.other.certPem } },
    });
    servers.push(s);
    const socks = await idleConnections(s.port, 3);
    await waitFor(() => s.engine.stats().connections === 3, 5000, 'accepted');
    s.engine.unlisten();
    await collect();
    for (const raw of socks) expect(await handshake(raw, 'other.test')).toBe('ok other.test 1002');
  });
});
