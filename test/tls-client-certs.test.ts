// Client certificates in each verification mode, with curl (--cert/--key)
// and node:https: none (no requestCert), optional (requestCert,
// rejectUnauthorized false), require (requestCert, rejectUnauthorized
// true). req.tls is checked field by field against what the openssl CLI says
// about the certificate (subject/issuer RFC 2253, serial, PEM).
import https from 'node:https';

import { describe, expect, it } from 'vitest';

import { openFdCount, sleep, waitFor } from './helpers';
import {
  type CertFiles,
  curl,
  type Described,
  describeHandler,
  httpsRequest,
  run,
  startTlsServer,
  type TlsListenOptions,
  type TlsServer,
  tlsStats,
  tlsSuite,
} from './tls-certs';

const suite = tlsSuite();

type Mode = 'none' | 'optional' | 'require';

const MODE_OPTIONS: Record<Mode, Partial<TlsListenOptions>> = {
  none: {},
  optional: { requestCert: true, rejectUnauthorized: false },
  require: { requestCert: true, rejectUnauthorized: true },
};

const byMode = new Map<Mode, TlsServer>();
async function server(mode: Mode, extra: Partial<TlsListenOptions> = {}): Promise<TlsServer> {
  if (!Object.keys(extra).length && byMode.has(mode)) return byMode.get(mode)!;
  const s = await startTlsServer(describeHandler, {
    key: suite.fx.server.key,
    cert: suite.fx.server.cert,
    ca: suite.fx.ca.cert,
    ...MODE_OPTIONS[mode],
    ...extra,
  });
  suite.servers.push(s);
  if (!Object.keys(extra).length) byMode.set(mode, s);
  return s;
}

const VERSIONS = [
  { name: 'TLS 1.2', flags: ['--tlsv1.2', '--tls-max', '1.2'], protocol: 'TLSv1.2' },
  { name: 'TLS 1.3', flags: ['--tlsv1.3'], protocol: 'TLSv1.3' },
];

type Who = 'no certificate' | 'trusted certificate' | 'untrusted certificate';
const certFor = (who: Who): CertFiles | undefined =>
  who === 'trusted certificate' ? suite.fx.client : who === 'untrusted certificate' ? suite.fx.rogueClient : undefined;

/** What req.tls must say (and about which certificate), or 'refused' when the handshake must fail. */
function expected(mode: Mode, who: Who): 'refused' | { verify: string; cert?: 'client' | 'rogueClient' } {
  if (mode === 'none' || who === 'no certificate') {
    return mode === 'require' && who === 'no certificate' ? 'refused' : { verify: 'NONE' };
  }
  if (who === 'trusted certificate') return { verify: 'SUCCESS', cert: 'client' };
  return mode === 'optional' ? { verify: 'FAILED:unable to verify the first certificate', cert: 'rogueClient' } : 'refused';
}

function expectClientFields(tls: NonNullable<Described['tls']>, verify: string, cert: CertFiles | undefined) {
  expect(tls.clientVerify).toBe(verify);
  if (!cert) {
    expect(tls.clientSubject).toBe('');
    expect(tls.clientIssuer).toBe('');
    expect(tls.clientSerial).toBe('');
    expect(tls.clientCert).toBe('');
    return;
  }
  expect(tls.clientSubject).toBe(cert.subject);
  expect(tls.clientIssuer).toBe(cert.issuer);
  expect(tls.clientSerial).toBe(cert.serial);
  expect(tls.clientCert).toBe(cert.certPem);
}

describe('the fixtures', () => {
  it('are what the assertions below rely on', () => {
    // Sanity of the test data itself (openssl's own view of the certificates).
    expect(suite.fx.client.subject).toBe('CN=alice,OU=QA,O=Feersum\\, Tests,C=DE');
    expect(suite.fx.client.issuer).toBe('CN=Feersum Test CA');
    expect(suite.fx.client.serial).toBe('0A1B2C3D4E5F60');
    expect(suite.fx.rogueClient.issuer).toBe('CN=Rogue CA');
  });
});

