// Shared test helpers: start an engine on a loopback port, talk to it with
// raw sockets, and count file descriptors.
import fs from 'node:fs';
import net from 'node:net';

import { Feersum, type EngineOptions, type FeersumRequest } from '../lib/index';

export interface TestServer {
  engine: Feersum;
  port: number;
  close(): Promise<void>;
}

export async function startServer(
  handler: (req: FeersumRequest) => unknown,
  options?: EngineOptions,
): Promise<TestServer> {
  const engine = new Feersum(options);
  engine.requestHandler(handler);
  engine.onError(() => {}); // tests that care install their own hook
  const { port } = await engine.listen({ host: '127.0.0.1', port: 0 });
  return { engine, port, close: () => engine.gracefulShutdown() };
}

export async function startPsgi(app: Parameters<Feersum['psgiRequestHandler']>[0], options?: EngineOptions): Promise<TestServer> {
  const engine = new Feersum(options);
  engine.psgiRequestHandler(app);
  engine.onError(() => {});
  const { port } = await engine.listen({ host: '127.0.0.1', port: 0 });
  return { engine, port, close: () => engine.gracefulShutdown() };
}

/**
 * Sends raw bytes and collects everything the server sends until it closes
 * (or the timeout; or, with `idleMs`, once nothing has arrived for that long
 * after the last write). `localPort` is the client's port (what the server
 * sees as the remote port).
 */
export function rawExchange(
  port: number,
  data: string | Buffer | Array<string | Buffer>,
  opts: { timeout?: number; gapMs?: number; endAfterWrite?: boolean; idleMs?: number } = {},
): Promise<{ data: Buffer; closed: boolean; localPort: number }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const sock = net.connect(port, '127.0.0.1');
    let closed = false;
    let localPort = 0;
    let written = false;
    let idle: NodeJS.Timeout | undefined;
    const finish = () => {
      clearTimeout(timer);
      if (idle) clearTimeout(idle);
      sock.destroy();
      resolve({ data: Buffer.concat(chunks), closed, localPort });
    };
    const armIdle = () => {
      if (opts.idleMs === undefined || !written) return;
      if (idle) clearTimeout(idle);
      idle = setTimeout(finish, opts.idleMs);
    };
    const timer = setTimeout(finish, opts.timeout ?? 2000);
    sock.on('data', (d) => {
      chunks.push(d);
      armIdle();
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') return; // the server closing on bad input
      clearTimeout(timer);
      reject(err);
    });
    sock.on('close', () => {
      closed = true;
      finish();
    });
    const pieces = Array.isArray(data) ? data : [data];
    sock.on('connect', async () => {
      localPort = sock.localPort ?? 0;
      for (const p of pieces) {
        if (sock.destroyed) return;
        sock.write(p);
        if (opts.gapMs) await new Promise((r) => setTimeout(r, opts.gapMs));
      }
      if (opts.endAfterWrite) sock.end();
      written = true;
      armIdle();
    });
  });
}

export interface ParsedResponse {
  status: number;
  headers: Record<string, string>;
  rawHead: string;
  body: Buffer;
}

/**
 * Splits a byte stream into HTTP/1.1 responses (Content-Length, chunked, or
 * close-delimited when `toEnd`); stops at the first incomplete one.
 */
