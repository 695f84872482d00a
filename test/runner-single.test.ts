// The runner without --pre-fork: one process loads the app and serves it.
// App forms (CommonJS, ESM, native), the Server header, engine options,
// logs, pid file, Unix and abstract sockets, inherited listeners
// (LISTEN_FDS, SERVER_STARTER_PORT), graceful shutdown and --daemonize.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

import { afterAll, afterEach, describe, expect, it } from 'vitest';

import { loadBinding } from '../lib/native';
import {
  curl,
  EXAMPLES,
  freePort,
  isAlive,
  killAll,
  removeTmpDirs,
  request,
  Runner,
  sleep,
  tmpDir,
  waitForHttp,
  waitUntil,
} from './runner-helpers';

afterEach(killAll);
afterAll(removeTmpDirs);

const APP = path.join(EXAMPLES, 'app.js');
const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { version: string };

async function start(args: string[], env?: NodeJS.ProcessEnv): Promise<{ runner: Runner; port: number }> {
  const runner = new Runner(['--listen', '127.0.0.1:0', ...args], { env });
  const port = await runner.listeningPort();
  return { runner, port };
}

async function stop(runner: Runner): Promise<void> {
  runner.signal('SIGTERM');
  const exit = await runner.waitExit();
  expect(exit, runner.stderr).toEqual({ code: 0, signal: null });
}

describe('applications', () => {
  it('serves a CommonJS PSGI app in one process, with the Server header', async () => {
    const { runner, port } = await start([APP]);
    const r = await request({ port }, '/env');
    expect(r.status).toBe(200);
    expect(r.headers.server).toBe(`feersum-ts/${pkg.version}`);
    const env = JSON.parse(r.body);
    expect(env).toMatchObject({ pid: runner.pid, SERVER_NAME: '127.0.0.1', SERVER_PORT: String(port), multiprocess: false, harakiri: false });
    expect((await request({ port }, '/stream')).body).toBe('one,two,three\n');
    await stop(runner);
  });

  it('serves an ES module (export default) and a .cjs module', async () => {
    const { runner, port } = await start([path.join(EXAMPLES, 'app.mjs')]);
    expect((await request({ port }, '/x')).body).toBe(`esm hello /x from ${runner.pid}\n`);
    await stop(runner);

    const dir = tmpDir();
    const cjs = path.join(dir, 'app.cjs');
    fs.writeFileSync(cjs, "module.exports = () => [200, ['Content-Type', 'text/plain'], ['cjs']];\n");
    const b = await start([cjs]);
    expect((await request({ port: b.port })).body).toBe('cjs');
    await stop(b.runner);

    // A transpiled `export default` (exports.default) is found too.
    const ts = path.join(dir, 'built.js');
    fs.writeFileSync(ts, 'Object.defineProperty(exports, "__esModule", { value: true });\nexports.default = () => [200, [], ["transpiled"]];\n');
    const c = await start([ts]);
    expect((await request({ port: c.port })).body).toBe('transpiled');
    await stop(c.runner);
  });

  it('serves an ES module written as .js in a package with "type": "module" (single and pre-fork)', async () => {
    const dir = tmpDir();
    // The nearest package.json (a directory up from the app) makes .js files ES modules.
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'esm-app', type: 'module' }));
    fs.mkdirSync(path.join(dir, 'src'));
    fs.writeFileSync(path.join(dir, 'src', 'greeting.js'), "export const greeting = 'esm in a .js file';\n");
    // import, top-level await and export default: each a SyntaxError if loaded as CommonJS.
    const app = path.join(dir, 'src', 'app.js');
    fs.writeFileSync(
      app,
      "import { greeting } from './greeting.js';\nconst pid = await Promise.resolve(process.pid);\n" +
        "export default () => [200, ['Content-Type', 'text/plain'], [`${greeting} from ${pid}`]];\n",
    );
    for (const mode of [[], ['--pre-fork=1']]) {
      const { runner, port } = await start([...mode, app]);
      const body = (await waitForHttp({ port })).body;
      expect(body).toMatch(/^esm in a \.js file from \d+$/);
      if (mode.length) expect(Number(body.split(' ').pop())).not.toBe(runner.pid); // a worker's
      else expect(body).toBe(`esm in a .js file from ${runner.pid}`);
      await stop(runner);
    }
  }, 30000);

  it('serves a native handler with --native', async () => {
    const { runner, port } = await start(['--native', path.join(EXAMPLES, 'native-app.js')]);
    const r = await request({ port }, '/n?q=1', { method: 'POST', body: 'x' });
    expect(r.body).toBe(`native POST /n?q=1 from ${runner.pid}\n`);
    expect(r.headers.server).toBe(`feersum-ts/${pkg.version}`);
    await stop(runner);
  });

  it('the Server header can be renamed or dropped, and an app\'s own wins', async () => {
    const dir = tmpDir();
    const app = path.join(dir, 'own.js');
    fs.writeFileSync(app, "module.exports = (env) => [200, env.PATH_INFO === '/own' ? ['server', 'mine'] : [], ['x']];\n");
    let s = await start(['--product-name=Gepok', '--product-version=9.1', app]);
    expect((await request({ port: s.port })).headers.server).toBe('Gepok/9.1');
    expect((await request({ port: s.port }, '/own')).headers.server).toBe('mine');
    await stop(s.runner);
    s = await start(['--product-version=', app]);
    expect((await request({ port: s.port })).headers.server).toBe('feersum-ts');
    await stop(s.runner);
    s = await start(['--product-name=', app]);
    expect((await request({ port: s.port })).headers.server).toBeUndefined();
    await stop(s.runner);
  });

  it('an app error is a 500, logged, and the server goes on', async () => {
    const { runner, port } = await start([APP]);
    const r = await request({ port }, '/throw');
    expect(r.status).toBe(500);
    await runner.waitFor(/error in request handler \(GET \/throw\): Error: thrown by the app/);
    expect((await request({ port })).status).toBe(200);
    await stop(runner);
  });
});

