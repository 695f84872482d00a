// Throwaway certificates for the TLS tests, made with the openssl CLI (run
// asynchronously: never block the event loop of a process that serves), plus
// small async helpers to run openssl/curl and to talk HTTPS from Node.
//
//   ca            "CN=Feersum Test CA"                  (RSA 2048)
//   server        CN=localhost, SAN localhost + 127.0.0.1, signed by ca (RSA 2048)
//   other         CN=other.test, SAN other.test, signed by ca (EC P-256): the SNI certificate
//   wild          CN=*.wild.test, SAN *.wild.test, signed by ca (EC P-256)
//   encrypted     CN=localhost, key encrypted with aes-256-cbc, passphrase ENCRYPTED_PASSPHRASE
//   client        "CN=alice,OU=QA,O=Feersum\, Tests,C=DE", serial 0x0A1B2C3D4E5F60, signed by ca
//   rogueCa       "CN=Rogue CA", and rogueClient "CN=mallory" signed by it (untrusted)
//   intermediate  "CN=Feersum Intermediate CA" signed by ca; chainClient "CN=bob" signed by it,
//                 chainClient.cert holds the leaf then the intermediate
//   expiredClient "CN=expired", signed by ca, expired yesterday
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';

import { afterAll, beforeAll } from 'vitest';

import { Feersum, type EngineOptions, type FeersumRequest, type ListenOptions } from '../lib/index';
import { openFdCount } from './helpers';

