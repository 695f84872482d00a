// Listeners (IPv4, IPv6, Unix path and abstract sockets, useSocket,
// acceptOnFd from an inherited descriptor), unlisten and graceful shutdown.
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

import { describe, expect, it } from 'vitest';

import { Feersum } from '../lib/index';
import { sleep, waitFor } from './helpers';

const execFileAsync = promisify(execFile);

function get(opts: http.RequestOptions): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ agent: false, ...opts }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

function hello(engine: Feersum): Feersum {
  engine.requestHandler((req) => {
    const env = req.env();
    req.sendResponse(200, [], `${env.SERVER_NAME}|${env.SERVER_PORT}|${env.REMOTE_ADDR}|${req.uri}`);
  });
  return engine;
}

describe('listeners', () => {
  it('listens on IPv4 and reports the bound address', async () => {
    const engine = hello(new Feersum());
    const addr = await engine.listen({ host: '127.0.0.1', port: 0 });
    expect(addr.family).toBe('IPv4');
    expect(addr.port).toBeGreaterThan(0);
    const r = await get({ host: '127.0.0.1', port: addr.port, path: '/v4' });
    expect(r.body).toBe(`127.0.0.1|${addr.port}|127.0.0.1|/v4`);
    await engine.gracefulShutdown();
  });

  it('listens on IPv6 (::1)', async () => {
    const engine = hello(new Feersum());
    const addr = await engine.listen({ host: '::1', port: 0 });
    expect(addr.family).toBe('IPv6');
    const r = await get({ host: '::1', port: addr.port, path: '/v6' });
    expect(r.body).toBe(`::1|${addr.port}|::1|/v6`);
    await engine.gracefulShutdown();
  });

  it('accepts IPv4 clients on a dual-stack listener and reports them as IPv4', async () => {
    const engine = hello(new Feersum());
    const addr = await engine.listen({ port: 0 });
    const r = await get({ host: '127.0.0.1', port: addr.port, path: '/dual' });
    expect(r.body.split('|')[2]).toBe('127.0.0.1');
    await engine.gracefulShutdown();
  });

  it('listens on a Unix socket path and an abstract socket', async () => {
    const engine = hello(new Feersum());
    const file = path.join(os.tmpdir(), `feersum-test-${process.pid}.sock`);
    fs.rmSync(file, { force: true });
    const a = await engine.listen({ path: file });
    expect(a.family).toBe('unix');
    const r = await get({ socketPath: file, path: '/unix' });
    expect(r.body).toBe('localhost|0|127.0.0.1|/unix');
    // Abstract names are bound at their exact length (as systemd, socat and
    // curl use them); Node 20's net module pads them to 108 bytes, so curl is the client.
    const name = `@feersum-test-${process.pid}`;
    await engine.listen({ path: name });
    const curlEnv = { ...process.env, LD_PRELOAD: '' }; // not the sanitizer runtime of an ASan test run
    const r2 = (
      await execFileAsync('curl', ['-s', '-m', '5', '--abstract-unix-socket', name.slice(1), 'http://x/abs'], { env: curlEnv })
    ).stdout;
    expect(r2).toBe('localhost|0|127.0.0.1|/abs');
    await engine.gracefulShutdown();
    fs.rmSync(file, { force: true });
  });

  it('fails clearly when the port is in use', async () => {
    const engine = hello(new Feersum());
    const { port } = await engine.listen({ host: '127.0.0.1', port: 0 });
    const other = new Feersum();
    await expect(other.listen({ host: '127.0.0.1', port })).rejects.toMatchObject({ code: 'EADDRINUSE' });
    await engine.gracefulShutdown();
  });

  it('takes over a listening net.Server with useSocket (TCP and Unix)', async () => {
    const engine = hello(new Feersum());
    const srv = net.createServer(() => {
      throw new Error('node accepted a connection');
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    engine.useSocket(srv);
    for (let i = 0; i < 5; i++) {
      expect((await get({ host: '127.0.0.1', port, path: `/use${i}` })).body).toContain(`/use${i}`);
    }
    const file = path.join(os.tmpdir(), `feersum-use-${process.pid}.sock`);
    fs.rmSync(file, { force: true });
    const usrv = net.createServer();
    await new Promise<void>((r) => usrv.listen(file, r));
    engine.useSocket(usrv);
    expect(fs.existsSync(file)).toBe(true);
    expect((await get({ socketPath: file, path: '/useunix' })).body).toContain('/useunix');
    await engine.gracefulShutdown();
    fs.rmSync(file, { force: true });
  });

  it('accepts on an inherited listening fd (acceptOnFd), as systemd and Server::Starter pass them', async () => {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    const child = spawn(
      process.execPath,
      [
        '-e',
        `const { Feersum } = require(${JSON.stringify(path.resolve(__dirname, '..'))});
         const e = new Feersum();
         e.requestHandler((req) => req.sendResponse(200, [], 'child ' + process.pid));
         e.acceptOnFd(3);
         process.send('ready');`,
      ],
      { stdio: ['ignore', 'inherit', 'inherit', (srv as unknown as { _handle: unknown })._handle as never, 'ipc'] },
    );
    await new Promise<void>((resolve, reject) => {
      child.once('message', () => resolve());
      child.once('exit', (code) => reject(new Error(`child exited ${code}`)));
    });
    srv.close(); // the child owns its copy now
    const r = await get({ host: '127.0.0.1', port, path: '/' });
    expect(r.body).toBe(`child ${child.pid}`);
    child.kill();
  });
});

describe('unlisten and graceful shutdown', () => {
  it('unlisten stops accepting while open connections go on', async () => {
    const engine = hello(new Feersum());
    const { port } = await engine.listen({ host: '127.0.0.1', port: 0 });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    expect((await get({ host: '127.0.0.1', port, path: '/1', agent })).status).toBe(200);
    engine.unlisten();
    await sleep(20);
    expect((await get({ host: '127.0.0.1', port, path: '/2', agent })).body).toContain('/2');
    await expect(get({ host: '127.0.0.1', port, path: '/3' })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    agent.destroy();
    await engine.gracefulShutdown();
  });

  it('finishes in-flight requests, closes idle connections, then resolves', async () => {
    const engine = new Feersum();
    engine.requestHandler((req) => {
      if (req.uri === '/slow') setTimeout(() => req.sendResponse(200, [], 'slow done'), 300);
      else req.sendResponse(200, [], 'fast');
    });
    const { port } = await engine.listen({ host: '127.0.0.1', port: 0 });
    const idle = net.connect(port, '127.0.0.1');
    idle.resume();
    let idleClosed = false;
    idle.on('close', () => (idleClosed = true));
    idle.write('GET /fast HTTP/1.1\r\nHost: x\r\n\r\n');
    await sleep(50);
    const slow = get({ host: '127.0.0.1', port, path: '/slow' });
    await sleep(50);
    let resolved = false;
    const shutdown = engine.gracefulShutdown().then(() => (resolved = true));
    await waitFor(() => idleClosed, 1000, 'idle connection closed');
    expect(resolved).toBe(false);
    const r = await slow;
    expect(r.body).toBe('slow done');
    expect(r.headers.connection).toBe('close');
    await shutdown;
    expect(engine.stats().connections).toBe(0);
    await expect(get({ host: '127.0.0.1', port, path: '/' })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});
