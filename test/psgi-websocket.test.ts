// PSGI conformance, part 3: taking the connection. WebSockets with the real
// `ws` package through wsUpgradeRequest(env) + handleUpgrade, raw use of
// env['psgix.io'], the stand-in that lets a spread of the env leave the
// connection alone, and Upgrade requests answered as plain HTTP.
import crypto from 'node:crypto';
import net from 'node:net';

import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';

import { type PsgiApp, type PsgiEnv, wsUpgradeRequest } from '../lib/index';
import { openFdCount, parseResponses, rawExchange, sleep, startPsgi, type TestServer, waitFor } from './helpers';

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const isWebSocket = (env: PsgiEnv) => String(env.HTTP_UPGRADE ?? '').toLowerCase() === 'websocket';

/** An app that echoes WebSocket messages and answers everything else with plain HTTP. */
function echoApp(wss: WebSocketServer, seen?: PsgiEnv[]): PsgiApp {
  return (env) => {
    seen?.push(env);
    if (!isWebSocket(env)) return [200, ['Content-Type', 'text/plain'], [`plain ${env.PATH_INFO}`]];
    const { request: upgradeReq, socket, head } = wsUpgradeRequest(env);
    wss.handleUpgrade(upgradeReq as never, socket, head, (ws) => {
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    });
    return undefined as never; // ignored: the connection is no longer the engine's
  };
}

/** A client-to-server WebSocket frame (masked, as clients must send). */
function clientFrame(payload: Buffer, opcode = 0x1): Buffer {
  const mask = crypto.randomBytes(4);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i & 3]));
  let header: Buffer;
  if (payload.length < 126) header = Buffer.from([0x80 | opcode, 0x80 | payload.length]);
  else {
    header = Buffer.alloc(4);
    header[0] = 0x80 | opcode;
    header[1] = 0x80 | 126;
    header.writeUInt16BE(payload.length, 2);
  }
  return Buffer.concat([header, mask, masked]);
}

function upgradeHead(path = '/ws', extra = ''): string {
  const key = crypto.randomBytes(16).toString('base64');
  return (
    `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`
  );
}

