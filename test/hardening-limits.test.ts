// Size and connection limits, each at and one over its boundary, over real
// sockets: head size (431, 414 for the request line), header count (400),
// body size by Content-Length (413 before the body is read) and by the
// running total of a chunked body (413), Expect: 100-continue with an
// oversized body (413, no 100), maxConnections, and accept under EMFILE in
// a child process with a lowered `ulimit -n`.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { EngineOptions, FeersumRequest } from '../lib/index';
import { openFdCount, parseResponses, rawClient, sleep, startServer, type TestServer, waitFor } from './helpers';

let baselineFds = 0;
const servers: TestServer[] = [];

beforeAll(() => {
  baselineFds = openFdCount();
});

afterAll(async () => {
  for (const s of servers) await s.close();
});

interface Seen {
  uri: string;
  body: number;
}

/** A server whose handler records what the app saw (uri, body length) and answers with the body length. */
async function recordingServer(options: EngineOptions) {
  const seen: Seen[] = [];
  const bodyErrors: string[] = [];
  const server = await startServer((req: FeersumRequest) => {
    if (req.bodyBuffered) {
      seen.push({ uri: req.uri, body: req.body?.length ?? 0 });
      req.sendResponse(200, [], String(req.body?.length ?? 0));
      return;
    }
    let n = 0;
    req.input.on('data', (d: Buffer) => (n += d.length));
    req.input.on('error', (e: Error) => bodyErrors.push(e.message));
    req.input.on('end', () => {
      seen.push({ uri: req.uri, body: n });
      req.sendResponse(200, [], String(n));
    });
  }, options);
  servers.push(server);
  return { server, seen, bodyErrors };
}

/** Sends `data` on a new connection; resolves with what came back once the server closes (or `ms`). */
async function oneShot(port: number, data: string | Buffer, ms = 3000) {
  const c = rawClient(port);
  await c.connected;
  c.send(data);
  await c.waitClosed(ms).catch(() => {});
  c.sock.destroy();
  return { data: c.data, closed: c.closed, responses: parseResponses(c.data) };
}

/** A GET head padded with an X-Pad field to exactly `size` bytes. */
function headOfSize(size: number, extra = ''): string {
  const base = `GET /size HTTP/1.1\r\nHost: x\r\n${extra}X-Pad: \r\n\r\n`;
  return base.replace('X-Pad: ', 'X-Pad: ' + 'p'.repeat(size - base.length));
}

// ---------------------------------------------------------------- head size and count

