// Protocol-level checks with `openssl s_client` (and Node's tls where it
// says more): TLS 1.2 and 1.3 negotiate, minVersion, ciphers, ALPN
// http/1.1, SNI certificate selection (exact and wildcard), renegotiation
// refused while other clients are served, TLS 1.3 key updates, session
// resumption (tickets, the session cache, shared ticketKeys) counted in
// stats().tlsResumed.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';

import { describe, expect, it } from 'vitest';

import { openFdCount, parseResponses, sleep, waitFor } from './helpers';
import {
  type Described,
  describeHandler,
  httpsRequest,
  run,
  startTlsServer,
  tlsClient,
  type TlsListenOptions,
  type TlsServer,
  tlsStats,
  tlsSuite,
} from './tls-certs';

const suite = tlsSuite();

async function serve(extra: Partial<TlsListenOptions> = {}, handler = describeHandler) {
  const s = await startTlsServer(handler, {
    key: suite.fx.server.key,
    cert: suite.fx.server.cert,
    sni: {
      'other.test': { key: suite.fx.other.key, cert: suite.fx.other.cert },
      '*.wild.test': { key: suite.fx.wild.key, cert: suite.fx.wild.cert },
    },
    ...extra,
  });
  suite.servers.push(s);
  return s;
}

let shared: TlsServer | undefined;
const sharedServer = async () => (shared ??= await serve());

/** `openssl s_client` against the port; stdin is `input` then EOF (which ends the session). */
function sClient(port: number, args: string[], input = '') {
  return run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', suite.fx.ca.cert, ...args], { input, timeout: 20000 });
}

const REQUEST = 'GET /via-s_client HTTP/1.1\nHost: x\nConnection: close\n\n';

describe('protocol versions (s_client)', () => {
  for (const [flag, version] of [
    ['-tls1_2', 'TLSv1.2'],
    ['-tls1_3', 'TLSv1.3'],
  ]) {
    it(`${flag} negotiates ${version}, verifies, and serves a request`, async () => {
      const s = await sharedServer();
      const r = await sClient(s.port, [flag, '-crlf', '-ign_eof'], REQUEST);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`New, ${version}, Cipher is `);
      expect(r.stdout).toMatch(new RegExp(`Protocol\\s*: ${version.replace('.', '\\.')}`));
      expect(r.stdout).toContain('Verify return code: 0 (ok)');
      expect(r.stdout).toContain('subject=CN = localhost');
      const body = r.stdout.slice(r.stdout.indexOf('HTTP/1.1 '));
      const [res] = parseResponses(Buffer.from(body));
      expect(res.status).toBe(200);
      const d = JSON.parse(res.body.toString()) as Described;
      expect(d.uri).toBe('/via-s_client');
      expect(d.tls!.protocol).toBe(version);
      const cipher = /Cipher is (\S+)/.exec(r.stdout)![1];
      expect(d.tls!.cipher).toBe(cipher);
    });
  }

  it('TLS 1.1 and older are refused', async () => {
    const s = await sharedServer();
    // -legacy_renegotiation etc. are not needed; the client may itself refuse
    // to offer 1.1 (seclevel), either way no session comes up.
    const r = await sClient(s.port, ['-tls1_1', '-cipher', 'DEFAULT:@SECLEVEL=0']);
    expect(r.code).not.toBe(0);
    expect(r.stdout).not.toMatch(/New, TLSv1(\.1)?, Cipher/);
  });

  it("minVersion 'TLSv1.3': TLS 1.2 is refused, TLS 1.3 accepted", async () => {
    const s = await serve({ minVersion: 'TLSv1.3' });
    const old = await sClient(s.port, ['-tls1_2']);
    expect(old.code).not.toBe(0);
    expect(old.stdout).not.toContain('New, TLSv1.2');
    expect(old.stdout + old.stderr).toMatch(/protocol version|alert/i);
    const ok = await sClient(s.port, ['-tls1_3']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('New, TLSv1.3');
  });

  it('ciphers: a TLS 1.2 list and a TLS 1.3 suite are honoured', async () => {
    const s = await serve({ ciphers: 'TLS_CHACHA20_POLY1305_SHA256:ECDHE-RSA-AES256-GCM-SHA384' });
    const r12 = await sClient(s.port, ['-tls1_2']);
    expect(r12.stdout).toContain('New, TLSv1.2, Cipher is ECDHE-RSA-AES256-GCM-SHA384');
    const r13 = await sClient(s.port, ['-tls1_3']);
    expect(r13.stdout).toContain('New, TLSv1.3, Cipher is TLS_CHACHA20_POLY1305_SHA256');
    // A client offering only ciphers outside the list gets nothing.
    const bad = await sClient(s.port, ['-tls1_2', '-cipher', 'ECDHE-RSA-AES128-GCM-SHA256']);
    expect(bad.code).not.toBe(0);
    expect(bad.stdout).not.toContain('New, TLSv1.2');
    // req.tls.cipher reports the suite.
    const d = JSON.parse(
      (await httpsRequest(s.port, { ca: suite.fx.ca.certPem, agent: false, maxVersion: 'TLSv1.2' })).body.toString(),
    ) as Described;
    expect(d.tls!.cipher).toBe('ECDHE-RSA-AES256-GCM-SHA384');
  });
});