describe('WebSockets through wsUpgradeRequest + ws handleUpgrade', () => {
  it('echoes 1,000 messages (text and binary, one of 1 MB), closes cleanly, then plain HTTP goes on', async () => {
    const wss = new WebSocketServer({ noServer: true, maxPayload: 4 * 1024 * 1024 });
    const seen: PsgiEnv[] = [];
    server = await startPsgi(echoApp(wss, seen));
    const baselineFds = openFdCount();

    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/chat?room=1`, { headers: { Cookie: 'a=1', 'X-Test': 'yes' } });
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    // Taken from the engine: it no longer counts the connection.
    await waitFor(() => server!.engine.stats().connections === 0, 2000, 'the engine to let go');

    const big = crypto.randomBytes(1024 * 1024);
    const sent: Array<{ data: Buffer | string; binary: boolean }> = [];
    for (let i = 0; i < 1000; i++) {
      if (i === 500) sent.push({ data: big, binary: true });
      else if (i % 3 === 0) sent.push({ data: crypto.randomBytes(1 + (i % 200)), binary: true });
      else sent.push({ data: `message ${i} ✓`, binary: false });
    }
    const received: Array<{ data: Buffer; binary: boolean }> = [];
    const allReceived = new Promise<void>((resolve) => {
      ws.on('message', (data: Buffer, binary) => {
        received.push({ data, binary });
        if (received.length === sent.length) resolve();
      });
    });
    for (const m of sent) ws.send(m.data, { binary: m.binary });
    await allReceived;
    for (let i = 0; i < sent.length; i++) {
      expect(received[i].binary).toBe(sent[i].binary);
      const expected = typeof sent[i].data === 'string' ? Buffer.from(sent[i].data as string) : (sent[i].data as Buffer);
      expect(received[i].data.equals(expected), `message ${i}`).toBe(true);
    }

    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    ws.close(1000, 'done');
    expect(await closed).toBe(1000);

    // The env the app saw for the upgrade request.
    expect(seen[0].PATH_INFO).toBe('/chat');
    expect(seen[0].QUERY_STRING).toBe('room=1');

    // Plain HTTP on the same engine afterwards.
    const r = await request(`http://127.0.0.1:${server.port}/after`);
    expect(await r.body.text()).toBe('plain /after');
    await waitFor(() => openFdCount() <= baselineFds + 2, 3000, 'fds released'); // undici keeps one connection
  }, 20000);

  it('wsUpgradeRequest gives method, url and lower-cased, joined headers', async () => {
    let upgrade: ReturnType<typeof wsUpgradeRequest> | undefined;
    server = await startPsgi((env) => {
      upgrade = wsUpgradeRequest(env);
      upgrade.socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return undefined as never;
    });
    await rawExchange(server.port, upgradeHead('/p?q=1', 'Cookie: a=1\r\nCookie: b=2\r\nX-Multi: 1\r\nX-Multi: 2\r\n'));
    expect(upgrade!.request.method).toBe('GET');
    expect(upgrade!.request.url).toBe('/p?q=1');
    expect(upgrade!.request.headers.upgrade).toBe('websocket');
    expect(upgrade!.request.headers.cookie).toBe('a=1; b=2');
    expect(upgrade!.request.headers['x-multi']).toBe('1, 2');
    expect(upgrade!.request.headers['sec-websocket-version']).toBe('13');
    expect(upgrade!.socket).toBeInstanceOf(net.Socket);
    expect(upgrade!.head.length).toBe(0);
  });

  it('a frame sent right after the upgrade request (same packet) reaches ws through `head`', async () => {
    const wss = new WebSocketServer({ noServer: true });
    let headLength = -1;
    server = await startPsgi((env) => {
      const { request: upgradeReq, socket, head } = wsUpgradeRequest(env);
      headLength = head.length;
      wss.handleUpgrade(upgradeReq as never, socket, head, (ws) => {
        ws.on('message', (data) => ws.send(`echo:${String(data)}`));
      });
      return undefined as never;
    });
    const frame = clientFrame(Buffer.from('early bird'));
    const sock = net.connect(server.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    sock.on('data', (d) => chunks.push(d));
    await new Promise((r) => sock.on('connect', r));
    sock.write(Buffer.concat([Buffer.from(upgradeHead()), frame]));
    const expectedPayload = Buffer.from('echo:early bird');
    await waitFor(() => Buffer.concat(chunks).includes(expectedPayload), 2000, 'the echo of the early frame');
    const text = Buffer.concat(chunks).toString('latin1');
    expect(text).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\n/);
    expect(headLength).toBe(frame.length);
    // A second frame on the open connection.
    sock.write(clientFrame(Buffer.from('second')));
    await waitFor(() => Buffer.concat(chunks).includes(Buffer.from('echo:second')), 2000, 'the second echo');
    sock.destroy();
  });

  it('a taken connection is outside the engine: no timeouts, not waited for by gracefulShutdown', async () => {
    const wss = new WebSocketServer({ noServer: true });
    server = await startPsgi(echoApp(wss), { keepaliveTimeout: 1, headerTimeout: 1, readTimeout: 1, writeTimeout: 1 });
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws`);
    await new Promise((resolve) => ws.once('open', resolve));
    await sleep(1600); // longer than every engine timeout
    const reply = new Promise<string>((resolve) => ws.once('message', (d) => resolve(String(d))));
    ws.send('still here');
    expect(await reply).toBe('still here');
    await server.close(); // resolves although the WebSocket is open
    server = undefined;
    const again = new Promise<string>((resolve) => ws.once('message', (d) => resolve(String(d))));
    ws.send('after shutdown');
    expect(await again).toBe('after shutdown');
    ws.terminate();
  });
});

describe('env["psgix.io"] handed to libraries as it is', () => {
  it('ws handleUpgrade with the stand-in itself works like the real socket', async () => {
    const wss = new WebSocketServer({ noServer: true });
    server = await startPsgi((env) => {
      if (!isWebSocket(env)) return [200, [], ['plain']];
      const request = {
        method: env.REQUEST_METHOD,
        url: env.REQUEST_URI,
        headers: {
          upgrade: env.HTTP_UPGRADE,
          connection: env.HTTP_CONNECTION,
          'sec-websocket-key': env.HTTP_SEC_WEBSOCKET_KEY,
          'sec-websocket-version': env.HTTP_SEC_WEBSOCKET_VERSION,
        },
      };
      wss.handleUpgrade(request as never, env['psgix.io'], Buffer.alloc(0), (ws) => {
        ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
      });
      return () => {}; // the socket is the app's now
    });
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/`);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const got: string[] = [];
    const done = new Promise<void>((resolve) =>
      ws.on('message', (d) => {
        got.push(String(d));
        if (got.length === 50) resolve();
      }),
    );
    for (let i = 0; i < 50; i++) ws.send(`m${i}`);
    await done;
    expect(got).toEqual(Array.from({ length: 50 }, (_, i) => `m${i}`));
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    ws.close(1000);
    expect(await closed).toBe(1000);
  });

  it('stream.pipeline(socket, socket) through the stand-in echoes', async () => {
    const { pipeline } = await import('node:stream');
    server = await startPsgi((env) => {
      const sock = env['psgix.io'];
      sock.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
      pipeline(sock, sock, () => {});
      return () => {};
    });
    const sock = net.connect(server.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    sock.on('data', (d) => chunks.push(d));
    await new Promise((r) => sock.on('connect', r));
    sock.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
    sock.write('ping-pong');
    await waitFor(() => Buffer.concat(chunks).toString().endsWith('ping-pong'), 2000, 'the echo');
    sock.end();
    await new Promise((r) => sock.on('close', r));
  });
});