describe('maxHeaderSize (1024)', () => {
  let port = 0;
  let seen: Seen[];
  beforeAll(async () => {
    const s = await recordingServer({ maxHeaderSize: 1024, maxHeaderCount: 20 });
    port = s.server.port;
    seen = s.seen;
  });

  it('a head of exactly 1024 bytes is served', async () => {
    const head = headOfSize(1024);
    expect(head.length).toBe(1024);
    const c = rawClient(port);
    await c.connected;
    c.send(head);
    const [r] = await c.responses(1);
    expect(r.status).toBe(200);
    expect(c.closed).toBe(false);
    c.sock.destroy();
  });

  it('a head of 1025 bytes gets 431 and a close; the app never sees it', async () => {
    const before = seen.length;
    const head = headOfSize(1025);
    expect(head.length).toBe(1025);
    const { responses, closed } = await oneShot(port, head);
    expect(responses.map((r) => r.status)).toEqual([431]);
    expect(responses[0].headers.connection).toBe('close');
    expect(closed).toBe(true);
    expect(seen.length).toBe(before);
  });

  it('a head of 1025 bytes arriving in 64-byte pieces still gets 431', async () => {
    const head = headOfSize(1025);
    const c = rawClient(port);
    await c.connected;
    for (let i = 0; i < head.length; i += 64) {
      c.send(head.slice(i, i + 64));
      await sleep(1);
    }
    const [r] = await c.responses(1);
    expect(r.status).toBe(431);
    await c.waitClosed();
  });

  it('a request line filling the whole 1024 bytes gets 431 (the head, not the line, overflows)', async () => {
    const line = `GET /${'a'.repeat(1024 - 'GET / HTTP/1.1\r\n'.length)} HTTP/1.1\r\n`;
    expect(line.length).toBe(1024);
    const { responses, closed } = await oneShot(port, line + 'Host: x\r\n\r\n');
    expect(responses.map((r) => r.status)).toEqual([431]);
    expect(closed).toBe(true);
  });

  it('a request line longer than 1024 bytes gets 414', async () => {
    const line = `GET /${'a'.repeat(1025 - 'GET / HTTP/1.1\r\n'.length)} HTTP/1.1\r\n`;
    expect(line.length).toBe(1025);
    const before = seen.length;
    const { responses, closed } = await oneShot(port, line + 'Host: x\r\n\r\n');
    expect(responses.map((r) => r.status)).toEqual([414]);
    expect(closed).toBe(true);
    expect(seen.length).toBe(before);
  });

  it('a request line just under the limit, with Host, fits exactly and is served', async () => {
    const rest = 'Host: x\r\n\r\n';
    const line = `GET /${'a'.repeat(1024 - rest.length - 'GET / HTTP/1.1\r\n'.length)} HTTP/1.1\r\n`;
    expect((line + rest).length).toBe(1024);
    const c = rawClient(port);
    await c.connected;
    c.send(line + rest);
    const [r] = await c.responses(1);
    expect(r.status).toBe(200);
    c.sock.destroy();
  });

  it('20 header fields (Host + 19) are served', async () => {
    const fields = Array.from({ length: 19 }, (_, i) => `X-H${i}: ${i}\r\n`).join('');
    const c = rawClient(port);
    await c.connected;
    c.send(`GET /count HTTP/1.1\r\nHost: x\r\n${fields}\r\n`);
    const [r] = await c.responses(1);
    expect(r.status).toBe(200);
    c.sock.destroy();
  });

  it('21 header fields get 400 and a close; the app never sees it', async () => {
    const before = seen.length;
    const fields = Array.from({ length: 20 }, (_, i) => `X-H${i}: ${i}\r\n`).join('');
    const { responses, closed } = await oneShot(port, `GET /count HTTP/1.1\r\nHost: x\r\n${fields}\r\n`);
    expect(responses.map((r) => r.status)).toEqual([400]);
    expect(responses[0].headers.connection).toBe('close');
    expect(closed).toBe(true);
    expect(seen.length).toBe(before);
  });
});

describe('maxHeaderLineSize (default 8 KiB, like nginx)', () => {
  let port = 0;
  let seen: Seen[];
  beforeAll(async () => {
    const s = await recordingServer({});
    port = s.server.port;
    seen = s.seen;
  });
  const cookieLine = (size: number) => `Cookie: ${'c'.repeat(size - 'Cookie: \r\n'.length)}\r\n`;
  const targetLine = (size: number) => `GET /${'a'.repeat(size - 'GET / HTTP/1.1\r\n'.length)} HTTP/1.1\r\n`;

  it('a header line of 8192 bytes (CRLF included) is served; 8193 bytes gets 431 and a close', async () => {
    const ok = await oneShot(port, `GET /ok HTTP/1.1\r\nHost: x\r\n${cookieLine(8192)}Connection: close\r\n\r\n`);
    expect(ok.responses.map((r) => r.status)).toEqual([200]);
    const before = seen.length;
    const { responses, closed } = await oneShot(port, `GET /no HTTP/1.1\r\nHost: x\r\n${cookieLine(8193)}\r\n`);
    expect(responses.map((r) => r.status)).toEqual([431]);
    expect(closed).toBe(true);
    expect(seen.length).toBe(before);
  });

  it('a request line of 8192 bytes is served; 8193 bytes gets 414', async () => {
    const ok = await oneShot(port, `${targetLine(8192)}Host: x\r\nConnection: close\r\n\r\n`);
    expect(ok.responses.map((r) => r.status)).toEqual([200]);
    const { responses, closed } = await oneShot(port, `${targetLine(8193)}Host: x\r\n\r\n`);
    expect(responses.map((r) => r.status)).toEqual([414]);
    expect(closed).toBe(true);
  });

  it('an endless header line is refused at 8 KiB, before the 32 KiB head limit and without its line ending', async () => {
    const c = rawClient(port);
    await c.connected;
    c.send(`GET / HTTP/1.1\r\nHost: x\r\nX-Long: ${'v'.repeat(8300)}`);
    const [r] = await c.responses(1);
    expect(r.status).toBe(431);
    await c.waitClosed();
  });

  it('is configurable: 16 KiB lets a 12 KiB cookie through, and a smaller maxHeaderSize still wins', async () => {
    const wide = await recordingServer({ maxHeaderLineSize: 16 * 1024 });
    const ok = await oneShot(wide.server.port, `GET / HTTP/1.1\r\nHost: x\r\n${cookieLine(12 * 1024)}Connection: close\r\n\r\n`);
    expect(ok.responses.map((r) => r.status)).toEqual([200]);
    const narrow = await recordingServer({ maxHeaderSize: 4096, maxHeaderLineSize: 16 * 1024 });
    const no = await oneShot(narrow.server.port, `GET / HTTP/1.1\r\nHost: x\r\n${cookieLine(6000)}\r\n`);
    expect(no.responses.map((r) => r.status)).toEqual([431]);
  });
});