describe('engine options', () => {
  it('--max-keepalive-reqs, --keepalive-timeout and --timeout reach the engine', async () => {
    const { runner, port } = await start(['--max-keepalive-reqs=2', '--keepalive-timeout=1', '--timeout=1', APP]);
    // Two requests on one connection, then the server closes it.
    const raw = await new Promise<string>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1');
      let data = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => (data += d));
      s.on('close', () => resolve(data));
      s.on('error', reject);
      s.write('GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n');
    });
    expect(raw.match(/HTTP\/1\.1 200/g)).toHaveLength(2);
    expect(raw).toMatch(/Connection: close/i);

    // An idle keep-alive connection is closed after about a second.
    const closedAfter = await new Promise<number>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      const t0 = Date.now();
      s.on('data', () => {});
      s.on('close', () => resolve(Date.now() - t0));
      s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    });
    expect(closedAfter).toBeGreaterThan(700);
    expect(closedAfter).toBeLessThan(5000);

    // A body that stops arriving: the read timeout (1 s) ends the request.
    const stalled = await new Promise<number>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      const t0 = Date.now();
      s.on('data', () => {});
      s.on('error', () => {});
      s.on('close', () => resolve(Date.now() - t0));
      s.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nabc');
    });
    expect(stalled).toBeGreaterThan(700);
    expect(stalled).toBeLessThan(5000);
    await stop(runner);
  });
});