for (const mode of ['none', 'optional', 'require'] as Mode[]) {
  describe(`verify mode ${mode} (curl)`, () => {
    for (const v of VERSIONS) {
      for (const who of ['no certificate', 'trusted certificate', 'untrusted certificate'] as Who[]) {
        const want = expected(mode, who);
        it(`${v.name}, ${who}: ${want === 'refused' ? 'handshake refused, connection closed' : want.verify}`, async () => {
          const s = await server(mode);
          const cert = certFor(who);
          const args = ['--cacert', suite.fx.ca.cert, ...v.flags];
          if (cert) args.push('--cert', cert.cert, '--key', cert.key);
          const r = await curl(s.port, args);
          if (want === 'refused') {
            // 35: handshake failed (TLS 1.2); 56: receive failed (TLS 1.3 sends
            // the client certificate after the server's Finished, so the alert
            // arrives when curl reads the response).
            expect([35, 56]).toContain(r.code);
            expect(r.stderr).toMatch(/alert|certificate/i);
            expect(r.stdout).toBe('\n000');
          } else {
            expect(r.stderr).toBe('');
            expect(r.code).toBe(0);
            const [body, code] = r.stdout.split('\n');
            expect(code).toBe('200');
            const d = JSON.parse(body) as Described;
            expect(d.scheme).toBe('https');
            expect(d.tls!.protocol).toBe(v.protocol);
            expectClientFields(d.tls!, want.verify, want.cert && suite.fx[want.cert]);
          }
          // Refused or not, the connection is gone and the server still serves.
          await waitFor(() => s.engine.stats().connections === 0, 10000, 'the connection to close');
          const ok = await curl(s.port, ['--cacert', suite.fx.ca.cert, '--cert', suite.fx.client.cert, '--key', suite.fx.client.key]);
          expect(ok.stdout.endsWith('\n200')).toBe(true);
        });
      }
    }
  });
}

