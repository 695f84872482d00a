// The pre-fork runner: a supervisor and N workers on shared listeners.
// Workers replaced after a crash, recycled after --max-reqs-per-child or
// psgix.harakiri.commit, restarted with new code on SIGHUP -- all under
// load with no failed request -- and graceful shutdown (with
// --shutdown-timeout), --spawn-interval, crash-loop backoff, logs and
// socket files in pre-fork mode. Also a Server::Starter hot deploy, with
// the test in start_server's place.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

import { afterAll, afterEach, describe, expect, it } from 'vitest';

import { loadBinding } from '../lib/native';
import {
  childPids,
  EXAMPLES,
  freePort,
  isAlive,
  killAll,
  removeTmpDirs,
  loadLoop,
  processStartTime,
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

async function startPrefork(args: string[]): Promise<{ runner: Runner; port: number }> {
  const runner = new Runner(['--listen', '127.0.0.1:0', ...args]);
  const port = await runner.listeningPort(30000);
  return { runner, port };
}

async function waitForWorkers(runner: Runner, n: number, ms = 30000): Promise<number[]> {
  let pids: number[] = [];
  await waitUntil(
    () => {
      pids = childPids(runner.pid);
      return pids.length === n && (runner.stderr.match(/ ready \(generation/g) ?? []).length >= n;
    },
    ms,
    `${n} workers`,
  );
  return pids;
}

async function stopRunner(runner: Runner, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const workers = childPids(runner.pid);
  runner.signal(signal);
  const exit = await runner.waitExit(40000);
  expect(exit, runner.stderr).toEqual({ code: 0, signal: null });
  await waitUntil(() => workers.every((p) => !isAlive(p)), 10000, 'workers to exit');
}

describe('pre-fork', () => {
  it('--pre-fork=3 starts three workers that share the listener', async () => {
    const { runner, port } = await startPrefork(['--pre-fork=3', APP]);
    expect(runner.stderr).toMatch(/listening on http:\/\/127\.0\.0\.1:\d+ with 3 worker\(s\) \(supervisor pid \d+\)/);
    const workers = await waitForWorkers(runner, 3);
    expect(workers).not.toContain(runner.pid);
    const seen = new Set<number>();
    for (let i = 0; i < 200 && seen.size < 2; i++) {
      const env = JSON.parse((await request({ port }, '/env')).body);
      expect(env).toMatchObject({ multiprocess: true, harakiri: true });
      expect(workers).toContain(env.pid);
      seen.add(env.pid);
    }
    expect(seen.size).toBeGreaterThanOrEqual(2);
    await stopRunner(runner, 'SIGQUIT');
    expect(runner.stderr).toMatch(/SIGQUIT: graceful shutdown of 3 worker\(s\)/);
  });

  it('a worker killed with SIGKILL is replaced while requests keep succeeding', async () => {
    // No recycling during this test: only the killed worker is replaced.
    const { runner, port } = await startPrefork(['--pre-fork=2', '--max-reqs-per-child=0', APP]);
    const before = await waitForWorkers(runner, 2);
    const concurrency = 4;
    const load = loadLoop({ port }, '/', concurrency);
    await waitUntil(() => load.stats.ok >= 100, 20000, 'load');
    const killedAt = Date.now();
    process.kill(before[0], 'SIGKILL');
    await runner.waitFor(new RegExp(`worker ${before[0]} was killed by SIGKILL; replacing it`));
    let after: number[] = [];
    await waitUntil(() => {
      after = childPids(runner.pid);
      return after.length === 2 && !after.includes(before[0]);
    }, 20000, 'a replacement worker');
    const replacedAt = Date.now();
    const okAtReplacement = load.stats.ok;
    await waitUntil(() => load.stats.ok >= okAtReplacement + 200, 20000, 'more load');
    const result = await load.stop();
    // Only what the killed worker had accepted dies with it (its accepted
    // connections: at most one per client loop); nothing fails afterwards,
    // since the listening socket never stopped accepting.
    expect(result.failed, result.errors.join('\n')).toBeLessThanOrEqual(concurrency);
    for (const t of result.errorTimes) expect(t).toBeLessThan(replacedAt);
    for (const t of result.errorTimes) expect(t).toBeGreaterThanOrEqual(killedAt);
    expect(result.errors.every((e) => /ECONNRESET|socket hang up/.test(e)), result.errors.join('\n')).toBe(true);
    expect(after).toContain(before[1]);
    // The replacement serves too.
    const newPid = after.find((p) => p !== before[1])!;
    await waitUntil(async () => (await request({ port })).body === `hello from ${newPid}\n`, 20000, 'the replacement to answer');
    await stopRunner(runner);
  }, 60000);

  it('--max-reqs-per-child=50: 1,000 requests recycle workers without a failed request', async () => {
    const { runner, port } = await startPrefork(['--pre-fork=2', '--max-reqs-per-child=50', APP]);
    await waitForWorkers(runner, 2);
    const perPid = new Map<string, number>();
    let failed = 0;
    const errors: string[] = [];
    let sent = 0;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (sent < 1000) {
          sent++;
          try {
            // 20 ms each: 1,000 requests take at least 5 s, time for several replacement workers to start.
            const r = await request({ port }, '/slow?ms=20');
            if (r.status !== 200) throw new Error(`status ${r.status}`);
            const pid = /in (\d+)\n$/.exec(r.body)![1];
            perPid.set(pid, (perPid.get(pid) ?? 0) + 1);
          } catch (err) {
            failed++;
            errors.push((err as Error).message);
          }
        }
      }),
    );
    expect(failed, errors.slice(0, 5).join('\n')).toBe(0);
    const total = [...perPid.values()].reduce((a, b) => a + b, 0);
    expect(total).toBe(1000);
    // Workers were recycled: more than the first two served, and each served
    // at least its 50 (a retiring worker serves on until its replacement is up).
    expect(perPid.size).toBeGreaterThanOrEqual(3);
    expect((runner.stderr.match(/retiring \(served 50 requests\); starting its replacement/g) ?? []).length).toBeGreaterThanOrEqual(2);
    const retired = [...runner.stderr.matchAll(/worker (\d+) stopped/g)].map((m) => m[1]);
    expect(retired.length).toBeGreaterThanOrEqual(1);
    for (const pid of retired) expect(perPid.get(pid)).toBeGreaterThanOrEqual(50);
    // Retirement never leaves fewer than two workers accepting: a replacement is up first.
    await waitUntil(() => childPids(runner.pid).length === 2, 20000, 'two workers after the run');
    await stopRunner(runner);
  }, 120000);

  it('a retiring worker closes keep-alive connections after complete responses', async () => {
    const { runner, port } = await startPrefork(['--pre-fork=1', '--max-reqs-per-child=3', APP]);
    await waitForWorkers(runner, 1);
    // Three requests, one at a time, on one keep-alive connection.
    const heads = await new Promise<string[]>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1');
      const got: string[] = [];
      let buf = '';
      const next = () => s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      s.setEncoding('utf8');
      s.on('data', (d: string) => {
        buf += d;
        for (;;) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const head = buf.slice(0, end);
          const len = Number(/Content-Length: (\d+)/i.exec(head)![1]);
          if (buf.length < end + 4 + len) return;
          got.push(head);
          buf = buf.slice(end + 4 + len);
          if (got.length < 3) next();
        }
      });
      s.on('close', () => resolve(got));
      s.on('error', reject);
      next();
    });
    expect(heads).toHaveLength(3);
    expect(heads[0]).not.toMatch(/Connection: close/i);
    expect(heads[1]).not.toMatch(/Connection: close/i);
    expect(heads[2]).toMatch(/Connection: close/i); // the third request made it retire
    await runner.waitFor(/retiring \(served 3 requests\)/);
    expect((await request({ port })).status).toBe(200);
    await stopRunner(runner);
  }, 60000);

  it('--min-reqs-per-child randomises each worker\'s share between the two limits', async () => {
    const { runner, port } = await startPrefork(['--pre-fork=1', '--min-reqs-per-child=5', '--max-reqs-per-child=15', APP]);
    await waitForWorkers(runner, 1);
    const limits = () => [...runner.stderr.matchAll(/retiring \(served (\d+) requests\)/g)].map((m) => Number(m[1]));
    const start = Date.now();
    while (limits().length < 5 && Date.now() - start < 60000) {
      const r = await request({ port }, '/slow?ms=10');
      expect(r.status).toBe(200);
    }
    const seen = limits();
    expect(seen.length).toBeGreaterThanOrEqual(5);
    for (const n of seen) {
      expect(n).toBeGreaterThanOrEqual(5);
      expect(n).toBeLessThanOrEqual(15);
    }
    expect(new Set(seen).size).toBeGreaterThan(1); // five draws from 11 values, all equal: p < 0.0001
    await stopRunner(runner);
  }, 90000);

  it('psgix.harakiri.commit retires the worker after its response', async () => {
    const { runner, port } = await startPrefork(['--pre-fork=2', APP]);
    const workers = await waitForWorkers(runner, 2);
    const r = await request({ port }, '/harakiri');
    const victim = Number(r.body);
    expect(workers).toContain(victim);
    await runner.waitFor(new RegExp(`worker ${victim} retiring \\(psgix\\.harakiri\\.commit\\)`));
    await waitUntil(() => !isAlive(victim), 20000, 'the worker to exit');
    const now = await waitForWorkers(runner, 2);
    expect(now).not.toContain(victim);
    expect((await request({ port }, '/')).status).toBe(200);
    await stopRunner(runner);
  }, 60000);

  it('SIGHUP under load: two graceful restarts with new code and no failed request', async () => {
    const dir = tmpDir();
    const app = path.join(dir, 'app.js');
    const writeVersion = (v: string) =>
      fs.writeFileSync(app, `module.exports = () => [200, ['Content-Type', 'text/plain'], ['${v}']];\n`);
    writeVersion('v1');
    const { runner, port } = await startPrefork(['--pre-fork=2', app]);
    await waitForWorkers(runner, 2);
    const load = loadLoop({ port }, '/', 4);
    await waitUntil(() => load.stats.ok >= 300, 30000, 'load before the first restart');

    for (const [version, generation] of [['v2', 2], ['v3', 3]] as const) {
      writeVersion(version);
      runner.signal('SIGHUP');
      await runner.waitFor(new RegExp(`graceful restart complete: generation ${generation} serving`), 30000);
      // The old workers are gone once the restart completes... after their in-flight requests.
      const okAt = load.stats.ok;
      await waitUntil(() => load.stats.ok >= okAt + 300, 30000, 'load after the restart');
    }
    await waitUntil(() => load.stats.ok >= 2000, 60000, '2,000 requests');
    const result = await load.stop();
    expect(result.failed, result.errors.slice(0, 5).join('\n')).toBe(0);
    expect(result.ok).toBeGreaterThanOrEqual(2000);
    expect(result.bodies.get('v1')).toBeGreaterThan(0);
    expect(result.bodies.get('v2')).toBeGreaterThan(0);
    expect(result.bodies.get('v3')).toBeGreaterThan(0);
    // After the second restart only the new code answers.
    for (let i = 0; i < 20; i++) expect((await request({ port })).body).toBe('v3');
    expect(childPids(runner.pid)).toHaveLength(2);
    await stopRunner(runner);
  }, 180000);

  it('SIGHUP under keep-alive load: clients move to the new workers without a failed request', async () => {
    const { runner, port } = await startPrefork(['--pre-fork=2', '--max-reqs-per-child=0', APP]);
    const old = await waitForWorkers(runner, 2);
    const load = loadLoop({ port }, '/', 4, true);
    await waitUntil(() => load.stats.ok >= 300, 30000, 'load before the restart');
    runner.signal('SIGHUP');
    await runner.waitFor(/graceful restart complete: generation 2 serving/, 30000);
    await waitUntil(() => old.every((p) => !isAlive(p)), 20000, 'the old workers to exit');
    const okAt = load.stats.ok;
    await waitUntil(() => load.stats.ok >= okAt + 300, 30000, 'load after the restart');
    const result = await load.stop();
    expect(result.failed, result.errors.slice(0, 5).join('\n')).toBe(0);
    const pids = new Set([...result.bodies.keys()].map((b) => Number(/\d+/.exec(b)![0])));
    const fresh = childPids(runner.pid);
    // Keep-alive clients moved over (which new worker each lands on is up to the kernel).
    expect(fresh.some((p) => pids.has(p))).toBe(true);
    await stopRunner(runner);
  }, 90000);

  it('SIGHUP with code that no longer loads keeps the old workers serving', async () => {
    const dir = tmpDir();
    const app = path.join(dir, 'app.js');
    fs.writeFileSync(app, "module.exports = () => [200, [], ['good']];\n");
    const { runner, port } = await startPrefork(['--pre-fork=2', app]);
    const workers = await waitForWorkers(runner, 2);
    fs.writeFileSync(app, 'module.exports = (env) => {\n');
    runner.signal('SIGHUP');
    await runner.waitFor(/could not load the app: .*app\.js failed to load: SyntaxError/);
    await runner.waitFor(/graceful restart failed: the app does not load; 2 worker\(s\) of the previous code keep serving/);
    expect((await request({ port })).body).toBe('good');
    // The other new worker (still loading when the first failed) is stopped too.
    await waitUntil(() => childPids(runner.pid).join() === workers.join(), 20000, 'only the old workers');
    // Fixed code: the next SIGHUP works.
    fs.writeFileSync(app, "module.exports = () => [200, [], ['fixed']];\n");
    runner.signal('SIGHUP');
    await runner.waitFor(/graceful restart complete/, 30000);
    expect((await request({ port })).body).toBe('fixed');
    await stopRunner(runner);
  }, 60000);

  it('--spawn-interval replaces workers one at a time on SIGHUP', async () => {
    const { runner } = await startPrefork(['--pre-fork=2', '--spawn-interval=1', APP]);
    await waitForWorkers(runner, 2);
    const readyAt: number[] = [];
    runner.signal('SIGHUP');
    const t0 = Date.now();
    await waitUntil(() => {
      const n = (runner.stderr.match(/ready \(generation 2\)/g) ?? []).length;
      if (n > readyAt.length) readyAt.push(Date.now() - t0);
      return n >= 2;
    }, 30000, 'two new workers');
    expect(readyAt[1] - readyAt[0]).toBeGreaterThan(600);
    await runner.waitFor(/graceful restart complete: generation 2/, 30000);
    await stopRunner(runner);
  }, 60000);

  it('--spawn-interval also paces the replacements of workers that died', async () => {
    const { runner, port } = await startPrefork(['--pre-fork=2', '--spawn-interval=2', '--max-reqs-per-child=0', APP]);
    const first = await waitForWorkers(runner, 2);
    // Startup is paced too: the second worker started an interval after the first.
    const [s0, s1] = first.map(processStartTime).sort((a, b) => a - b);
    expect(s1 - s0).toBeGreaterThanOrEqual(1900);
    // Workers that die within 5 s of starting count as a crash loop, whose
    // back-off would add to the interval; these have been up longer.
    await waitUntil(() => Date.now() - s1 > 5500, 10000, 'workers older than 5 s');
    const killedAt = Date.now();
    for (const pid of first) process.kill(pid, 'SIGKILL');
    let fresh: number[] = [];
    await waitUntil(() => {
      fresh = childPids(runner.pid).filter((p) => !first.includes(p));
      return fresh.length === 2;
    }, 20000, 'two replacements');
    const [r0, r1] = fresh.map(processStartTime).sort((a, b) => a - b);
    // The first replacement at once (the last start was long ago), the second an interval later.
    expect(r0 - killedAt).toBeLessThan(1500);
    expect(r1 - r0).toBeGreaterThanOrEqual(1900);
    expect(r1 - r0).toBeLessThan(4000);
    expect(runner.stderr).not.toMatch(/quick worker failures/);
    await waitForWorkers(runner, 2);
    expect((await request({ port })).status).toBe(200);
    await stopRunner(runner);
  }, 60000);

  it('--shutdown-timeout: a worker still busy at the timeout gives up its requests and exits', async () => {
    const { runner, port } = await startPrefork(['--pre-fork=1', '--shutdown-timeout=1', APP]);
    const [worker] = await waitForWorkers(runner, 1);
    const slow = request({ port }, '/slow?ms=20000', { timeout: 30000 }).catch((err: Error) => err);
    await sleep(300);
    const t0 = Date.now();
    runner.signal('SIGTERM');
    expect(await runner.waitExit(20000)).toEqual({ code: 0, signal: null });
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(900); // it waited for the request...
    expect(took).toBeLessThan(5000); // ...for about a second, not the 20 the request wanted
    expect(await slow).toBeInstanceOf(Error);
    expect(runner.stderr).toMatch(/shutdown timeout: giving up on 1 request\(s\)/);
    expect(isAlive(worker)).toBe(false);
  }, 30000);

  it('--shutdown-timeout: a worker too busy to stop by itself is killed by the supervisor', async () => {
    const dir = tmpDir();
    const app = path.join(dir, 'block.js');
    // Blocks its event loop: the worker cannot act on the stop request or its own timeout.
    fs.writeFileSync(
      app,
      "module.exports = (env) => {\n  if (env.PATH_INFO === '/block') { const end = Date.now() + 20000; while (Date.now() < end); }\n" +
        "  return [200, [], [String(process.pid)]];\n};\n",
    );
    const { runner, port } = await startPrefork(['--pre-fork=1', '--shutdown-timeout=1', app]);
    const [worker] = await waitForWorkers(runner, 1);
    const blocked = request({ port }, '/block', { timeout: 30000 }).catch((err: Error) => err);
    await sleep(300);
    const t0 = Date.now();
    runner.signal('SIGTERM');
    expect(await runner.waitExit(20000)).toEqual({ code: 0, signal: null });
    const took = Date.now() - t0;
    // The supervisor's backstop: the timeout plus 2 s of grace, then SIGKILL.
    expect(took).toBeGreaterThanOrEqual(2500);
    expect(took).toBeLessThan(10000);
    expect(runner.stderr).toMatch(new RegExp(`worker ${worker} still running 1s after it was told to stop; killing it`));
    expect(runner.stderr).toMatch(new RegExp(`worker ${worker} was killed by SIGKILL`));
    expect(await blocked).toBeInstanceOf(Error);
    expect(isAlive(worker)).toBe(false);
  }, 30000);

  it('SIGTERM drains an in-flight slow request, then removes the socket and pid files', async () => {
    const dir = tmpDir();
    const sock = path.join(dir, 'app.sock');
    const pidFile = path.join(dir, 'app.pid');
    const runner = new Runner(['--pre-fork=2', '--listen', sock, '--pid-file', pidFile, APP]);
    await runner.waitFor(/listening on unix:/, 30000);
    const workers = await waitForWorkers(runner, 2);
    expect(fs.readFileSync(pidFile, 'utf8')).toBe(`${runner.pid}\n`);
    const slow = request({ socketPath: sock }, '/slow?ms=2000');
    await sleep(500);
    runner.signal('SIGTERM');
    const r = await slow;
    expect(r.status).toBe(200);
    expect(r.body).toMatch(/^slept 2000 ms in \d+\n$/);
    expect((await runner.waitExit(30000)).code).toBe(0);
    expect(fs.existsSync(sock)).toBe(false);
    expect(fs.existsSync(pidFile)).toBe(false);
    expect(workers.some(isAlive)).toBe(false);
  }, 60000);

  it('a stop signal during startup (a slow app check) undoes the startup', async () => {
    const dir = tmpDir();
    const app = path.join(dir, 'slow.mjs');
    fs.writeFileSync(app, 'await new Promise((r) => setTimeout(r, 5000));\nexport default () => [200, [], ["x"]];\n');
    const pidFile = path.join(dir, 'p.pid');
    const sock = path.join(dir, 's.sock');
    const runner = new Runner(['--pre-fork=2', '--pid-file', pidFile, '--listen', sock, app]);
    await waitUntil(() => fs.existsSync(pidFile), 20000, 'the pid file');
    runner.signal('SIGHUP'); // ignored while starting
    await runner.waitFor(/SIGHUP ignored: still starting/);
    runner.signal('SIGTERM');
    expect(await runner.waitExit()).toEqual({ code: null, signal: 'SIGTERM' });
    expect(runner.stderr).toMatch(/SIGTERM during startup: stopping/);
    expect(fs.existsSync(pidFile)).toBe(false);
    expect(fs.existsSync(sock)).toBe(false);
  }, 60000);

  it('workers stop by themselves when the supervisor is killed', async () => {
    const { runner, port } = await startPrefork(['--pre-fork=2', APP]);
    const workers = await waitForWorkers(runner, 2);
    runner.signal('SIGKILL');
    await runner.waitExit();
    await waitUntil(() => workers.every((p) => !isAlive(p)), 20000, 'orphaned workers to exit');
    await expect(request({ port }, '/', { timeout: 2000 })).rejects.toThrow();
  }, 60000);

  it('a crash loop backs off (1, 2, 4 ... s) and gives up when no worker ever started', async () => {
    const dir = tmpDir();
    const app = path.join(dir, 'crash.js');
    // Loads fine the first time (the supervisor's check), fails in every worker after.
    const counter = path.join(dir, 'loads');
    fs.writeFileSync(
      app,
      `const fs = require('fs');\nfs.appendFileSync(${JSON.stringify(counter)}, 'x');\n` +
        `if (fs.readFileSync(${JSON.stringify(counter)}, 'utf8').length > 1) throw new Error('no database in workers');\n` +
        "module.exports = () => [200, [], ['x']];\n",
    );
    const t0 = Date.now();
    const runner = new Runner(['--pre-fork=1', '--listen', '127.0.0.1:0', app]);
    const exit = await runner.waitExit(60000);
    const took = Date.now() - t0;
    expect(exit.code, runner.stderr).toBe(1);
    expect(runner.stderr).toMatch(/giving up: 5 workers in a row failed to start/);
    expect(runner.stderr).toMatch(/2 quick worker failures in a row; next start in 2s/);
    expect(runner.stderr).toMatch(/4 quick worker failures in a row; next start in 8s/);
    // Five attempts, not a spin: 1 + 2 + 4 + 8 seconds of backoff between them.
    expect((runner.stderr.match(/could not load the app: \S*crash\.js failed to load: Error: no database in workers/g) ?? []).length).toBe(5);
    expect(took).toBeGreaterThan(14000);
  }, 90000);

  it('logs in pre-fork mode: workers write the access log, psgi.errors goes to --error-log, SIGUSR1 reopens', async () => {
    const dir = tmpDir();
    const acc = path.join(dir, 'access.log');
    const err = path.join(dir, 'error.log');
    const port = await freePort();
    const runner = new Runner(['--pre-fork=2', '--listen', `127.0.0.1:${port}`, '--access-log', acc, '--error-log', err, APP]);
    await waitForHttp({ port }, '/', 30000);
    await waitUntil(() => /ready \(generation 1\)[\s\S]*ready \(generation 1\)/.test(fs.readFileSync(err, 'utf8')), 30000, 'workers');
    for (let i = 0; i < 20; i++) await request({ port }, `/n${i}`);
    await request({ port }, '/warn');
    // Each worker flushes its own buffer within a second.
    const served = () => (fs.existsSync(acc) ? fs.readFileSync(acc, 'utf8').match(/ "GET \/n\d+ HTTP\/1\.1" 200 /g) ?? [] : []);
    await waitUntil(() => served().length === 20, 10000, 'access log lines from both workers');
    await waitUntil(() => /app warning from \d+/.test(fs.readFileSync(err, 'utf8')), 10000, 'psgi.errors');
    fs.renameSync(acc, `${acc}.1`);
    runner.signal('SIGUSR1');
    await waitUntil(() => fs.existsSync(acc), 10000, 'a new access log');
    await sleep(300); // the other worker's reopen message may still be on its way
    // Every worker reopened: each of many requests lands in the new file.
    for (let i = 0; i < 20; i++) await request({ port }, `/after${i}`);
    await waitUntil(() => (fs.readFileSync(acc, 'utf8').match(/GET \/after/g) ?? []).length === 20, 10000, 'new lines');
    expect(fs.readFileSync(`${acc}.1`, 'utf8')).not.toContain('/after');
    expect(runner.stderr).toBe('');
    await stopRunner(runner);
  }, 60000);
});