describe('ALPN', () => {
  for (const [offer, want] of [
    ['http/1.1', 'ALPN protocol: http/1.1'],
    ['h2,http/1.1', 'ALPN protocol: http/1.1'],
    ['h2', 'No ALPN negotiated'],
  ]) {
    it(`-alpn ${offer}: "${want}"`, async () => {
      const s = await sharedServer();
      for (const v of ['-tls1_2', '-tls1_3']) {
        const r = await sClient(s.port, [v, '-alpn', offer]);
        expect(r.code).toBe(0);
        expect(r.stdout).toContain(want);
      }
    });
  }

  it("Node's tls client: alpnProtocol is 'http/1.1' and requests work", async () => {
    const s = await sharedServer();
    const c = tlsClient(s.port, { ca: suite.fx.ca.certPem, ALPNProtocols: ['h2', 'http/1.1'] });
    await c.secure;
    expect(c.sock.alpnProtocol).toBe('http/1.1');
    c.sock.write('GET /alpn HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await waitFor(() => c.closed, 10000, 'close');
    expect(parseResponses(c.data)[0].status).toBe(200);
  });
});

describe('SNI', () => {
  for (const [name, subject] of [
    ['other.test', 'CN = other.test'],
    ['OTHER.Test', 'CN = other.test'],
    ['a.wild.test', 'CN = *.wild.test'],
    ['b.a.wild.test', 'CN = localhost'], // a wildcard covers one label only
    ['wild.test', 'CN = localhost'],
    ['unknown.test', 'CN = localhost'],
    [null, 'CN = localhost'],
  ] as const) {
    it(`${name === null ? 'no SNI' : `-servername ${name}`}: subject=${subject}`, async () => {
      const s = await sharedServer();
      for (const v of ['-tls1_2', '-tls1_3']) {
        const args = name === null ? [v, '-noservername', '-crlf', '-ign_eof'] : [v, '-servername', name, '-crlf', '-ign_eof'];
        const r = await sClient(s.port, args, REQUEST);
        expect(r.code).toBe(0);
        expect(r.stdout).toContain(`subject=${subject}\n`);
        expect(r.stdout).toContain('Verify return code: 0 (ok)');
        const res = parseResponses(Buffer.from(r.stdout.slice(r.stdout.indexOf('HTTP/1.1 '))))[0];
        expect((JSON.parse(res.body.toString()) as Described).tls!.serverName).toBe(name ?? '');
      }
    });
  }

  it('Node client with servername other.test verifies the SNI certificate', async () => {
    const s = await sharedServer();
    const c = tlsClient(s.port, { ca: suite.fx.ca.certPem, servername: 'other.test' });
    await c.secure;
    expect(c.sock.getPeerCertificate().subject.CN).toBe('other.test');
    expect(c.sock.authorized).toBe(true);
    c.sock.destroy();
  });
});

/** s_client kept open: write lines to it, read what it printed so far. */
function interactiveSClient(port: number, args: string[]) {
  const env = { ...process.env };
  delete env.LD_PRELOAD; // see run() in tls-certs.ts
  const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', suite.fx.ca.cert, ...args], {
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let exit: number | null | undefined;
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  child.stdin.on('error', () => {});
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve((exit = code))));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30000);
  child.once('close', () => clearTimeout(timer));
  return {
    write: (s: string) => child.stdin.write(s),
    end: () => child.stdin.end(),
    get output() {
      return out;
    },
    get exitCode() {
      return exit;
    },
    exited,
  };
}