describe('more client certificates', () => {
  it('serial matches `openssl x509 -serial` and PEM matches the file, via node:https too', async () => {
    const s = await server('require');
    const r = await httpsRequest(s.port, { ca: suite.fx.ca.certPem, cert: suite.fx.client.certPem, key: suite.fx.client.keyPem, agent: false });
    const d = JSON.parse(r.body.toString()) as Described;
    const cli = await run('openssl', ['x509', '-in', suite.fx.client.cert, '-noout', '-serial']);
    expect(`serial=${d.tls!.clientSerial}`).toBe(cli.stdout.trim());
    expectClientFields(d.tls!, 'SUCCESS', suite.fx.client);
    // The PEM the server reports parses back to the same certificate.
    const fp = await run('openssl', ['x509', '-noout', '-fingerprint', '-sha256'], { input: d.tls!.clientCert });
    const fpFile = await run('openssl', ['x509', '-noout', '-fingerprint', '-sha256', '-in', suite.fx.client.cert]);
    expect(fp.stdout).toBe(fpFile.stdout);
  });

  it('a client certificate issued by an intermediate CA, chain sent by the client: SUCCESS (require)', async () => {
    const s = await server('require');
    const r = await curl(s.port, ['--cacert', suite.fx.ca.cert, '--cert', suite.fx.chainClient.cert, '--key', suite.fx.chainClient.key]);
    expect(r.stderr).toBe('');
    const [body, code] = r.stdout.split('\n');
    expect(code).toBe('200');
    const d = JSON.parse(body) as Described;
    expectClientFields(d.tls!, 'SUCCESS', suite.fx.chainClient);
    expect(d.tls!.clientIssuer).toBe('CN=Feersum Intermediate CA');
  });

  it('an expired client certificate: FAILED:certificate has expired (optional), refused (require)', async () => {
    const opt = await server('optional');
    const r = await curl(opt.port, ['--cacert', suite.fx.ca.cert, '--cert', suite.fx.expiredClient.cert, '--key', suite.fx.expiredClient.key]);
    const [body, code] = r.stdout.split('\n');
    expect(code).toBe('200');
    expectClientFields((JSON.parse(body) as Described).tls!, 'FAILED:certificate has expired', suite.fx.expiredClient);

    const req = await server('require');
    const bad = await curl(req.port, ['--cacert', suite.fx.ca.cert, '--cert', suite.fx.expiredClient.cert, '--key', suite.fx.expiredClient.key]);
    expect([35, 56]).toContain(bad.code);
    expect(bad.stdout).toBe('\n000');
  });

  it('require mode with SNI: the SNI certificate is served and client verification still applies', async () => {
    const s = await server('require', { sni: { 'other.test': { key: suite.fx.other.key, cert: suite.fx.other.cert } } });
    const resolve = ['--resolve', `other.test:${s.port}:127.0.0.1`];
    const url = `https://other.test:${s.port}/`;
    const good = await run('curl', ['-sS', '-w', '\n%{http_code}', '--cacert', suite.fx.ca.cert, ...resolve, '--cert', suite.fx.client.cert, '--key', suite.fx.client.key, url]);
    expect(good.stderr).toBe('');
    const [body, code] = good.stdout.split('\n');
    expect(code).toBe('200');
    const d = JSON.parse(body) as Described;
    expect(d.tls!.serverName).toBe('other.test');
    expectClientFields(d.tls!, 'SUCCESS', suite.fx.client);
    for (const extra of [[], ['--cert', suite.fx.rogueClient.cert, '--key', suite.fx.rogueClient.key]]) {
      const bad = await run('curl', ['-sS', '-w', '\n%{http_code}', '--cacert', suite.fx.ca.cert, ...resolve, ...extra, url]);
      expect([35, 56]).toContain(bad.code);
      expect(bad.stdout).toBe('\n000');
    }
  });

  it('optional mode with SNI: an untrusted certificate is reported FAILED on the SNI context too', async () => {
    const s = await server('optional', { sni: { 'other.test': { key: suite.fx.other.key, cert: suite.fx.other.cert } } });
    const r = await run('curl', [
      '-sS', '-w', '\n%{http_code}', '--cacert', suite.fx.ca.cert, '--resolve', `other.test:${s.port}:127.0.0.1`,
      '--cert', suite.fx.rogueClient.cert, '--key', suite.fx.rogueClient.key, `https://other.test:${s.port}/`,
    ]);
    const [body, code] = r.stdout.split('\n');
    expect(code).toBe('200');
    const d = JSON.parse(body) as Described;
    expect(d.tls!.serverName).toBe('other.test');
    expectClientFields(d.tls!, 'FAILED:unable to verify the first certificate', suite.fx.rogueClient);
  });

  it('require mode: every kind of refusal closes the connection; the server keeps serving a keep-alive client meanwhile', async () => {
    const s = await server('require');
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: suite.fx.ca.certPem, cert: suite.fx.client.certPem, key: suite.fx.client.keyPem });
    try {
      const first = await httpsRequest(s.port, { agent });
      const port0 = (JSON.parse(first.body.toString()) as Described).remotePort;
      for (let i = 0; i < 5; i++) {
        await Promise.all([
          curl(s.port, ['--cacert', suite.fx.ca.cert]),
          curl(s.port, ['--cacert', suite.fx.ca.cert, '--cert', suite.fx.rogueClient.cert, '--key', suite.fx.rogueClient.key]),
          httpsRequest(s.port, { ca: suite.fx.ca.certPem, agent: false }).catch((e: Error) => e),
        ]);
        const r = await httpsRequest(s.port, { agent });
        expect((JSON.parse(r.body.toString()) as Described).remotePort).toBe(port0);
      }
      // Only the keep-alive connection is left.
      await waitFor(() => s.engine.stats().connections === 1, 10000, 'refused connections to close');
    } finally {
      agent.destroy();
    }
    await waitFor(() => s.engine.stats().connections === 0, 10000, 'the keep-alive connection to close');
    expect(tlsStats(s.engine).requests).toBe(0);
  });
});

describe('cleanup', () => {
  it('fd count back to baseline', async () => {
    for (const s of suite.servers.splice(0)) await s.close();
    byMode.clear();
    await sleep(100);
    await waitFor(() => openFdCount() <= suite.baselineFds, 10000, `fds back to ${suite.baselineFds} (now ${openFdCount()})`);
  });
});