export const ENCRYPTED_PASSPHRASE = 'correct horse battery staple';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command (async); resolves with its exit status and output. `input` goes to its stdin. */
export function run(
  cmd: string,
  args: string[],
  opts: { input?: string | Buffer; timeout?: number; cwd?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    // The external tools are not under test: keep a sanitizer preload (scripts/test-asan.sh) out of them.
    const env = { ...process.env };
    delete env.LD_PRELOAD;
    const child = spawn(cmd, args, { cwd: opts.cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeout ?? 20000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.on('error', () => {});
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  });
}

/** Runs openssl; throws with its stderr when it fails. */
export async function openssl(args: string[], opts: { input?: string; cwd?: string } = {}): Promise<string> {
  const r = await run('openssl', args, opts);
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

export interface CertFiles {
  /** Paths. */
  cert: string;
  key: string;
  /** Contents. */
  certPem: string;
  keyPem: string;
  /** As `openssl x509 -noout -subject/-issuer -nameopt RFC2253` and `-serial` print them (without the prefix). */
  subject: string;
  issuer: string;
  serial: string;
}

export interface Fixtures {
  dir: string;
  ca: CertFiles;
  server: CertFiles;
  other: CertFiles;
  wild: CertFiles;
  encrypted: CertFiles;
  client: CertFiles;
  rogueCa: CertFiles;
  rogueClient: CertFiles;
  intermediate: CertFiles;
  chainClient: CertFiles;
  expiredClient: CertFiles;
}

type KeyKind = 'rsa' | 'ec';

function keyArgs(kind: KeyKind): string[] {
  return kind === 'rsa'
    ? ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048']
    : ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'];
}

async function describeCert(certPath: string, keyPath: string): Promise<CertFiles> {
  const field = async (what: string) => {
    const out = await openssl(['x509', '-in', certPath, '-noout', what, '-nameopt', 'RFC2253']);
    return out.trim().replace(/^[a-z]+=\s*/, '');
  };
  return {
    cert: certPath,
    key: keyPath,
    certPem: fs.readFileSync(certPath, 'latin1'),
    keyPem: fs.readFileSync(keyPath, 'latin1'),
    subject: await field('-subject'),
    issuer: await field('-issuer'),
    serial: await field('-serial'),
  };
}

/** A self-signed CA in dir/<name>.pem + dir/<name>.key. */
export async function makeCa(dir: string, name: string, subject: string): Promise<CertFiles> {
  const key = path.join(dir, `${name}.key`);
  const cert = path.join(dir, `${name}.pem`);
  await openssl(['genpkey', ...keyArgs('rsa'), '-out', key]);
  await openssl([
    'req', '-x509', '-new', '-key', key, '-out', cert, '-days', '3', '-subj', subject,
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return describeCert(cert, key);
}

export interface LeafOptions {
  subject: string;
  /** subjectAltName value, e.g. 'DNS:localhost,IP:127.0.0.1'. */
  san?: string;
  serial?: string;
  key?: KeyKind;
  usage?: 'serverAuth' | 'clientAuth';
  /** Encrypt the key file with this passphrase. */
  passphrase?: string;
  /** Validity in days from now; negative = already expired. */
  days?: number;
  /** An intermediate CA instead of a leaf. */
  isCa?: boolean;
}

/** A certificate signed by `ca` in dir/<name>.pem + dir/<name>.key. */
export async function makeLeaf(dir: string, name: string, ca: CertFiles, o: LeafOptions): Promise<CertFiles> {
  const key = path.join(dir, `${name}.key`);
  const cert = path.join(dir, `${name}.pem`);
  const csr = path.join(dir, `${name}.csr`);
  const ext = path.join(dir, `${name}.ext`);
  const pass = o.passphrase !== undefined ? [`-aes-256-cbc`, '-pass', `pass:${o.passphrase}`] : [];
  await openssl(['genpkey', ...keyArgs(o.key ?? 'rsa'), ...pass, '-out', key]);
  const passin = o.passphrase !== undefined ? ['-passin', `pass:${o.passphrase}`] : [];
  await openssl(['req', '-new', '-key', key, ...passin, '-out', csr, '-subj', o.subject]);
  const lines = o.isCa
    ? ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign']
    : ['basicConstraints=CA:FALSE', `extendedKeyUsage=${o.usage ?? 'serverAuth'}`];
  if (o.san) lines.push(`subjectAltName=${o.san}`);
  fs.writeFileSync(ext, lines.join('\n') + '\n');
  await openssl([
    'x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-days', String(o.days ?? 2), '-out', cert, '-extfile', ext,
    '-set_serial', o.serial ?? `0x${Math.floor(Math.random() * 2 ** 48).toString(16).padStart(12, '1')}`,
  ]);
  fs.rmSync(csr);
  fs.rmSync(ext);
  return describeCert(cert, key);
}

/** Every certificate the TLS tests use, in a fresh temporary directory. */
export async function makeFixtures(): Promise<Fixtures> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'feersum-tls-'));
  const ca = await makeCa(dir, 'ca', '/CN=Feersum Test CA');
  const rogueCa = await makeCa(dir, 'rogue-ca', '/CN=Rogue CA');
  const [server, other, wild, encrypted, client, rogueClient] = await Promise.all([
    makeLeaf(dir, 'server', ca, { subject: '/CN=localhost', san: 'DNS:localhost,IP:127.0.0.1', serial: '0x1001' }),
    makeLeaf(dir, 'other', ca, { subject: '/CN=other.test', san: 'DNS:other.test', serial: '0x1002', key: 'ec' }),
    makeLeaf(dir, 'wild', ca, { subject: '/CN=*.wild.test', san: 'DNS:*.wild.test', serial: '0x1003', key: 'ec' }),
    makeLeaf(dir, 'encrypted', ca, {
      subject: '/CN=localhost/O=Encrypted Key',
      san: 'DNS:localhost,IP:127.0.0.1',
      serial: '0x1004',
      passphrase: ENCRYPTED_PASSPHRASE,
    }),
    // A leading zero nibble in the serial and an escaped comma in the DN.
    makeLeaf(dir, 'client', ca, {
      subject: '/C=DE/O=Feersum, Tests/OU=QA/CN=alice',
      serial: '0x0A1B2C3D4E5F60',
      usage: 'clientAuth',
    }),
    makeLeaf(dir, 'rogue-client', rogueCa, { subject: '/CN=mallory', serial: '0x666', usage: 'clientAuth' }),
  ]);
  const intermediate = await makeLeaf(dir, 'intermediate', ca, { subject: '/CN=Feersum Intermediate CA', serial: '0x2001', isCa: true });
  const [chainLeaf, expiredClient] = await Promise.all([
    makeLeaf(dir, 'chain-client', intermediate, { subject: '/CN=bob', serial: '0xB0B', key: 'ec', usage: 'clientAuth' }),
    makeLeaf(dir, 'expired-client', ca, { subject: '/CN=expired', serial: '0xDEAD', key: 'ec', usage: 'clientAuth', days: -1 }),
  ]);
  // The client sends its chain: leaf, then the intermediate.
  const chainFile = path.join(dir, 'chain-client-bundle.pem');
  fs.writeFileSync(chainFile, chainLeaf.certPem + intermediate.certPem);
  const chainClient = { ...chainLeaf, cert: chainFile };
  return { dir, ca, server, other, wild, encrypted, client, rogueCa, rogueClient, intermediate, chainClient, expiredClient };
}

export function removeFixtures(f: Fixtures | undefined): void {
  if (f) fs.rmSync(f.dir, { recursive: true, force: true });
}

// ------------------------------------------------------------------ servers

export type TlsListenOptions = NonNullable<ListenOptions['tls']>;

export interface TlsServer {
  engine: Feersum;
  port: number;
  errors: unknown[];
  close(): Promise<void>;
}

/** What a TLS suite shares: the fixtures (made in beforeAll), the fd count
 *  before them, and the servers it started (closed in afterAll). */
export interface TlsSuite {
  fx: Fixtures;
  baselineFds: number;
  servers: TlsServer[];
}

/** Registers the suite's beforeAll/afterAll hooks; call at the top of a test file. */
export function tlsSuite(): TlsSuite {
  const suite = { baselineFds: 0, servers: [] } as unknown as TlsSuite;
  beforeAll(async () => {
    suite.baselineFds = openFdCount();
    suite.fx = await makeFixtures();
  }, 60000);
  afterAll(async () => {
    for (const s of suite.servers.splice(0)) await s.close();
    removeFixtures(suite.fx);
  });
  return suite;
}

/** An engine with one HTTPS listener on 127.0.0.1 (port 0). */
export async function startTlsServer(
  handler: (req: FeersumRequest) => unknown,
  tlsOptions: TlsListenOptions,
  engineOptions?: EngineOptions,
): Promise<TlsServer> {
  const engine = new Feersum(engineOptions);
  const errors: unknown[] = [];
  engine.requestHandler(handler);
  engine.onError((err) => errors.push(err));
  const { port } = await engine.listen({ host: '127.0.0.1', port: 0, tls: tlsOptions });
  return { engine, port, errors, close: () => engine.gracefulShutdown() };
}

/** engine.stats() with the TLS counters (the addon reports them). */
export function tlsStats(engine: Feersum): { connections: number; requests: number; tlsHandshakes: number; tlsResumed: number } {
  return engine.stats() as ReturnType<typeof tlsStats>;
}

/** Answers with a JSON description of the request and its TLS connection. */
export function describeHandler(req: FeersumRequest): void {
  req.sendResponse(
    200,
    ['Content-Type', 'application/json'],
    JSON.stringify({
      method: req.method,
      uri: req.uri,
      remotePort: req.remotePort,
      tls: req.tls ?? null,
      scheme: req.env()['psgi.url_scheme'],
    }),
  );
}

export interface Described {
  method: string;
  uri: string;
  remotePort: number;
  tls: NonNullable<FeersumRequest['tls']> | null;
  scheme: string;
}

// ------------------------------------------------------------------ clients

export interface HttpsResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** The client socket's local port (what the server sees as the remote port). */
  localPort: number;
}

