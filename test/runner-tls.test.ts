// HTTPS through the runner: https:// listeners and --ssl, certificate
// checks at startup, client certificates (--ssl-verify-client modes),
// session tickets shared by the pre-fork workers, and renewed certificates
// on SIGHUP: reloaded in a single process, new workers with --pre-fork (and
// the old ones kept when the renewed files are broken).
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import {
  childPids,
  EXAMPLES,
  freePort,
  killAll,
  removeTmpDirs,
  request,
  Runner,
  runCli,
  sleep,
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
): Promise<{ status: number; body: string; headers: Record<string, unknown>; reused: boolean; peerCN: string; localPort: number }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: urlPath, ca: f.ca.certPem, servername: 'localhost', ...opts }, (res) => {
      let body = '';
      const socket = res.socket as tls.TLSSocket;
      const reused = socket.isSessionReused();
      const peerCN = String(socket.getPeerCertificate().subject?.CN ?? '');
      const localPort = socket.localPort ?? 0;
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers, reused, peerCN, localPort }));
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
      // A CA file is checked even when --ssl-verify-client=none leaves it unused.
      r = await runCli([...mode, '--listen', `https://127.0.0.1:${port}`, ...keyCert(), '--ssl-ca-file', '/nonexistent/ca.pem', '--ssl-verify-client=none', APP]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^feersum-ts: TLS[^:]*: cannot read TLS ca file \/nonexistent\/ca\.pem: .*\n$/);
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

  describe('--ssl-verify-client modes, over real TLS connections', () => {
    // The app shows what the server made of the client's certificate.
    let verifyApp: string;
    beforeAll(() => {
      verifyApp = path.join(tmpDir(), 'verify.js');
      fs.writeFileSync(
        verifyApp,
        "module.exports = (env) => [200, ['Content-Type', 'application/json'], " +
          '[JSON.stringify({ verify: env.SSL_CLIENT_VERIFY, dn: env.SSL_CLIENT_S_DN ?? null })]];\n',
      );
    });

    const REFUSED = 'refused';
    type Outcome = string | RegExp; // SSL_CLIENT_VERIFY, or REFUSED: the handshake fails
    const cases: Array<{ name: string; args: () => string[]; none: Outcome; valid: Outcome; untrusted: Outcome; preFork?: boolean }> = [
      { name: 'no CA file: none (the default)', args: () => [], none: 'NONE', valid: 'NONE', untrusted: 'NONE' },
      // A certificate is asked for, and verified, but not insisted on: the app decides.
      { name: 'a CA file alone: optional (the default)', args: () => ['--ssl-ca-file', f.ca.cert], none: 'NONE', valid: 'SUCCESS', untrusted: /^FAILED:/ },
      { name: '--ssl-verify-client optional', args: () => ['--ssl-ca-file', f.ca.cert, '--ssl-verify-client', 'optional'], none: 'NONE', valid: 'SUCCESS', untrusted: /^FAILED:/ },
      { name: '--ssl-verify-client=optional (pre-fork)', args: () => ['--ssl-ca-file', f.ca.cert, '--ssl-verify-client=optional'], none: 'NONE', valid: 'SUCCESS', untrusted: /^FAILED:/, preFork: true },
      // Not asked for, so not even sent: the CA file is only checked at startup.
      { name: '--ssl-verify-client=none with a CA file', args: () => ['--ssl-ca-file', f.ca.cert, '--ssl-verify-client=none'], none: 'NONE', valid: 'NONE', untrusted: 'NONE' },
      { name: '--ssl-verify-client=require', args: () => ['--ssl-ca-file', f.ca.cert, '--ssl-verify-client=require'], none: REFUSED, valid: 'SUCCESS', untrusted: REFUSED },
      { name: '--ssl-verify-client require (pre-fork)', args: () => ['--ssl-ca-file', f.ca.cert, '--ssl-verify-client', 'require'], none: REFUSED, valid: 'SUCCESS', untrusted: REFUSED, preFork: true },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        const mode = c.preFork ? ['--pre-fork=1'] : [];
        const runner = new Runner([...mode, '--listen', 'https://127.0.0.1:0', ...keyCert(), ...c.args(), verifyApp]);
        const port = Number((await runner.waitFor(/listening on https:\/\/127\.0\.0\.1:(\d+)/, 30000))[1]);
        const clients: Array<[string, https.RequestOptions, Outcome]> = [
          ['no certificate', {}, c.none],
          ['a valid certificate', { cert: f.client.certPem, key: f.client.keyPem }, c.valid],
          ['a certificate from an untrusted CA', { cert: f.rogueClient.certPem, key: f.rogueClient.keyPem }, c.untrusted],
        ];
        for (const [who, opts, want] of clients) {
          const got = await get(port, '/', { agent: false, ...opts }).then(
            (r) => JSON.parse(r.body) as { verify: string; dn: string | null },
            (err: Error) => err,
          );
          if (want === REFUSED) {
            expect(got, who).toBeInstanceOf(Error);
            continue;
          }
          expect(got, who).not.toBeInstanceOf(Error);
          const { verify, dn } = got as { verify: string; dn: string | null };
          expect(verify, who).toMatch(typeof want === 'string' ? new RegExp(`^${want}$`) : want);
          // The subject is there whenever a certificate was sent, verified or not.
          if (verify !== 'NONE') expect(dn, who).toContain(who === 'a valid certificate' ? 'CN=alice' : 'CN=mallory');
        }
        runner.signal('SIGTERM');
        expect((await runner.waitExit()).code).toBe(0);
      }, 60000);
    }
  });

  it('--ssl-verify-client alone means require, and does not take the app path for its value', async () => {
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

  it('--pre-fork: SIGHUP with broken renewed files keeps the old workers serving; fixed files restart', async () => {
    const dir = tmpDir();
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    fs.copyFileSync(f.server.cert, cert);
    fs.copyFileSync(f.server.key, key);
    const runner = new Runner([
      '--pre-fork=2', '--max-reqs-per-child=0', '--listen', 'https://127.0.0.1:0', '--ssl-key-file', key, '--ssl-cert-file', cert, APP,
    ]);
    const port = Number((await runner.waitFor(/listening on https:\/\/127\.0\.0\.1:(\d+)/, 30000))[1]);
    await waitUntil(() => (runner.stderr.match(/ready \(generation 1\)/g) ?? []).length === 2, 30000, 'both workers');
    const old = childPids(runner.pid);
    expect(old).toHaveLength(2);
    const keepAlive = new https.Agent({ keepAlive: true, maxSockets: 1 });
    const first = await get(port, '/env', { agent: keepAlive });
    expect(first.peerCN).toBe('localhost');
    expect(first.headers.connection).not.toBe('close');

    // A renewal gone wrong: the key replaced by garbage.
    fs.writeFileSync(key, 'not a key\n');
    runner.signal('SIGHUP');
    await runner.waitFor(/graceful restart failed: the new workers cannot serve; 2 worker\(s\) of the previous code keep serving/, 30000);
    // The new worker that was still starting is stopped; only the old ones remain, and no crash loop starts.
    await waitUntil(() => childPids(runner.pid).join() === old.join(), 20000, 'only the old workers');
    await sleep(1500);
    expect(childPids(runner.pid)).toEqual(old);
    // The error, logged once (not once per new worker).
    expect(runner.stderr.match(/worker \d+: cannot accept connections on https:[^\n]*: TLS configuration refused: [^\n]*private key/g) ?? [], runner.stderr).toHaveLength(1);
    expect(runner.stderr.match(/TLS configuration refused/g)).toHaveLength(1);
    expect(runner.stderr).not.toMatch(/quick worker failures|replacing it/);

    // The old workers serve as before: keep-alive, no Connection: close
    // (the restart had them winding down; it is taken back).
    for (let i = 0; i < 10; i++) {
      const r = await get(port, '/env', { agent: keepAlive });
      expect(r.status).toBe(200);
      expect(r.headers.connection, `request ${i}`).not.toBe('close');
      expect(r.localPort).toBe(first.localPort); // still the first connection
      expect(old).toContain(JSON.parse(r.body).pid);
      expect(r.peerCN).toBe('localhost');
    }
    for (let i = 0; i < 10; i++) {
      // New connections too, whichever old worker accepts them.
      const agent = new https.Agent({ keepAlive: true });
      const r = await get(port, '/env', { agent });
      agent.destroy();
      expect(r.headers.connection, `new connection ${i}`).not.toBe('close');
      expect(old).toContain(JSON.parse(r.body).pid);
    }
    keepAlive.destroy();

    // Fixed files (another certificate, to tell them apart): the next SIGHUP restarts.
    fs.copyFileSync(f.other.cert, cert);
    fs.copyFileSync(f.other.key, key);
    runner.signal('SIGHUP');
    await runner.waitFor(/graceful restart complete: generation 3 serving/, 30000);
    await waitUntil(() => old.every((p) => !childPids(runner.pid).includes(p)), 20000, 'the old workers to go');
    const fresh = childPids(runner.pid);
    expect(fresh).toHaveLength(2);
    const r = await get(port, '/env', { agent: false, servername: 'other.test', checkServerIdentity: () => undefined });
    expect(r.peerCN).toBe('other.test');
    expect(fresh).toContain(JSON.parse(r.body).pid);
    runner.signal('SIGTERM');
    expect((await runner.waitExit(40000)).code).toBe(0);
  }, 90000);
});