describe('Server::Starter hot deploy (the test does what start_server does)', () => {
  for (const mode of [['--pre-fork=2'], []]) {
    const name = mode.length ? 'pre-fork' : 'single process';
    it(`a new generation on the same socket, SIGTERM to the old one: it drains, nothing fails (${name})`, async () => {
      // start_server binds once and hands the socket to every generation as
      // an inherited descriptor, named in SERVER_STARTER_PORT (host:port=fd).
      const port = await freePort();
      const fd = loadBinding().bindSocket({ host: '127.0.0.1', port }, 128);
      try {
        const generation = (n: number) =>
          new Runner([...mode, '--max-reqs-per-child=0', APP], {
            stdio: ['ignore', 'pipe', 'pipe', fd],
            env: { SERVER_STARTER_PORT: `127.0.0.1:${port}=3`, SERVER_STARTER_GENERATION: String(n) },
          });
        const processes = async (gen: Runner) => {
          if (mode.length) await waitForWorkers(gen, 2);
          return new Set([gen.pid, ...childPids(gen.pid)]);
        };
        const pidOf = (body: string) => Number(/(\d+)\s*$/.exec(body)![1]); // "hello from PID", "slept N ms in PID"

        const gen1 = generation(1);
        await gen1.waitFor(new RegExp(`listening on http://127\\.0\\.0\\.1:${port}`), 30000);
        const gen1Pids = await processes(gen1);
        // Accepted by generation 1 only (the only one yet): in flight across the hand-over.
        const slow = request({ port }, '/slow?ms=6000', { timeout: 30000 });
        const load = loadLoop({ port }, '/', 4);
        await waitUntil(() => load.stats.ok >= 200, 30000, 'load on generation 1');

        const gen2 = generation(2);
        await gen2.waitFor(/listening on/, 30000);
        const gen2Pids = await processes(gen2);
        let okAt = load.stats.ok;
        await waitUntil(() => load.stats.ok >= okAt + 200, 30000, 'load on both generations');

        let slowDone = 0;
        void slow.then(() => (slowDone = Date.now()));
        gen1.signal('SIGTERM'); // start_server's hand-over
        expect(slowDone, 'the slow request ended before the hand-over').toBe(0);
        expect(await gen1.waitExit(40000), gen1.stderr).toEqual({ code: 0, signal: null });
        const gen1ExitedAt = Date.now();
        // It finished what it had accepted before exiting.
        const r = await slow;
        expect(r.status).toBe(200);
        expect(gen1Pids.has(pidOf(r.body))).toBe(true);
        expect(slowDone).toBeGreaterThan(0);
        expect(slowDone).toBeLessThanOrEqual(gen1ExitedAt);
        await waitUntil(() => [...gen1Pids].every((p) => !isAlive(p)), 10000, 'generation 1 to be gone');

        okAt = load.stats.ok;
        await waitUntil(() => load.stats.ok >= okAt + 200, 30000, 'load on generation 2 alone');
        const result = await load.stop();
        expect(result.failed, result.errors.slice(0, 5).join('\n')).toBe(0);
        const served = [...result.bodies.keys()].map(pidOf);
        expect(served.some((p) => gen1Pids.has(p))).toBe(true);
        expect(served.some((p) => gen2Pids.has(p))).toBe(true);
        for (let i = 0; i < 10; i++) expect(gen2Pids.has(pidOf((await request({ port })).body))).toBe(true);
        gen2.signal('SIGTERM');
        expect(await gen2.waitExit(40000), gen2.stderr).toEqual({ code: 0, signal: null });
      } finally {
        fs.closeSync(fd);
      }
    }, 90000);
  }
});
