// HTTPS through the runner: https:// listeners and --ssl, certificate
// checks at startup, client certificates, session tickets shared by the
// pre-fork workers, and certificate reload on SIGHUP in a single process.
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import {
  EXAMPLES,
  freePort,
  killAll,
  removeTmpDirs,
  request,
  Runner,
  runCli,
  tmpDir,
  waitUntil,
} from './runner-helpers';
import { type Fixtures, makeFixtures, removeFixtures } from './tls-certs';

afterEach(killAll);
afterAll(removeTmpDirs);

const APP = path.join(EXAMPLES, 'app.js');
let f: Fixtures;
beforeAll(async () => {
  f = await makeFixtures();
}, 120000);
afterAll(() => removeFixtures(f));

const keyCert = () => ['--ssl-key-file', f.server.key, '--ssl-cert-file', f.server.cert];

function get(
  port: number,
  urlPath: string,
  opts: https.RequestOptions = {},
): Promise<{ status: number; body: string; headers: Record<string, unknown>; reused: boolean; peerCN: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: urlPath, ca: f.ca.certPem, servername: 'localhost', ...opts }, (res) => {
      let body = '';
      const socket = res.socket as tls.TLSSocket;
      const reused = socket.isSessionReused();
      const peerCN = String(socket.getPeerCertificate().subject?.CN ?? '');
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers, reused, peerCN }));
    });
    req.setTimeout(15000, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

describe('runner TLS', () => {
  it('serves HTTPS and HTTP listeners side by side', async () => {
    const runner = new Runner(['--listen', 'https://127.0.0.1:0', '--listen', '127.0.0.1:0', ...keyCert(), APP]);
    const m = await runner.waitFor(/listening on https:\/\/127\.0\.0\.1:(\d+), http:\/\/127\.0\.0\.1:(\d+)/);
    const [tlsPort, plainPort] = [Number(m[1]), Number(m[2])];
    const r = await get(tlsPort, '/env', { agent: false });
    expect(r.status).toBe(200);
    expect(r.peerCN).toBe('localhost');
    expect(JSON.parse(r.body)).toMatchObject({ url_scheme: 'https', SERVER_PORT: String(tlsPort) });
    expect(r.headers.server).toMatch(/^feersum-ts\//);
    expect(JSON.parse((await request({ port: plainPort }, '/env')).body).url_scheme).toBe('http');
    runner.signal('SIGTERM');
    expect((await runner.waitExit()).code).toBe(0);
  });

  for (const mode of [[], ['--pre-fork=2']]) {
    const name = mode.length ? ' (pre-fork)' : '';
    it(`refuses unreadable or mismatched certificate files before starting${name}`, async () => {
      const port = await freePort();
      let r = await runCli([...mode, '--listen', `https://127.0.0.1:${port}`, '--ssl-key-file', '/nonexistent/k.pem', '--ssl-cert-file', f.server.cert, APP]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^feersum-ts: TLS configuration refused: cannot read TLS key file \/nonexistent\/k\.pem: .*\n$/);
      r = await runCli([...mode, '--listen', `https://127.0.0.1:${port}`, '--ssl-key-file', f.other.key, '--ssl-cert-file', f.server.cert, APP]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^feersum-ts: TLS[^\n]+\n$/);
    });
  }

  it('pre-fork workers share session ticket keys: a session resumes on any worker', async () => {
    const port = await freePort();
    const runner = new Runner(['--pre-fork=2', '--max-reqs-per-child=0', '--ssl', '--listen', `127.0.0.1:${port}`, ...keyCert(), APP]);
    await runner.waitFor(/listening on https:\/\/127\.0\.0\.1:\d+ with 2 worker/);
    await waitUntil(() => (runner.stderr.match(/ready \(generation 1\)/g) ?? []).length === 2, 20000, 'both workers');
    // One agent, no keep-alive: every request is a new connection offering the cached session.
    const agent = new https.Agent({ keepAlive: false, maxCachedSessions: 4 });
    const first = await get(port, '/env', { agent });
    expect(first.reused).toBe(false);
    // With per-worker keys, every move to the other worker would be a full handshake.
    const resumedOn = new Set<number>([JSON.parse(first.body).pid]);
    let full = 0;
    for (let i = 0; i < 300 && resumedOn.size < 2; i++) {
      const r = await get(port, '/env', { agent });
      expect(r.status).toBe(200);
      if (r.reused) resumedOn.add(JSON.parse(r.body).pid);
      else full++;
    }
    agent.destroy();
    expect(resumedOn.size).toBe(2);
    expect(full).toBe(0);
    runner.signal('SIGTERM');
    expect((await runner.waitExit()).code).toBe(0);
  }, 90000);

  it('--ssl-verify-client requires a client certificate signed by --ssl-ca-file', async () => {
    const runner = new Runner([
      '--listen', 'https://127.0.0.1:0', ...keyCert(), '--ssl-ca-file', f.ca.cert, '--ssl-verify-client', APP,
    ]);
    const port = Number((await runner.waitFor(/listening on https:\/\/127\.0\.0\.1:(\d+)/))[1]);
    await expect(get(port, '/env', { agent: false })).rejects.toThrow();
    const r = await get(port, '/env', { agent: false, cert: f.client.certPem, key: f.client.keyPem });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).SSL_CLIENT_S_DN).toContain('CN=alice');
    runner.signal('SIGTERM');
    expect((await runner.waitExit()).code).toBe(0);
  });

  it('SIGHUP in a single process reloads renewed certificates', async () => {
    const dir = tmpDir();
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    fs.copyFileSync(f.server.cert, cert);
    fs.copyFileSync(f.server.key, key);
    const runner = new Runner(['--listen', 'https://127.0.0.1:0', '--ssl-key-file', key, '--ssl-cert-file', cert, APP]);
    const port = Number((await runner.waitFor(/listening on https:\/\/127\.0\.0\.1:(\d+)/))[1]);
    expect((await get(port, '/', { agent: false })).peerCN).toBe('localhost');
    // "Renewal": another certificate and key under the same names.
    fs.copyFileSync(f.other.cert, cert);
    fs.copyFileSync(f.other.key, key);
    runner.signal('SIGHUP');
    await runner.waitFor(/SIGHUP: TLS certificates reloaded/);
    const r = await get(port, '/', { agent: false, servername: 'other.test', checkServerIdentity: () => undefined });
    expect(r.peerCN).toBe('other.test');
    // A broken renewal keeps the working certificates.
    fs.writeFileSync(key, 'not a key');
    runner.signal('SIGHUP');
    await runner.waitFor(/SIGHUP: TLS certificates not reloaded, the old ones stay/);
    expect((await get(port, '/', { agent: false, servername: 'other.test', checkServerIdentity: () => undefined })).status).toBe(200);
    runner.signal('SIGTERM');
    expect((await runner.waitExit()).code).toBe(0);
  });
});