describe('logs', () => {
  it('writes the access log in combined format, field by field', async () => {
    const dir = tmpDir();
    const log = path.join(dir, 'access.log');
    const { runner, port } = await start(['--access-log', log, APP]);
    const before = Math.floor(Date.now() / 1000);
    await request({ port }, '/env?x=1&y="q"', { headers: { 'User-Agent': 'tester/1.0 "quoted"', Referer: 'http://ref.example/page' } });
    await request({ port }, '/missing', { method: 'HEAD' });
    await request({ port }, '/throw');
    await request({ port }, '/stream');
    // Buffered, flushed within a second.
    await waitUntil(() => fs.existsSync(log) && fs.readFileSync(log, 'utf8').split('\n').length > 4, 5000, 'access log lines');
    const lines = fs.readFileSync(log, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(4);
    const re = /^(\S+) (\S+) (\S+) \[([^\]]+)\] "((?:[^"\\]|\\.)*)" (\d{3}|-) (\d+|-) "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)"$/;
    const fields = lines.map((l) => {
      const m = re.exec(l);
      expect(m, l).not.toBeNull();
      return m!.slice(1);
    });
    const [host, ident, user, time, requestLine, status, bytes, referer, agent] = fields[0];
    expect([host, ident, user]).toEqual(['127.0.0.1', '-', '-']);
    // [21/Nov/2026:10:00:00 +0000], within the test's time window.
    const t = /^(\d{2})\/(\w{3})\/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-]\d{4})$/.exec(time)!;
    expect(t).not.toBeNull();
    const when = Date.parse(`${t[2]} ${t[1]} ${t[3]} ${t[4]}:${t[5]}:${t[6]} GMT${t[7]}`) / 1000;
    expect(when).toBeGreaterThanOrEqual(before - 1);
    expect(when).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000));
    expect(requestLine).toBe('GET /env?x=1&y=\\"q\\" HTTP/1.1');
    expect(status).toBe('200');
    const body = (await request({ port }, '/env')).body;
    expect(Number(bytes)).toBe(Buffer.byteLength(body));
    expect(referer).toBe('http://ref.example/page');
    expect(agent).toBe('tester/1.0 \\"quoted\\"');

    expect(fields[1].slice(4, 7)).toEqual(['HEAD /missing HTTP/1.1', '200', '-']); // HEAD: no body bytes
    expect(fields[1][7]).toBe('-'); // no Referer
    expect(fields[2].slice(4, 7)).toEqual(['GET /throw HTTP/1.1', '500', '-']);
    expect(fields[3].slice(4, 7)).toEqual(['GET /stream HTTP/1.1', '200', String('one,two,three\n'.length)]);
    await stop(runner);
  });

  it('takes a custom format, writes to stdout with -, and flushes on exit', async () => {
    const { runner, port } = await start([
      '--access-log',
      '-',
      '--access-log-format',
      '%m %U %q %>s %B %{Content-Type}o %{X-Test}i %{SERVER_PORT}e %P %D %{ms}T 100%%',
      APP,
    ]);
    await request({ port }, '/slow?ms=30', { headers: { 'X-Test': 'a b' } });
    runner.signal('SIGTERM'); // before the one-second flush: the exit flushes
    expect((await runner.waitExit()).code).toBe(0);
    const line = runner.stdout.trim();
    const m = /^GET \/slow \?ms=30 200 (\d+) text\/plain a b (\d+) (\d+) (\d+) (\d+) 100%$/.exec(line);
    expect(m, line).not.toBeNull();
    expect(Number(m![1])).toBe(`slept 30 ms in ${runner.pid}\n`.length);
    expect(Number(m![2])).toBe(port);
    expect(Number(m![3])).toBe(runner.pid);
    expect(Number(m![4])).toBeGreaterThanOrEqual(30000); // %D, microseconds
    expect(Number(m![5])).toBeGreaterThanOrEqual(30); // %{ms}T
  });

  it('--error-log collects psgi.errors, handler errors and runner messages; SIGUSR1 reopens both logs', async () => {
    const dir = tmpDir();
    const errLog = path.join(dir, 'error.log');
    const accLog = path.join(dir, 'access.log');
    const port = await freePort();
    const runner = new Runner(['--listen', `127.0.0.1:${port}`, '--error-log', errLog, '--access-log', accLog, APP]);
    await waitForHttp({ port }); // the "listening" line goes to the error log, not stderr
    await request({ port }, '/warn');
    await request({ port }, '/throw');
    await waitUntil(() => /thrown by the app/.test(fs.readFileSync(errLog, 'utf8')), 5000, 'error log');
    const text = fs.readFileSync(errLog, 'utf8');
    expect(text).toContain(`app warning from ${runner.pid}\n`);
    expect(text).toMatch(/^\[\d{4}-\d\d-\d\dT[\d:.]+Z\] feersum-ts\[\d+\]: listening on http:\/\/127\.0\.0\.1:\d+/m);
    expect(text).toMatch(/feersum-ts\[\d+\]: error in request handler \(GET \/throw\): Error: thrown by the app\n\s+at /);
    expect(runner.stderr).toBe(''); // all of it went to the file

    // logrotate: move the files away, SIGUSR1, new lines go to new files.
    await waitUntil(() => fs.existsSync(accLog) && fs.readFileSync(accLog, 'utf8').includes('/throw'), 5000, 'access log');
    fs.renameSync(errLog, `${errLog}.1`);
    fs.renameSync(accLog, `${accLog}.1`);
    runner.signal('SIGUSR1');
    await waitUntil(() => fs.existsSync(accLog) && fs.existsSync(errLog), 5000, 'reopened logs');
    await request({ port }, '/warn');
    await waitUntil(() => fs.readFileSync(accLog, 'utf8').includes('GET /warn'), 5000, 'new access log line');
    expect(fs.readFileSync(errLog, 'utf8')).toContain(`app warning from ${runner.pid}\n`);
    const old = fs.readFileSync(`${accLog}.1`, 'utf8').trim().split('\n');
    expect(old.map((l) => l.split('"')[1])).toEqual(['GET / HTTP/1.1', 'GET /warn HTTP/1.1', 'GET /throw HTTP/1.1']);
    expect(fs.readFileSync(accLog, 'utf8').trim().split('\n')).toHaveLength(1);
    await stop(runner);
  });
});