// ---------------------------------------------------------------- body size

describe('maxBodySize (1000)', () => {
  let port = 0;
  let seen: Seen[];
  beforeAll(async () => {
    const s = await recordingServer({ maxBodySize: 1000, readTimeout: 5 });
    port = s.server.port;
    seen = s.seen;
  });

  it('Content-Length: 1000 is read and served', async () => {
    const c = rawClient(port);
    await c.connected;
    c.send(`POST /cl HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n${'b'.repeat(1000)}`);
    const [r] = await c.responses(1);
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('1000');
    c.sock.destroy();
  });

  it('Content-Length: 1001 gets 413 before any body byte is sent; the app never runs', async () => {
    const before = seen.length;
    const c = rawClient(port);
    await c.connected;
    c.send('POST /cl HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n'); // head only
    const [r] = await c.responses(1, 1500);
    expect(r.status).toBe(413);
    expect(r.headers.connection).toBe('close');
    // The body sent afterwards changes nothing.
    c.send('b'.repeat(1001));
    await c.waitClosed();
    expect(parseResponses(c.data).map((x) => x.status)).toEqual([413]);
    expect(seen.length).toBe(before);
  });

  it('a huge Content-Length (10 GB) gets 413 at once', async () => {
    const before = seen.length;
    const c = rawClient(port);
    await c.connected;
    c.send('PUT /huge HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\n');
    const [r] = await c.responses(1, 1500);
    expect(r.status).toBe(413);
    await c.waitClosed();
    expect(seen.length).toBe(before);
  });

  it('a chunked body of exactly 1000 bytes is served', async () => {
    const c = rawClient(port);
    await c.connected;
    c.send(`POST /ch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1f4\r\n${'a'.repeat(500)}\r\n1f4\r\n${'b'.repeat(500)}\r\n0\r\n\r\n`);
    const [r] = await c.responses(1);
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('1000');
    c.sock.destroy();
  });

  it('a chunked body of 1001 bytes gets 413; the app never runs', async () => {
    const before = seen.length;
    const { responses, closed } = await oneShot(
      port,
      `POST /ch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1f4\r\n${'a'.repeat(500)}\r\n1f5\r\n${'b'.repeat(501)}\r\n0\r\n\r\n`,
    );
    expect(responses.map((r) => r.status)).toEqual([413]);
    expect(closed).toBe(true);
    expect(seen.length).toBe(before);
  });

  it('an unfinished chunked body gets 413 as soon as its running total passes the limit', async () => {
    const before = seen.length;
    const c = rawClient(port);
    await c.connected;
    const t0 = Date.now();
    // One chunk declared at 4096 bytes; 1001 of them sent, then silence.
    c.send(`POST /ch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n${'a'.repeat(1001)}`);
    const [r] = await c.responses(1, 2000);
    expect(r.status).toBe(413);
    expect(Date.now() - t0).toBeLessThan(2000); // not the 5 s readTimeout
    await c.waitClosed();
    expect(seen.length).toBe(before);
  });

  it('a chunked body at 1000 bytes that is still going is not refused early', async () => {
    const c = rawClient(port);
    await c.connected;
    c.send(`POST /ch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n${'a'.repeat(1000)}\r\n`);
    await sleep(300);
    expect(parseResponses(c.data)).toEqual([]);
    expect(c.closed).toBe(false);
    c.send('0\r\n\r\n');
    const [r] = await c.responses(1);
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('1000');
    c.sock.destroy();
  });

  it('Expect: 100-continue with Content-Length over the limit: 413 and no 100 Continue', async () => {
    const before = seen.length;
    const c = rawClient(port);
    await c.connected;
    c.send('POST /exp HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1001\r\n\r\n');
    const [r] = await c.responses(1, 1500);
    expect(r.status).toBe(413);
    await c.waitClosed();
    expect(c.data.toString('latin1')).not.toContain('100 Continue');
    expect(parseResponses(c.data).map((x) => x.status)).toEqual([413]);
    expect(seen.length).toBe(before);
  });

  it('Expect: 100-continue with Content-Length at the limit: 100 Continue, then the response', async () => {
    const c = rawClient(port);
    await c.connected;
    c.send('POST /exp HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1000\r\n\r\n');
    await waitFor(() => c.data.toString('latin1').startsWith('HTTP/1.1 100 Continue\r\n\r\n'), 1500, '100 Continue');
    c.send('b'.repeat(1000));
    const [r] = await c.responses(1);
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('1000');
    c.sock.destroy();
  });
});