/** One HTTPS request with node:https. */
export function httpsRequest(
  port: number,
  opts: https.RequestOptions & { body?: Buffer | string } = {},
): Promise<HttpsResult> {
  return new Promise((resolve, reject) => {
    const { body, ...rest } = opts;
    const req = https.request({ host: '127.0.0.1', port, path: '/', ...rest }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () =>
        resolve({
          status: res.statusCode!,
          headers: res.headers,
          body: Buffer.concat(chunks),
          localPort: res.socket?.localPort ?? 0,
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

/** A TLS connection that collects everything it receives. */
export function tlsClient(port: number, opts: tls.ConnectionOptions = {}) {
  const sock = tls.connect({ host: '127.0.0.1', port, ...opts });
  let buf = Buffer.alloc(0);
  let closed = false;
  let error: Error | undefined;
  const secure = new Promise<void>((resolve, reject) => {
    sock.once('secureConnect', resolve);
    sock.once('error', reject);
  });
  secure.catch(() => {}); // a test that expects a failure looks at .error / .closed instead
  sock.on('data', (d: Buffer) => (buf = Buffer.concat([buf, d])));
  sock.on('close', () => (closed = true));
  sock.on('error', (e) => (error = e));
  return {
    sock,
    secure,
    get data() {
      return buf;
    },
    get closed() {
      return closed;
    },
    get error() {
      return error;
    },
  };
}

/** curl against https://127.0.0.1:port; `-w` appends "\n<http_code>" to the body (000: no response). */
export function curl(port: number, args: string[], urlPath = '/') {
  return run('curl', [
    '-sS', '--max-time', '20', '-w', '\n%{http_code}', ...args, `https://127.0.0.1:${port}${urlPath}`,
  ], { timeout: 30000 });
}