describe('renegotiation', () => {
  it('s_client -tls1_2 "R": refused (no_renegotiation), that connection ends, others are served meanwhile', async () => {
    const s = await serve();
    const keep = tlsClient(s.port, { ca: suite.fx.ca.certPem });
    await keep.secure;
    const c = interactiveSClient(s.port, ['-tls1_2']);
    await waitFor(() => c.output.includes('Verify return code: 0 (ok)') && c.output.includes('---\n'), 15000, 's_client handshake');
    await waitFor(() => s.engine.stats().connections === 2, 5000, 'two connections');
    c.write('R\n');
    const code = await Promise.race([c.exited, sleep(10000).then(() => 'still running')]);
    c.end();
    expect(c.output).toContain('RENEGOTIATING');
    expect(c.output).toMatch(/no renegotiation/i);
    expect(code).toBe(1);
    // The refused connection is gone; the other one still works.
    await waitFor(() => s.engine.stats().connections === 1, 10000, 'the refused connection to close');
    keep.sock.write('GET /still HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await waitFor(() => keep.closed, 10000, 'response');
    expect(parseResponses(keep.data)[0].status).toBe(200);
    expect((await httpsRequest(s.port, { ca: suite.fx.ca.certPem, agent: false })).status).toBe(200);
  });

  it("Node's tlsSocket.renegotiate() (TLS 1.2): the next write fails with 'no renegotiation'", async () => {
    const s = await serve();
    const c = tlsClient(s.port, { ca: suite.fx.ca.certPem, maxVersion: 'TLSv1.2' });
    await c.secure;
    let renegotiated = false;
    expect(c.sock.renegotiate({ rejectUnauthorized: true }, (e) => (renegotiated = !e))).toBe(true);
    // Node sends the ClientHello with the next write.
    c.sock.write('GET /after-renegotiation HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor(() => c.closed, 10000, 'the connection to fail');
    expect(renegotiated).toBe(false);
    expect(c.error?.message).toMatch(/no renegotiation/);
    expect(c.data.length).toBe(0); // the request was not served
    await waitFor(() => s.engine.stats().connections === 0, 10000, 'connection closed');
    expect((await httpsRequest(s.port, { ca: suite.fx.ca.certPem, agent: false })).status).toBe(200);
  });

  it('s_client -tls1_3 "K" (KeyUpdate, update requested) is accepted; requests go on', async () => {
    const s = await serve();
    const c = interactiveSClient(s.port, ['-tls1_3', '-crlf']);
    await waitFor(() => c.output.includes('Verify return code: 0 (ok)') && c.output.includes('---\n'), 15000, 's_client handshake');
    c.write('K\n');
    await waitFor(() => c.output.includes('KEYUPDATE'), 5000, 'KEYUPDATE');
    await sleep(300);
    c.write('GET /after-keyupdate HTTP/1.1\n');
    await sleep(50);
    c.write('Host: x\n\n');
    await waitFor(() => c.output.includes('/after-keyupdate'), 10000, 'the response after the key update');
    c.write('Q\n');
    c.end();
    await c.exited;
    expect(c.output).not.toMatch(/:error:/);
  });
});

describe('session resumption', () => {
  /** One request on a new TLS connection; resolves with the session (TLS 1.3: a ticket) and whether it resumed. */
  async function connectOnce(port: number, opts: tls.ConnectionOptions) {
    const c = tlsClient(port, { ca: suite.fx.ca.certPem, ...opts });
    let session: Buffer | undefined;
    c.sock.on('session', (s: Buffer) => (session = s));
    await c.secure;
    const reused = c.sock.isSessionReused();
    c.sock.write('GET /resume HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await waitFor(() => c.closed, 10000, 'close');
    const res = parseResponses(c.data)[0];
    // A resumed session need not bring a new ticket; a new one always does.
    if (!reused) await waitFor(() => session !== undefined, 3000, "the 'session' event");
    return { reused, session, body: res?.body.toString() };
  }

  for (const maxVersion of ['TLSv1.3', 'TLSv1.2'] as const) {
    it(`${maxVersion}: Node reuses the session; stats().tlsResumed counts it, tlsHandshakes does not`, async () => {
      const s = await serve();
      const s0 = tlsStats(s.engine);
      const first = await connectOnce(s.port, { maxVersion });
      expect(first.reused).toBe(false);
      expect(first.session).toBeInstanceOf(Buffer);
      const s1 = tlsStats(s.engine);
      expect(s1.tlsHandshakes - s0.tlsHandshakes).toBe(1);
      expect(s1.tlsResumed - s0.tlsResumed).toBe(0);
      for (let i = 0; i < 3; i++) {
        const again = await connectOnce(s.port, { maxVersion, session: first.session });
        expect(again.reused).toBe(true);
        expect((JSON.parse(again.body!) as Described).tls!.protocol).toBe(maxVersion);
      }
      const s2 = tlsStats(s.engine);
      expect(s2.tlsResumed - s1.tlsResumed).toBe(3);
      expect(s2.tlsHandshakes - s1.tlsHandshakes).toBe(0);
    });
  }

  // Without tickets, TLS 1.2 resumes through the server's session cache
  // (session ids). OpenSSL drops a session from the cache when its SSL is
  // freed without SSL_SENT_SHUTDOWN (ssl_clear_bad_session), which is what
  // happens when the client closes first, unless the server marks the
  // shutdown (nginx: SSL_set_shutdown / quiet shutdown before SSL_free).
  for (const closer of ['the server closes first (Connection: close)', 'the client closes first (close_notify)']) {
    it(`TLS 1.2 without tickets: the session cache resumes when ${closer}`, async () => {
      const s = await serve();
      const file = path.join(suite.fx.dir, `sess12-${closer.includes('server') ? 's' : 'c'}.pem`);
      const first = closer.includes('server')
        ? await sClient(s.port, ['-tls1_2', '-no_ticket', '-sess_out', file, '-crlf', '-ign_eof'], REQUEST)
        : await sClient(s.port, ['-tls1_2', '-no_ticket', '-sess_out', file]);
      expect(first.stdout).toContain('New, TLSv1.2');
      expect(first.stdout).not.toContain('TLS session ticket:');
      await waitFor(() => s.engine.stats().connections === 0, 10000, 'the first connection to close');
      const before = tlsStats(s.engine);
      const b = await sClient(s.port, ['-tls1_2', '-no_ticket', '-sess_in', file]);
      expect(b.stdout).toContain('Reused, TLSv1.2');
      const after = tlsStats(s.engine);
      expect(after.tlsResumed - before.tlsResumed).toBe(1);
      expect(after.tlsHandshakes - before.tlsHandshakes).toBe(0);
    });
  }

  it('TLS 1.2 without tickets: the session cache resumes after the server closed an idle keep-alive connection (keepaliveTimeout)', async () => {
    // Node's client without tickets (SSL_OP_NO_TICKET): only the session id can resume.
    const s = await startTlsServer(describeHandler, { key: suite.fx.server.key, cert: suite.fx.server.cert }, { keepaliveTimeout: 1 });
    suite.servers.push(s);
    const opts = { ca: suite.fx.ca.certPem, maxVersion: 'TLSv1.2' as const, secureOptions: crypto.constants.SSL_OP_NO_TICKET };
    const first = tlsClient(s.port, opts);
    let session: Buffer | undefined;
    first.sock.on('session', (x: Buffer) => (session = x));
    await first.secure;
    first.sock.write('GET /idle HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor(() => first.closed, 5000, 'the keep-alive timeout to close the connection');
    expect(parseResponses(first.data)[0].status).toBe(200);
    expect(session).toBeInstanceOf(Buffer);
    const before = tlsStats(s.engine);
    const again = tlsClient(s.port, { ...opts, session });
    await again.secure;
    const reused = again.sock.isSessionReused();
    expect(reused).toBe(true);
    // In an abbreviated TLS 1.2 handshake the server finishes on the client's
    // Finished, which arrives just after the client's 'secureConnect'.
    await waitFor(() => tlsStats(s.engine).tlsResumed - before.tlsResumed === 1, 3000, 'the resumed handshake counted');
    again.sock.destroy();
  });

  it('TLS 1.3 tickets with s_client -sess_out/-sess_in', async () => {
    const s = await serve();
    const file = path.join(suite.fx.dir, 'sess13.pem');
    // Stay connected long enough to receive the tickets (sent after the handshake).
    const a = await sClient(s.port, ['-tls1_3', '-sess_out', file, '-crlf', '-ign_eof'], REQUEST);
    expect(a.stdout).toContain('New, TLSv1.3');
    expect(fs.existsSync(file)).toBe(true);
    const before = tlsStats(s.engine);
    const b = await sClient(s.port, ['-tls1_3', '-sess_in', file]);
    expect(b.stdout).toContain('Reused, TLSv1.3');
    expect(tlsStats(s.engine).tlsResumed - before.tlsResumed).toBe(1);
  });

  it('ticketKeys: a ticket from one engine resumes on another with the same keys, not with other keys', async () => {
    const keys = Buffer.alloc(80, 7);
    const a = await serve({ ticketKeys: keys, sni: undefined });
    const b = await serve({ ticketKeys: Buffer.from(keys), sni: undefined });
    const c = await serve({ ticketKeys: Buffer.alloc(80, 9), sni: undefined });
    for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
      const first = await connectOnce(a.port, { maxVersion });
      expect(first.session).toBeInstanceOf(Buffer);
      const onB = await connectOnce(b.port, { maxVersion, session: first.session });
      expect(onB.reused).toBe(true);
      const onC = await connectOnce(c.port, { maxVersion, session: first.session });
      expect(onC.reused).toBe(false);
      expect(JSON.parse(onC.body!).tls.protocol).toBe(maxVersion);
    }
    expect(tlsStats(b.engine).tlsResumed).toBe(2);
    expect(tlsStats(c.engine).tlsResumed).toBe(0);
    expect(tlsStats(c.engine).tlsHandshakes).toBe(2);
  });

  it('a resumed session still reports the client certificate (optional mode)', async () => {
    const s = await serve({ ca: suite.fx.ca.cert, requestCert: true, rejectUnauthorized: false, sni: undefined });
    for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
      const opts = { maxVersion, cert: suite.fx.client.certPem, key: suite.fx.client.keyPem };
      const first = await connectOnce(s.port, opts);
      expect((JSON.parse(first.body!) as Described).tls!.clientVerify).toBe('SUCCESS');
      const again = await connectOnce(s.port, { ...opts, session: first.session });
      expect(again.reused).toBe(true);
      const t = (JSON.parse(again.body!) as Described).tls!;
      expect(t.clientVerify).toBe('SUCCESS');
      expect(t.clientSubject).toBe(suite.fx.client.subject);
      expect(t.clientSerial).toBe(suite.fx.client.serial);
      expect(t.clientCert).toBe(suite.fx.client.certPem);
    }
  });
});

describe('cleanup', () => {
  it('fd count back to baseline', async () => {
    for (const s of suite.servers) await waitFor(() => s.engine.stats().connections === 0, 10000, 'connections to close');
    for (const s of suite.servers.splice(0)) await s.close();
    await sleep(100);
    await waitFor(() => openFdCount() <= suite.baselineFds, 10000, `fds back to ${suite.baselineFds} (now ${openFdCount()})`);
  });
});