describe('lifecycle', () => {
  it('SIGTERM drains an in-flight slow request before exiting, and removes the pid file', async () => {
    const dir = tmpDir();
    const pidFile = path.join(dir, 'run.pid');
    const { runner, port } = await start(['--pid-file', pidFile, APP]);
    expect(fs.readFileSync(pidFile, 'utf8')).toBe(`${runner.pid}\n`);
    const slow = request({ port }, '/slow?ms=1500');
    await sleep(300); // the request is in the app now
    const t0 = Date.now();
    runner.signal('SIGTERM');
    const r = await slow;
    expect(r.status).toBe(200);
    expect(r.body).toBe(`slept 1500 ms in ${runner.pid}\n`);
    expect((await runner.waitExit()).code).toBe(0);
    expect(Date.now() - t0).toBeGreaterThan(800);
    expect(fs.existsSync(pidFile)).toBe(false);
    // No longer accepting.
    await expect(request({ port }, '/', { timeout: 2000 })).rejects.toThrow();
  });

  it('--shutdown-timeout gives up on a request that takes too long', async () => {
    const { runner, port } = await start(['--shutdown-timeout=0.5', APP]);
    const slow = request({ port }, '/slow?ms=10000').catch((err: Error) => err);
    await sleep(300);
    const t0 = Date.now();
    runner.signal('SIGINT');
    expect((await runner.waitExit()).code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(await slow).toBeInstanceOf(Error);
    expect(runner.stderr).toMatch(/shutdown timeout: giving up on 1 request/);
  });

  it('--quiet prints nothing while all goes well; SIGQUIT stops gracefully', async () => {
    const port = await freePort();
    const runner = new Runner(['--quiet', '--listen', `127.0.0.1:${port}`, APP]);
    await waitForHttp({ port });
    runner.signal('SIGQUIT');
    expect((await runner.waitExit()).code).toBe(0);
    expect(runner.stderr).toBe('');
  });

  it('SIGHUP without --pre-fork says it needs a supervisor and keeps serving', async () => {
    const { runner, port } = await start([APP]);
    runner.signal('SIGHUP');
    await runner.waitFor(/SIGHUP ignored: graceful restarts need a supervisor/);
    expect((await request({ port })).status).toBe(200);
    await stop(runner);
  });

  it('--daemonize runs in the background and reports startup errors in the foreground', async () => {
    const dir = tmpDir();
    const pidFile = path.join(dir, 'd.pid');
    const errLog = path.join(dir, 'd.log');
    const port = await freePort();
    const fg = new Runner(['--daemonize', '--pid-file', pidFile, '--error-log', errLog, '--listen', `127.0.0.1:${port}`, APP]);
    expect((await fg.waitExit()).code).toBe(0);
    expect(fg.stderr).toMatch(/running in the background as pid \d+/);
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    expect(pid).not.toBe(fg.pid);
    try {
      expect((await request({ port }, '/env')).body).toContain(`"pid":${pid}`);
      // Its own session: not in the test's process group.
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const [, , , session] = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // state ppid pgrp session
      expect(Number(session)).toBe(pid);

      // A second copy: the port (and pid file) are taken; the error shows in the foreground.
      const second = new Runner(['--daemonize', '--listen', `127.0.0.1:${port}`, APP]);
      expect((await second.waitExit()).code).toBe(1);
      expect(second.stderr).toMatch(/^feersum-ts: cannot listen on 127\.0\.0\.1:\d+: address already in use\n$/);
    } finally {
      process.kill(pid, 'SIGTERM');
    }
    await waitUntil(() => !isAlive(pid), 10000, 'daemon exit');
    expect(fs.existsSync(pidFile)).toBe(false);
    expect(fs.readFileSync(errLog, 'utf8')).toMatch(/SIGTERM: graceful shutdown/);
  });
});

describe('listeners', () => {
  it('serves on a Unix socket, with --socket-mode, and removes the file on exit', async () => {
    const dir = tmpDir();
    const sock = path.join(dir, 'app.sock');
    const runner = new Runner(['--socket', sock, '--socket-mode', '0600', APP]);
    await runner.waitFor(/listening on unix:/);
    expect(fs.statSync(sock).mode & 0o777).toBe(0o600);
    const r = await request({ socketPath: sock }, '/env');
    expect(JSON.parse(r.body)).toMatchObject({ SERVER_NAME: 'localhost', REMOTE_ADDR: '127.0.0.1' });
    await stop(runner);
    expect(fs.existsSync(sock)).toBe(false);
  });

  it('replaces a stale socket file left by a crashed server, with a warning', async () => {
    const dir = tmpDir();
    const sock = path.join(dir, 'stale.sock');
    // A socket file nobody listens on: bind, then close without unlinking.
    const fd = loadBinding().bindSocket({ path: sock }, 1);
    fs.closeSync(fd);
    expect(fs.statSync(sock).isSocket()).toBe(true);
    const runner = new Runner(['--listen', sock, APP]);
    await runner.waitFor(/listening on unix:/);
    expect(runner.stderr).toContain(`removing stale socket file ${sock}`);
    expect((await request({ socketPath: sock })).status).toBe(200);
    await stop(runner);
  });

  it('serves on an abstract socket (curl --abstract-unix-socket) and on several listeners at once', async () => {
    const name = `feersum-test-${process.pid}-${Date.now()}`;
    const dir = tmpDir();
    const sock = path.join(dir, 'b.sock');
    const runner = new Runner(['--listen', `@${name}`, '--listen', sock, '--listen', '127.0.0.1:0', APP]);
    const port = await runner.listeningPort();
    expect(runner.stderr).toMatch(new RegExp(`listening on unix:@${name}, unix:${sock.replace(/[/.]/g, '\\$&')}, http://127\\.0\\.0\\.1:${port}`));
    const r = await curl(['--abstract-unix-socket', name, 'http://localhost/env']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ pid: runner.pid, SERVER_NAME: 'localhost' });
    expect((await request({ socketPath: sock })).status).toBe(200);
    expect((await request({ port })).status).toBe(200);
    await stop(runner);
  });

  it('serves on IPv6 with --ipv6 (:: takes IPv4 clients too)', async () => {
    const port = await freePort();
    const runner = new Runner(['--ipv6', '--port', String(port), APP]);
    await runner.waitFor(/listening on http:\/\/\[::\]:/);
    expect((await request({ port, host: '::1' })).status).toBe(200);
    expect((await request({ port, host: '127.0.0.1' })).status).toBe(200);
    await stop(runner);
  });

  it('uses systemd socket activation: LISTEN_FDS / LISTEN_PID with an fd passed by the test', async () => {
    const port = await freePort();
    const fd = loadBinding().bindSocket({ host: '127.0.0.1', port }, 16);
    // LISTEN_PID must be the server's own pid: set it in a shell that then execs node.
    const runner = new Runner(
      ['-c', `export LISTEN_PID=$$; exec "${process.execPath}" "$@"`, 'sh', path.join(__dirname, '..', 'dist', 'runner', 'cli.js'), '--port', '1', APP],
      { stdio: ['ignore', 'pipe', 'pipe', fd], env: { LISTEN_FDS: '1', LISTEN_FDNAMES: 'web' } },
      ['/bin/sh'],
    );
    fs.closeSync(fd); // the runner has its copy
    await runner.waitFor(/listening on http:\/\/127\.0\.0\.1:\d+/);
    expect(runner.stderr).toContain(`listening on http://127.0.0.1:${port}`);
    expect(runner.stderr).toMatch(/using the inherited listeners \(systemd fd 3 \(web\)\); the listeners given on the command line are ignored/);
    const env = JSON.parse((await request({ port }, '/env')).body);
    expect(env.pid).toBe(runner.pid);
    await stop(runner);
  });

  it('uses Server::Starter listeners (SERVER_STARTER_PORT)', async () => {
    const port = await freePort();
    const fd = loadBinding().bindSocket({ host: '127.0.0.1', port }, 16);
    const runner = new Runner([APP], {
      stdio: ['ignore', 'pipe', 'pipe', 'ignore', fd],
      env: { SERVER_STARTER_PORT: `127.0.0.1:${port}=4` },
    });
    fs.closeSync(fd);
    await runner.waitFor(/listening on/);
    expect(runner.stderr).toContain(`listening on http://127.0.0.1:${port}`);
    expect((await waitForHttp({ port })).status).toBe(200);
    await stop(runner);
  });

  it('refuses inherited descriptors that are not listening sockets', async () => {
    const file = fs.openSync(APP, 'r');
    let runner = new Runner([APP], { env: { SERVER_STARTER_PORT: '127.0.0.1:5000=3' }, stdio: ['ignore', 'pipe', 'pipe', file] });
    expect((await runner.waitExit()).code).toBe(1);
    expect(runner.stderr).toBe('feersum-ts: SERVER_STARTER_PORT: file descriptor 3 is not a socket\n');
    fs.closeSync(file);

    // A connected socket, not a listening one: refused when the engine takes it.
    runner = new Runner([APP], { env: { SERVER_STARTER_PORT: '127.0.0.1:5000=0' }, stdio: ['pipe', 'pipe', 'pipe'] });
    expect((await runner.waitExit()).code).toBe(1);
    expect(runner.stderr).toMatch(/^feersum-ts: cannot accept connections on 127\.0\.0\.1:5000: .+\n$/);
  });
});
