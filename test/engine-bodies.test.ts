// Request bodies through the native interface: Content-Length and chunked
// uploads from 0 bytes to 50 MB with exact sha256 round trips, buffered vs
// streamed delivery, backpressure, Expect: 100-continue, unread bodies.
import crypto from 'node:crypto';
import http from 'node:http';

import { afterEach, describe, expect, it } from 'vitest';

import type { FeersumRequest } from '../lib/index';
import { parseResponses, rawExchange, sleep, startServer, type TestServer, waitFor } from './helpers';

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** Replies with sha256 and length of the body, read from req.input. */
function digestHandler(req: FeersumRequest): void {
  const hash = crypto.createHash('sha256');
  let n = 0;
  const buffered = req.bodyBuffered;
  req.input.on('data', (d: Buffer) => {
    hash.update(d);
    n += d.length;
  });
  req.input.on('end', () =>
    req.sendResponse(200, ['Content-Type', 'text/plain'], `${hash.digest('hex')} ${n} ${buffered ? 'buffered' : 'streamed'}`),
  );
}

function upload(port: number, body: Buffer, opts: { chunked?: boolean; piece?: number; expect100?: boolean } = {}) {
  return new Promise<{ status: number; text: string }>((resolve, reject) => {
    const headers: Record<string, string | number> = {};
    if (!opts.chunked) headers['Content-Length'] = body.length;
    if (opts.expect100) headers.Expect = '100-continue';
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/up', headers, agent: false }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, text }));
    });
    req.on('error', reject);
    const send = () => {
      const piece = opts.piece ?? 256 * 1024;
      for (let i = 0; i < body.length; i += piece) req.write(body.subarray(i, i + piece));
      req.end();
    };
    if (opts.expect100) req.on('continue', send);
    else send();
  });
}

const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

describe('request bodies', () => {
  const sizes = [0, 1, 1000, 64 * 1024, 64 * 1024 + 1, 1024 * 1024, 50 * 1024 * 1024];
  for (const size of sizes) {
    for (const chunked of [false, true]) {
      it(`round-trips ${size} bytes ${chunked ? 'chunked' : 'with Content-Length'}`, async () => {
        server ??= await startServer(digestHandler);
        const body = crypto.randomBytes(size);
        const r = await upload(server.port, body, { chunked, piece: size > 1e6 ? 1024 * 1024 : 7919 });
        expect(r.status).toBe(200);
        const [digest, n, mode] = r.text.split(' ');
        expect(digest).toBe(sha(body));
        expect(Number(n)).toBe(size);
        // bodyBufferSize (64 KiB by default) decides how the body reaches the app.
        expect(mode).toBe(size <= 64 * 1024 ? 'buffered' : 'streamed');
      }, 60000);
    }
  }

  it('hands a small body to the handler as req.body before it runs', async () => {
    server = await startServer((req) => req.sendResponse(200, [], `${req.body?.toString()}|${req.bodyBuffered}`));
    const { data } = await rawExchange(
      server.port,
      ['POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello', ' world'],
      { gapMs: 30 },
    );
    expect(parseResponses(data)[0].body.toString()).toBe('hello world|true');
  });

  it('pauses reading while the handler does not consume a streamed body', async () => {
    let input: import('node:stream').Readable | undefined;
    server = await startServer((req) => {
      input = req.input; // not read yet
      const hash = crypto.createHash('sha256');
      req.input.on('end', () => req.sendResponse(200, [], hash.digest('hex')));
      setTimeout(() => req.input.on('data', (d: Buffer) => hash.update(d)), 500);
    });
    const body = crypto.randomBytes(40 * 1024 * 1024);
    const done = upload(server.port, body, { piece: 1024 * 1024 });
    await waitFor(() => input !== undefined);
    await sleep(300);
    // While unread, only the stream's high-water mark (plus one socket read)
    // is held by the engine; the rest waits in kernel buffers or the client.
    expect(input!.readableLength).toBeLessThan(1024 * 1024);
    const r = await done;
    expect(r.text).toBe(sha(body));
  }, 60000);

  it('sends 100 Continue before reading a body the client holds back', async () => {
    server = await startServer(digestHandler);
    for (const size of [10, 200 * 1024]) {
      const body = crypto.randomBytes(size);
      const r = await upload(server.port, body, { expect100: true });
      expect(r.text.split(' ')[0]).toBe(sha(body));
    }
  });

  it('drops an unread body after an early answer and keeps serving the connection', async () => {
    server = await startServer((req) => req.sendResponse(401, [], `no ${req.uri}`));
    const body = 'x'.repeat(200 * 1024);
    const { data } = await rawExchange(server.port, [
      `POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n`,
      body,
      'GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    ]);
    expect(parseResponses(data).map((r) => r.body.toString())).toEqual(['no /a', 'no /b']);
  });

  it('decodes chunked bodies with extensions and trailers', async () => {
    server = await startServer((req) => req.sendResponse(200, [], req.body ?? 'none'));
    const { data } = await rawExchange(
      server.port,
      'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n' +
        '5;name=value\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nTrailer-X: 1\r\n\r\n',
    );
    expect(parseResponses(data)[0].body.toString()).toBe('hello world');
  });

  it('refuses a malformed chunked body with 400 and closes', async () => {
    let called = 0;
    server = await startServer((req) => {
      called++;
      req.sendResponse(200, [], 'x');
    });
    const { data, closed } = await rawExchange(
      server.port,
      'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n',
    );
    expect(parseResponses(data)[0].status).toBe(400);
    expect(closed).toBe(true);
    expect(called).toBe(0);
  });

  it('aborts the body stream when the client disconnects mid-upload', async () => {
    let aborted = false;
    server = await startServer((req) => {
      req.input.on('error', () => (aborted = true));
      req.input.on('close', () => (aborted = aborted || !req.input.readableEnded));
      req.input.resume();
    });
    const sock = (await import('node:net')).connect(server.port, '127.0.0.1');
    sock.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n' + 'x'.repeat(300000));
    await sleep(50);
    sock.destroy();
    await waitFor(() => aborted, 2000, 'body abort');
  });
});