describe('maxBodySize with a streamed body (bodyBufferSize 0)', () => {
  it('the running total passing the limit answers 413 and errors the app’s body stream', async () => {
    const { server, seen, bodyErrors } = await recordingServer({ maxBodySize: 1000, bodyBufferSize: 0, readTimeout: 5 });
    const c = rawClient(server.port);
    await c.connected;
    c.send(`POST /stream HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n${'a'.repeat(600)}\r\n`);
    await sleep(100);
    c.send(`258\r\n${'b'.repeat(600)}\r\n`);
    const [r] = await c.responses(1, 2000);
    expect(r.status).toBe(413);
    await c.waitClosed();
    await waitFor(() => bodyErrors.length === 1, 2000, 'body stream error');
    expect(seen).toEqual([]); // the body never ended
  });

  it('Content-Length over the limit is refused before the app runs even when bodies stream', async () => {
    const { server, seen } = await recordingServer({ maxBodySize: 1000, bodyBufferSize: 0 });
    const { responses } = await oneShot(server.port, 'POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n');
    expect(responses.map((r) => r.status)).toEqual([413]);
    expect(seen).toEqual([]);
  });
});

// ---------------------------------------------------------------- per-connection request limits

describe('maxKeepaliveRequests (3) and maxPipeline (4)', () => {
  let port = 0;
  let seen: Seen[];
  beforeAll(async () => {
    const s = await recordingServer({ maxKeepaliveRequests: 3, maxPipeline: 4 });
    port = s.server.port;
    seen = s.seen;
  });

  it('the 3rd request on a connection is answered with Connection: close; a 4th is never read', async () => {
    const before = seen.length;
    const c = rawClient(port);
    await c.connected;
    c.send(`GET /k1 HTTP/1.1\r\nHost: x\r\n\r\n`);
    const [r1] = await c.responses(1);
    expect(r1.headers.connection).toBeUndefined();
    c.send(`GET /k2 HTTP/1.1\r\nHost: x\r\n\r\nGET /k3 HTTP/1.1\r\nHost: x\r\n\r\nGET /k4 HTTP/1.1\r\nHost: x\r\n\r\n`);
    await c.waitClosed();
    const rs = parseResponses(c.data);
    expect(rs.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(rs[1].headers.connection).toBeUndefined();
    expect(rs[2].headers.connection).toBe('close');
    expect(seen.slice(before).map((x) => x.uri)).toEqual(['/k1', '/k2', '/k3']);
  });

  it('more pipelined requests than maxPipeline are all answered, in order (held back, not refused)', async () => {
    const { server, seen: seen2 } = await recordingServer({ maxPipeline: 4 });
    const c = rawClient(server.port);
    await c.connected;
    c.send(Array.from({ length: 40 }, (_, i) => `POST /p${i} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n${String(i).padStart(2, '0')}`).join(''));
    const rs = await c.responses(40, 5000);
    expect(rs.map((r) => r.status)).toEqual(Array(40).fill(200));
    expect(seen2.map((x) => x.uri)).toEqual(Array.from({ length: 40 }, (_, i) => `/p${i}`));
    c.sock.destroy();
  });
});

// ---------------------------------------------------------------- connections

describe('maxConnections (3)', () => {
  it('the 4th connection is accepted and closed at once; a freed slot is usable again', async () => {
    const { server } = await recordingServer({ maxConnections: 3 });
    const held = [rawClient(server.port), rawClient(server.port), rawClient(server.port)];
    for (const [i, c] of held.entries()) {
      await c.connected;
      c.send(`GET /held${i} HTTP/1.1\r\nHost: x\r\n\r\n`);
      await c.responses(1);
    }
    expect(server.engine.stats().connections).toBe(3);

    const extra = rawClient(server.port);
    await extra.connected;
    extra.send('GET /extra HTTP/1.1\r\nHost: x\r\n\r\n');
    await extra.waitClosed(1000);
    expect(extra.data.length).toBe(0);
    for (const c of held) expect(c.closed).toBe(false);

    // The held connections still work.
    held[0].send('GET /again HTTP/1.1\r\nHost: x\r\n\r\n');
    expect((await held[0].responses(2))[1].status).toBe(200);

    held[1].sock.destroy();
    await waitFor(() => server.engine.stats().connections === 2, 3000, 'slot freed');
    const next = rawClient(server.port);
    await next.connected;
    next.send('GET /next HTTP/1.1\r\nHost: x\r\n\r\n');
    const [r] = await next.responses(1);
    expect(r.status).toBe(200);
    expect(next.closed).toBe(false);

    // Full again: the next one is refused.
    const extra2 = rawClient(server.port);
    await extra2.connected;
    await extra2.waitClosed(1000);
    expect(extra2.data.length).toBe(0);

    for (const c of [...held, next]) c.sock.destroy();
    await waitFor(() => server.engine.stats().connections === 0, 3000, 'all closed');
  });
});

// ---------------------------------------------------------------- EMFILE

const REPO = path.resolve(__dirname, '..');

/**
 * Bundles lib/ into one CommonJS file a child process can run with plain
 * node (the esbuild CLI in its own process, so no service stays open here).
 */
function bundleLib(dir: string): string {
  const out = path.join(dir, 'feersum.cjs');
  const r = spawnSync(
    path.join(REPO, 'node_modules/.bin/esbuild'),
    [
      path.join(REPO, 'lib/index.ts'),
      '--bundle',
      '--platform=node',
      '--format=cjs',
      '--target=node18',
      `--outfile=${out}`,
      '--log-level=warning',
      // loadBinding() finds the addon from lib/'s directory.
      `--define:__dirname=${JSON.stringify(path.join(REPO, 'lib'))}`,
      '--external:node-gyp-build',
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`esbuild failed: ${r.stderr}`);
  return out;
}

function cpuTicks(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime (fields 14, 15)
}

describe('accept under EMFILE (child process, ulimit -n 64)', () => {
  let dir = '';
  let child: ChildProcess | undefined;

  afterAll(() => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('does not spin while out of descriptors, and serves again once they are freed', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'feersum-emfile-'));
    const lib = bundleLib(dir);
    const script = path.join(dir, 'child.js');
    fs.writeFileSync(
      script,
      `
const path = require('node:path');
module.paths.push(${JSON.stringify(path.join(REPO, 'node_modules'))});
const { Feersum } = require(${JSON.stringify(lib)});
const engine = new Feersum({ headerTimeout: 60, keepaliveTimeout: 60 });
engine.onError(() => {});
engine.requestHandler((req) => req.sendResponse(200, [], 'ok ' + req.uri));
engine.listen({ host: '127.0.0.1', port: 0 }).then(({ port }) => {
  process.stdout.write('PORT ' + port + '\\n');
});
setInterval(() => {
  // Counting needs a descriptor too: under EMFILE this fails, which is the point.
  try {
    process.stdout.write('FDS ' + require('node:fs').readdirSync('/proc/self/fd').length + '\\n');
  } catch (err) {
    process.stdout.write('FDS ' + err.code + '\\n');
  }
}, 500);
process.on('uncaughtException', (err) => {
  process.stderr.write('UNCAUGHT ' + (err && err.stack) + '\\n');
  process.exit(70);
});
`,
    );
    // The child needs node-gyp-build, resolved from the repository.
    child = spawn('bash', ['-c', `ulimit -n 64; exec "${process.execPath}" "${script}"`], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODE_PATH: path.join(REPO, 'node_modules') },
    });
    let out = '';
    let errText = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (errText += d));
    await waitFor(() => /PORT (\d+)/.test(out) || child!.exitCode !== null, 15000, 'child listening');
    const m = /PORT (\d+)/.exec(out);
    expect(m, errText).not.toBeNull();
    const port = Number(m![1]);
    const pid = child.pid!;

    // A request works.
    let c = rawClient(port);
    await c.connected;
    c.send('GET /first HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect((await c.responses(1)).map((r) => r.status)).toEqual([200]);
    c.sock.destroy();

    // Open many more connections than the child has descriptors for.
    const flood: ReturnType<typeof rawClient>[] = [];
    for (let i = 0; i < 120; i++) {
      const f = rawClient(port);
      flood.push(f);
    }
    await Promise.all(flood.map((f) => Promise.race([f.connected, sleep(2000)])));
    await sleep(500);
    // The child really is out of descriptors (its own fd count fails with EMFILE).
    const mark = out.length;
    await waitFor(() => out.slice(mark).includes('FDS EMFILE'), 3000, 'child at EMFILE');
    const refused = flood.filter((f) => f.closed).length;

    // Out of descriptors: the child must sit idle, not spin on accept.
    const t0 = cpuTicks(pid);
    await sleep(2000);
    const used = cpuTicks(pid) - t0; // clock ticks (normally 100/s)
    expect(child.exitCode).toBeNull();
    expect(used, `child used ${used} ticks of CPU in 2 s at EMFILE (${refused} of 120 flood connections closed)`).toBeLessThan(40);

    // Free the descriptors: the child serves again.
    for (const f of flood) f.sock.destroy();
    await sleep(500);
    let served = false;
    for (let attempt = 0; attempt < 20 && !served; attempt++) {
      c = rawClient(port);
      await c.connected;
      c.send('GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      try {
        const [r] = await c.responses(1, 1000);
        served = r.status === 200 && r.body.toString() === 'ok /after';
      } catch {
        await sleep(250);
      }
      c.sock.destroy();
    }
    expect(served, errText).toBe(true);
    expect(child.exitCode).toBeNull();
    child.kill('SIGTERM');
  });
});

// ---------------------------------------------------------------- afterwards

describe('afterwards', () => {
  it('still answers a normal request', async () => {
    const { server } = await recordingServer({});
    const { responses } = await oneShot(server.port, 'GET /alive HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(responses.map((r) => r.status)).toEqual([200]);
  });

  it('descriptors are back to baseline once the servers are closed', async () => {
    for (const s of servers.splice(0)) await s.close();
    await waitFor(() => openFdCount() <= baselineFds, 5000, `fds back to baseline (${openFdCount()} vs ${baselineFds})`);
  });
});