export function parseResponses(buf: Buffer, opts: { headRequests?: number[]; toEnd?: boolean } = {}): ParsedResponse[] {
  const out: ParsedResponse[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const end = buf.indexOf('\r\n\r\n', pos);
    if (end < 0) break;
    const rawHead = buf.subarray(pos, end).toString('latin1');
    const lines = rawHead.split('\r\n');
    const status = Number(lines[0].split(' ')[1]);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const i = line.indexOf(':');
      const k = line.slice(0, i).toLowerCase();
      const v = line.slice(i + 1).trim();
      headers[k] = headers[k] === undefined ? v : headers[k] + ', ' + v;
    }
    let p = end + 4;
    let body: Buffer;
    const noBody = (opts.headRequests ?? []).includes(out.length) || status === 204 || status === 304 || status < 200;
    if (noBody) {
      body = Buffer.alloc(0);
    } else if (headers['transfer-encoding'] === 'chunked') {
      const parts: Buffer[] = [];
      let complete = false;
      for (;;) {
        const lineEnd = buf.indexOf('\r\n', p);
        if (lineEnd < 0) break;
        const size = parseInt(buf.subarray(p, lineEnd).toString('latin1'), 16);
        if (Number.isNaN(size)) throw new Error(`bad chunk size at ${p}`);
        if (size === 0) {
          if (buf.length < lineEnd + 4) break;
          p = lineEnd + 4;
          complete = true;
          break;
        }
        if (buf.length < lineEnd + 2 + size + 2) break;
        parts.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size));
        p = lineEnd + 2 + size + 2;
      }
      if (!complete) break;
      body = Buffer.concat(parts);
    } else if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      if (buf.length < p + n) break;
      body = buf.subarray(p, p + n);
      p += n;
    } else {
      if (!opts.toEnd) break;
      body = buf.subarray(p);
      p = buf.length;
    }
    pos = p;
    out.push({ status, headers, rawHead, body });
  }
  return out;
}

/** A handler that gathers the whole request body, buffered or streamed, passes
 *  it to `onRequest` and answers 200 with an empty text/plain body. */
export function wholeBodyHandler(onRequest: (req: FeersumRequest, body: Buffer) => void): (req: FeersumRequest) => void {
  return (req) => {
    if (req.bodyBuffered) {
      onRequest(req, req.body ?? Buffer.alloc(0));
      req.sendResponse(200, ['Content-Type', 'text/plain'], '');
      return;
    }
    const parts: Buffer[] = [];
    req.input.on('data', (d: Buffer) => parts.push(d));
    req.input.on('error', () => {});
    req.input.on('end', () => {
      onRequest(req, Buffer.concat(parts));
      req.sendResponse(200, ['Content-Type', 'text/plain'], '');
    });
  };
}

export function openFdCount(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

/** Waits until fn() is true (polling), or fails after `ms`. */
export async function waitFor(fn: () => boolean, ms = 3000, what = 'condition'): Promise<void> {
  const start = Date.now();
  while (!fn()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One raw client connection that collects what the server sends, and when
 *  it connected and closed. `paused` starts it not reading (a slow reader). */
export function rawClient(port: number, opts: { paused?: boolean } = {}) {
  const sock = net.connect(port, '127.0.0.1');
  let buf = Buffer.alloc(0);
  let connectedAt = 0;
  let closedAt = 0;
  const connected = new Promise<void>((r) =>
    sock.on('connect', () => {
      connectedAt = Date.now();
      r();
    }),
  );
  if (opts.paused) sock.pause();
  sock.on('data', (d) => (buf = Buffer.concat([buf, d])));
  sock.on('close', () => (closedAt = Date.now()));
  sock.on('error', () => {});
  return {
    sock,
    connected,
    get connectedAt() {
      return connectedAt;
    },
    get localPort() {
      return sock.localPort ?? 0;
    },
    get data() {
      return buf;
    },
    get closed() {
      return closedAt !== 0;
    },
    get closedAt() {
      return closedAt;
    },
    send(s: string | Buffer) {
      if (!sock.destroyed) sock.write(s);
    },
    /** Waits for `n` final (non-1xx) responses. */
    async responses(n: number, ms = 3000) {
      const start = Date.now();
      for (;;) {
        const rs = parseResponses(buf).filter((r) => r.status >= 200);
        if (rs.length >= n) return rs;
        if (Date.now() - start > ms) throw new Error(`got ${rs.length} of ${n} responses: ${JSON.stringify(buf.toString('latin1'))}`);
        await sleep(5);
      }
    },
    async waitClosed(ms = 5000) {
      const start = Date.now();
      while (!closedAt) {
        if (Date.now() - start > ms) throw new Error(`connection not closed after ${ms} ms`);
        await sleep(5);
      }
    },
  };
}
