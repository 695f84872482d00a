// PSGI over HTTPS: psgi.url_scheme, the SSL_* keys (as nginx / mod_ssl name
// them), and WebSockets over TLS (wss://) through the tunnel psgix.io gives.
import https from 'node:https';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';

import { Feersum, type PsgiEnv, wsUpgradeRequest } from '../lib/index';
import { openFdCount, waitFor } from './helpers';
import { type Fixtures, makeFixtures } from './tls-certs';

let fx: Fixtures;
let engine: Feersum;
let port: number;
let baselineFds: number;
const wss = new WebSocketServer({ noServer: true });
wss.on('connection', (ws) => ws.on('message', (data, binary) => ws.send(binary ? data : `echo:${data}`)));

beforeAll(async () => {
  baselineFds = openFdCount();
  fx = await makeFixtures();
  engine = new Feersum();
  engine.onError(() => {});
  engine.psgiRequestHandler((env: PsgiEnv) => {
    if (env.HTTP_UPGRADE === 'websocket') {
      const { request, socket, head } = wsUpgradeRequest(env);
      wss.handleUpgrade(request as never, socket, head, (ws) => wss.emit('connection', ws, request));
      return () => {}; // the socket is the app's now
    }
    const keys = Object.fromEntries(
      Object.entries(env).filter(([k]) => k.startsWith('SSL_') || k === 'HTTPS' || k === 'psgi.url_scheme'),
    );
    return [200, ['Content-Type', 'application/json'], [JSON.stringify(keys)]];
  });
  ({ port } = await engine.listen({
    host: '127.0.0.1',
    port: 0,
    tls: { cert: fx.server.cert, key: fx.server.key, ca: fx.ca.cert, requestCert: true, rejectUnauthorized: false },
  }));
});

afterAll(async () => {
  await engine.gracefulShutdown();
  wss.close();
});

function getJson(opts: https.RequestOptions): Promise<Record<string, string>> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: '/', ca: fx.ca.certPem, servername: 'localhost', agent: false, ...opts }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(JSON.parse(body)));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('PSGI env over TLS', () => {
  it('reports https and the TLS keys without a client certificate', async () => {
    const env = await getJson({});
    expect(env['psgi.url_scheme']).toBe('https');
    expect(env.HTTPS).toBe('on');
    expect(env.SSL_PROTOCOL).toBe('TLSv1.3');
    expect(env.SSL_CIPHER).toMatch(/^TLS_/);
    expect(env.SSL_SERVER_NAME).toBe('localhost');
    expect(env.SSL_CLIENT_VERIFY).toBe('NONE');
    expect(env.SSL_CLIENT_S_DN).toBeUndefined();
  });

  it('reports the client certificate: verified subject, issuer, serial and PEM', async () => {
    const env = await getJson({ cert: fx.client.certPem, key: fx.client.keyPem });
    expect(env.SSL_CLIENT_VERIFY).toBe('SUCCESS');
    expect(env.SSL_CLIENT_S_DN).toBe(fx.client.subject);
    expect(env.SSL_CLIENT_I_DN).toBe(fx.client.issuer);
    expect(env.SSL_CLIENT_SERIAL).toBe(fx.client.serial);
    expect(env.SSL_CLIENT_CERT.trim()).toBe(fx.client.certPem.trim());
  });

  it('reports a client certificate that fails verification (optional mode)', async () => {
    const env = await getJson({ cert: fx.rogueClient.certPem, key: fx.rogueClient.keyPem });
    expect(env.SSL_CLIENT_VERIFY).toMatch(/^FAILED:/);
    expect(env.SSL_CLIENT_S_DN).toBe(fx.rogueClient.subject);
  });
});

describe('WebSockets over TLS', () => {
  it('echoes text and binary messages over wss://, including one sent at once', async () => {
    const ws = new WebSocket(`wss://127.0.0.1:${port}/ws`, { ca: fx.ca.certPem, servername: 'localhost' });
    const got: string[] = [];
    await new Promise<void>((resolve, reject) => {
      ws.on('open', () => {
        ws.send('first');
        ws.send('second');
        ws.send(Buffer.from([1, 2, 3]));
      });
      ws.on('message', (data, binary) => {
        got.push(binary ? `bin:${[...(data as Buffer)].join(',')}` : String(data));
        if (got.length === 3) ws.close();
      });
      ws.on('close', () => resolve());
      ws.on('error', reject);
    });
    expect(got).toEqual(['echo:first', 'echo:second', 'bin:1,2,3']);
  });

  it('moves a large message through the tunnel with backpressure', async () => {
    const big = Buffer.alloc(3 * 1024 * 1024, 7);
    const ws = new WebSocket(`wss://127.0.0.1:${port}/ws`, { ca: fx.ca.certPem, servername: 'localhost' });
    const echoed = await new Promise<Buffer>((resolve, reject) => {
      ws.on('open', () => ws.send(big));
      ws.on('message', (data) => {
        resolve(data as Buffer);
        ws.close();
      });
      ws.on('error', reject);
    });
    expect(echoed.equals(big)).toBe(true);
  });

  it('releases tunnels and descriptors when the clients are gone', async () => {
    await waitFor(() => engine.stats().connections === 0, 5000, 'connections closed');
    await waitFor(() => openFdCount() <= baselineFds + 1, 5000, 'fds back to baseline');
  });
});