describe('env["psgix.io"] used directly', () => {
  it('the app writes its own 101 and echoes raw bytes, including bytes sent with the request', async () => {
    server = await startPsgi((env) => {
      const sock = env['psgix.io'];
      sock.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
      sock.on('data', (d: Buffer) => sock.write(d));
      sock.on('end', () => sock.end());
      return undefined as never;
    });
    const sock = net.connect(server.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    sock.on('data', (d) => chunks.push(d));
    await new Promise((r) => sock.on('connect', r));
    sock.write('GET /raw HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nearly-bytes|');
    await waitFor(() => Buffer.concat(chunks).toString().includes('early-bytes|'), 2000, 'the early bytes');
    const payload = crypto.randomBytes(256 * 1024);
    sock.write(payload);
    await waitFor(() => Buffer.concat(chunks).includes(payload.subarray(payload.length - 64)), 3000, 'the echo');
    const all = Buffer.concat(chunks);
    const head = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n';
    expect(all.subarray(0, head.length).toString()).toBe(head);
    expect(all.subarray(head.length).equals(Buffer.concat([Buffer.from('early-bytes|'), payload]))).toBe(true);
    sock.end();
    await new Promise((r) => sock.on('close', r));
  });

  it('is a net.Socket, flowing once the app listens, with the peer address', async () => {
    const facts: unknown[] = [];
    server = await startPsgi((env) => {
      const sock = env['psgix.io'];
      facts.push(sock instanceof net.Socket, sock.remoteAddress, sock.remotePort === Number(env.REMOTE_PORT));
      facts.push(sock.readable, sock.writable, sock.isPaused());
      sock.end('HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n');
      return undefined as never;
    });
    const { data } = await rawExchange(server.port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(data.toString()).toBe('HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n');
    expect(facts).toEqual([true, '127.0.0.1', true, true, true, false]);
  });

  it('output queued before the socket was taken (a 103) is written first', async () => {
    server = await startPsgi((env) => {
      env['psgix.informational'](103, ['Link', '</x.css>; rel=preload']);
      env['psgix.io'].end('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nraw');
      return undefined as never;
    });
    const { data } = await rawExchange(server.port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(data.toString()).toBe(
      'HTTP/1.1 103 Early Hints\r\nLink: </x.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nraw',
    );
  });

  it('kept for later by a delayed response that never responds (the PSGI way)', async () => {
    server = await startPsgi((env) => {
      const sock = env['psgix.io']; // only read here: the connection is still the engine's
      return () => {
        setTimeout(() => sock.end('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nlater'), 20);
      };
    });
    const { data } = await rawExchange(server.port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(data.toString()).toMatch(/^HTTP\/1\.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nlater$/);
    await waitFor(() => server!.engine.stats().connections === 0);
  });

  it('read but unused, and no response returned: a 500 like any app returning nothing; a later use is reported', async () => {
    const errors: unknown[] = [];
    let late: net.Socket | undefined;
    server = await startPsgi((env) => {
      const sock = env['psgix.io'];
      setTimeout(() => {
        late = sock;
        sock.write('too late');
      }, 20);
      return undefined as never;
    });
    server.engine.onError((e) => errors.push(e));
    const { data } = await rawExchange(server.port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(parseResponses(data)[0].status).toBe(500);
    expect(data.toString()).not.toContain('too late');
    await waitFor(() => errors.length === 2, 2000, 'both errors');
    expect(String(errors[0])).toMatch(/must return/);
    expect(String(errors[1])).toMatch(/after the response was complete/);
    expect(late!.destroyed).toBe(true);
  });

  it('taken after an await in an async app', async () => {
    server = await startPsgi(async (env) => {
      await sleep(10);
      env['psgix.io'].end('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nasync');
      return undefined as never;
    });
    const { data } = await rawExchange(server.port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(data.toString()).toMatch(/\r\n\r\nasync$/);
  });

  it('a response returned after the socket was taken is ignored (nothing extra on the wire)', async () => {
    const errors: unknown[] = [];
    server = await startPsgi((env) => {
      env['psgix.io'].end('HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n');
      return (respond) => {
        respond([200, [], ['never sent']]);
      };
    });
    server.engine.onError((e) => errors.push(e));
    const { data } = await rawExchange(server.port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(data.toString()).toBe('HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n');
    expect(errors).toEqual([]);
  });

  it('looking at the stand-in (instanceof, `in`, typeof of a method) leaves the connection alone', async () => {
    const seen: unknown[] = [];
    server = await startPsgi((env) => {
      const sock = env['psgix.io'];
      seen.push(sock instanceof net.Socket, 'write' in sock, typeof sock.write, sock.write === sock.write, String(Object.keys(sock)));
      return [200, [], [`plain ${env.PATH_INFO}`]];
    });
    const { data } = await rawExchange(
      server.port,
      'GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    expect(parseResponses(data).map((r) => r.body.toString())).toEqual(['plain /a', 'plain /b']);
    expect(seen.slice(0, 5)).toEqual([true, true, 'function', true, '']);
  });

  it('a method taken from the stand-in before use takes the connection when called', async () => {
    server = await startPsgi((env) => {
      const end = env['psgix.io'].end; // only looked up: nothing taken yet
      return () => {
        setTimeout(() => end('HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\ncalled'), 10);
      };
    });
    const { data } = await rawExchange(server.port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(data.toString()).toMatch(/\r\n\r\ncalled$/);
  });

  it('a stand-in used after the response was complete is a closed socket and the misuse is reported', async () => {
    const errors: unknown[] = [];
    let late: net.Socket | undefined;
    server = await startPsgi((env) => {
      const copy = { ...env };
      setTimeout(() => {
        late = copy['psgix.io'];
        late.write('oops');
      }, 20);
      return [200, [], ['normal']];
    });
    server.engine.onError((e) => errors.push(e));
    const { data } = await rawExchange(
      server.port,
      'GET / HTTP/1.1\r\nHost: x\r\n\r\n',
      { timeout: 300 },
    );
    const rs = parseResponses(data);
    expect(rs.map((r) => r.body.toString())).toEqual(['normal']);
    await waitFor(() => late !== undefined && late.destroyed, 2000, 'the late use');
    expect(errors.map(String).join()).toMatch(/after the response was complete/);
  });

  it('a middleware spread followed by a raw use of the copy takes the connection', async () => {
    server = await startPsgi((env) => {
      const copy = { ...env }; // a middleware copies the env...
      const sock = copy['psgix.io']; // ...and the inner app takes the socket from the copy
      sock.end('HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\ncopy');
      return undefined as never;
    });
    const { data } = await rawExchange(server.port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(data.toString()).toMatch(/\r\n\r\ncopy$/);
  });

  it('taking the socket of a client that has gone gives a destroyed socket, quietly', async () => {
    const errors: unknown[] = [];
    let sock: net.Socket | undefined;
    let started = false;
    server = await startPsgi(async (env) => {
      started = true;
      await sleep(100); // the client leaves meanwhile
      sock = env['psgix.io'];
      sock.write('nobody there');
      return undefined as never;
    });
    server.engine.onError((e) => errors.push(e));
    const c = net.connect(server.port, '127.0.0.1');
    c.on('error', () => {});
    await new Promise((r) => c.on('connect', r));
    c.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor(() => started);
    c.destroy();
    await waitFor(() => sock !== undefined, 2000);
    expect(sock!.destroyed).toBe(true);
    await sleep(20);
    expect(errors).toEqual([]);
  });
});

describe('Upgrade requests answered as plain HTTP', () => {
  it('stay HTTP: the next request on the connection is served (pipelined or not)', async () => {
    server = await startPsgi((env) => [200, ['Content-Type', 'text/plain'], [`plain ${env.PATH_INFO} ${env.HTTP_UPGRADE ?? '-'}`]]);
    const pipelined = await rawExchange(
      server.port,
      upgradeHead('/up') + 'GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    expect(parseResponses(pipelined.data).map((r) => r.body.toString())).toEqual(['plain /up websocket', 'plain /next -']);

    const sequential = await rawExchange(server.port, [upgradeHead('/up'), 'GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'], {
      gapMs: 50,
    });
    expect(parseResponses(sequential.data).map((r) => r.body.toString())).toEqual(['plain /up websocket', 'plain /next -']);
  });

  it('a ws client refused with a plain 403 sees the refusal; the server goes on', async () => {
    server = await startPsgi((env) => (isWebSocket(env) ? [403, ['Content-Type', 'text/plain'], ['no']] : [200, [], ['ok']]));
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws`);
    const status = await new Promise<number>((resolve) => {
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode!));
      ws.on('error', () => {});
    });
    expect(status).toBe(403);
    ws.terminate();
    const r = await request(`http://127.0.0.1:${server.port}/`);
    expect(await r.body.text()).toBe('ok');
  });
});
