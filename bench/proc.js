// Shared helpers for the bench scripts: starting a pinned server process,
// waiting for it, and reading its CPU time and memory from /proc.
'use strict';
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const SERVERS = path.join(__dirname, 'servers.js');

function log(...args) {
  process.stderr.write(args.join(' ') + '\n');
}

function fail(msg) {
  process.stderr.write(`error: ${msg}\n`);
  process.exit(1);
}

/** Exits with a readable message unless dist/ holds a loadable build. */
function checkBuild() {
  const entry = path.join(ROOT, 'dist', 'index.js');
  if (!fs.existsSync(entry)) fail(`build missing (${entry}); run \`npm run build\` first`);
  // In a child process, so the addon is not loaded into the measuring process.
  try {
    execFileSync(
      process.execPath,
      ['-e', "const m = require(process.argv[1]); if (typeof m.Feersum !== 'function') throw new Error('no Feersum export'); new m.Feersum();", ROOT],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
  } catch (err) {
    const detail = err.stderr ? err.stderr.toString().trim().split('\n').slice(0, 6).join('\n') : err.message;
    fail(`the build does not load:\n${detail}\nrun \`npm run build\` first`);
  }
}

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** utime + stime of a process (all its threads), in seconds. */
function cpuSeconds(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // comm (field 2) may hold spaces; the fields after its closing ')' are fixed.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state), so field N is rest[N - 3].
  return (Number(rest[14 - 3]) + Number(rest[15 - 3])) / CLK_TCK;
}

/** VmRSS of a process in KiB. */
function rssKiB(pid) {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

const CPUACCT = '/sys/fs/cgroup/cpuacct/cpuacct.usage_percpu';

/**
 * CPU time each core has spent running tasks (any process), in seconds, from
 * the root cpuacct cgroup (exact scheduler runtime); null when unavailable
 * (cgroup v2 only). /proc/stat's per-core figures are no use here: they are
 * sampled at the tick, and a server that sleeps and wakes many times per
 * tick is mostly asleep when the tick fires, so its busy time goes missing.
 */
function coreRuntime() {
  try {
    return fs.readFileSync(CPUACCT, 'utf8').trim().split(/\s+/).map((ns) => Number(ns) / 1e9);
  } catch {
    return null;
  }
}

function median(xs) {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves once a TCP connection to 127.0.0.1:port succeeds. */
async function waitPort(port, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`port ${port} not accepting connections after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Quotes a word for bash. */
function sh(word) {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${String(word).replace(/'/g, `'\\''`)}'`;
}

const children = new Set();

/**
 * Runs `node <args>` pinned to `cpus` (a taskset list, or null for no pinning)
 * with an IPC channel. With `nofile`, the child first raises its soft fd limit
 * (`ulimit -n`, falling back to the hard limit). taskset and bash exec, so the
 * child's pid is node's pid.
 */
function spawnNode(args, { cpus = null, nofile = 0, env = {}, stdout = 'inherit' } = {}) {
  let cmd = process.execPath;
  let argv = args;
  if (nofile) {
    const line =
      `ulimit -n ${nofile} 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; ` +
      `exec ${[process.execPath, ...args].map(sh).join(' ')}`;
    cmd = 'bash';
    argv = ['-c', line];
  }
  if (cpus !== null && cpus !== undefined && cpus !== '') {
    argv = ['-c', String(cpus), cmd, ...argv];
    cmd = 'taskset';
  }
  const child = spawn(cmd, argv, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', stdout, 'inherit', 'ipc'],
  });
  return track(child);
}

/** Waits for the child's first IPC message equal to `what` (or matching it). */
function waitMessage(child, what, timeoutMs = 15000) {
  return new Promise((resolve, reject) => {
    const match = typeof what === 'function' ? what : (m) => m === what || (m && m.cmd === what);
    const timer = setTimeout(() => done(new Error(`no '${what}' from pid ${child.pid} within ${timeoutMs} ms`)), timeoutMs);
    const onMsg = (m) => {
      if (match(m)) done(null, m);
    };
    const onExit = (code, signal) => done(new Error(`pid ${child.pid} exited (code ${code}, signal ${signal})`));
    function done(err, m) {
      clearTimeout(timer);
      child.off('message', onMsg);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve(m);
    }
    child.on('message', onMsg);
    child.once('exit', onExit);
  });
}

/** Starts `servers.js <kind> <port>` and resolves once it accepts connections. */
async function startServer(kind, port, opts = {}) {
  const nodeArgs = opts.nodeArgs || [];
  const child = spawnNode([...nodeArgs, SERVERS, kind, String(port)], opts);
  await waitMessage(child, 'ready');
  await waitPort(port);
  const comm = fs.readFileSync(`/proc/${child.pid}/comm`, 'utf8').trim();
  if (comm !== 'node' && !comm.startsWith('node')) {
    throw new Error(`pid ${child.pid} is '${comm}', not node: taskset/bash did not exec`);
  }
  return child;
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the child is gone. */
function stop(child, graceMs = 2000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Adds a child process to those killed when this process exits. */
function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function killAll() {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {}
  }
}

// Never leave a server behind, however we exit.
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    killAll();
    process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
  });
}

function cpuModel() {
  const m = /^model name\s*:\s*(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
  return m ? m[1].trim() : 'unknown';
}

function coreCount() {
  return fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n').filter((l) => /^processor\s*:/.test(l)).length;
}

/**
 * nginx as a reference server: one process (no master, no daemon), so
 * /proc/<pid> holds all its CPU time, pinned like the others. `http` is the
 * body of the config's http block; logs and temp files go to `dir`.
 * Returns the child, or null when nginx is not installed.
 */
function spawnNginx(dir, http, { cpus = null } = {}) {
  try {
    execFileSync('nginx', ['-v'], { stdio: 'pipe' });
  } catch {
    return null;
  }
  const conf = path.join(dir, `nginx-${process.pid}-${Date.now()}.conf`);
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `${t}_temp_path ${dir};`).join(' ');
  fs.writeFileSync(
    conf,
    `daemon off; master_process off; worker_processes 1; pid ${conf}.pid; error_log ${dir}/nginx-error.log;\n` +
      `events { worker_connections 4096; }\nhttp { access_log off; ${temp}\n${http}\n}\n`,
  );
  const args = ['-c', conf, '-p', dir];
  const [cmd, argv] = cpus !== null && cpus !== '' ? ['taskset', ['-c', String(cpus), 'nginx', ...args]] : ['nginx', args];
  return track(spawn(cmd, argv, { stdio: ['ignore', 'inherit', 'inherit'] }));
}

function today() {
  const d = new Date();
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

module.exports = {
  ROOT,
  CLK_TCK,
  log,
  fail,
  checkBuild,
  cpuSeconds,
  rssKiB,
  coreRuntime,
  median,
  freePort,
  waitPort,
  spawnNode,
  waitMessage,
  startServer,
  spawnNginx,
  stop,
  killAll,
  track,
  cpuModel,
  coreCount,
  today,
};
