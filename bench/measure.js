// Hello-world throughput: wrk against each server kind, plain keep-alive and
// pipelined, recording requests/s and requests per server CPU-second.
// Run through bench/run.sh (or `npm run bench`); see bench/README.md.
//
// Environment (defaults in brackets):
//   DURATION [10]        seconds per measured wrk run
//   REPEAT [1]           runs per measurement; the median is reported
//   WARMUP [2]           seconds of unmeasured wrk load after each server start
//   CONNECTIONS [50]     wrk -c
//   THREADS [1]          wrk -t
//   PIPELINE_DEPTH [16]  requests per write in the pipelined test
//   KINDS [node native psgi]  add nginx for nginx (apt-get install nginx-light)
//                             as a reference: one process, `return 200` with the same body
//   SERVER_CPU [0]       taskset list for the server ('' = no pinning)
//   CLIENT_CPUS [1]      taskset list for wrk ('' = no pinning)
//   OUT [bench/results/<date>-hello.json]
//
// Markdown goes to stdout, progress and warnings to stderr.
'use strict';
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const P = require('./proc');
const { parseWrk, fmt, ratio, fmtRatio } = require('./wrk-report');

const cores = P.coreCount();
const env = process.env;
const cfg = {
  duration: Number(env.DURATION || 10),
  repeat: Math.max(1, Number(env.REPEAT || 1)),
  warmup: Number(env.WARMUP ?? 2),
  connections: Number(env.CONNECTIONS || 50),
  threads: Number(env.THREADS || 1),
  pipelineDepth: Number(env.PIPELINE_DEPTH || 16),
  kinds: (env.KINDS || 'node native psgi').split(/[\s,]+/).filter(Boolean),
  serverCpu: env.SERVER_CPU ?? (cores >= 2 ? '0' : ''),
  clientCpus: env.CLIENT_CPUS ?? (cores >= 2 ? '1' : ''),
};
const OUT = env.OUT || path.join(__dirname, 'results', `${P.today()}-hello.json`);
const RAW = OUT.replace(/\.json$/, '') + '.raw';
const PIPELINE_LUA = path.join(__dirname, 'pipeline.lua');

const TESTS = [
  { name: 'hello', script: null },
  { name: 'pipelined', script: PIPELINE_LUA },
];

function wrkArgs(test, port, seconds) {
  const a = [`-t${cfg.threads}`, `-c${cfg.connections}`, `-d${seconds}s`, '--latency'];
  if (test.script) a.push('-s', test.script);
  a.push(`http://127.0.0.1:${port}/`);
  return a;
}

/** The command line as a person would type it (relative paths, taskset). */
function wrkCommand(test, seconds) {
  const a = wrkArgs(test, '<port>', seconds).map((x) => (x === PIPELINE_LUA ? 'bench/pipeline.lua' : x));
  const pre = test.script ? `PIPELINE_DEPTH=${cfg.pipelineDepth} ` : '';
  const pin = cfg.clientCpus !== '' ? `taskset -c ${cfg.clientCpus} ` : '';
  return `${pre}${pin}wrk ${a.join(' ')}`;
}

// wrk runs under `bash -c '...; times'` so that its CPU time (the shell's
// children's user+sys) is known: it tells whether the client was the limit.
const WRK_WRAPPER = 'wrk "$@"; rc=$?; echo "--- times" >&2; times >&2; exit $rc';

function runWrk(test, port, seconds) {
  let cmd = 'bash';
  let args = ['-c', WRK_WRAPPER, 'wrk', ...wrkArgs(test, port, seconds)];
  if (cfg.clientCpus !== '') {
    args = ['-c', cfg.clientCpus, cmd, ...args];
    cmd = 'taskset';
  }
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: { ...process.env, PIPELINE_DEPTH: String(cfg.pipelineDepth) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    P.track(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      const i = err.lastIndexOf('--- times\n');
      let wrkCpuSeconds = NaN;
      if (i >= 0) {
        // `times`: line 1 the shell's user/sys, line 2 its children's.
        const lines = err.slice(i + 10).trim().split('\n');
        const t = (lines[1] || '').match(/(\d+)m([\d.]+)s/g) || [];
        wrkCpuSeconds = t.map((x) => {
          const m = /(\d+)m([\d.]+)s/.exec(x);
          return Number(m[1]) * 60 + Number(m[2]);
        }).reduce((a, b) => a + b, 0);
        err = err.slice(0, i);
      }
      if (code !== 0) reject(new Error(`wrk exited with code ${code} signal ${signal}\n${out}${err}`));
      else resolve({ text: out + err, wrkCpuSeconds });
    });
  });
}

async function checkResponse(port) {
  const res = await fetch(`http://127.0.0.1:${port}/`);
  const body = await res.text();
  if (res.status !== 200 || body !== 'Hello, World!\n') {
    throw new Error(`GET / answered ${res.status} ${JSON.stringify(body.slice(0, 80))}`);
  }
}

// nginx as the reference a target can be read against: the same body and
// Content-Type, keep-alive limits like feersum-ts's defaults.
async function startNginx(port) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'feersum-bench-nginx-'));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  const http = `keepalive_timeout 75s; keepalive_requests 1000;
  server { listen 127.0.0.1:${port}; location / { default_type text/plain; return 200 "Hello, World!\\n"; } }`;
  const child = P.spawnNginx(dir, http, { cpus: cfg.serverCpu });
  if (!child) P.fail('nginx is not installed (apt-get install nginx-light)');
  await P.waitPort(port);
  return child;
}

function alive(child) {
  return child.exitCode === null && child.signalCode === null;
}

const raw = [];

async function measureKind(kind) {
  const result = { kind, tests: {} };
  const port = await P.freePort();
  P.log(`\n== ${kind}: starting server on 127.0.0.1:${port}` + (cfg.serverCpu !== '' ? ` (cpu ${cfg.serverCpu})` : ''));
  const server = kind === 'nginx' ? await startNginx(port) : await P.startServer(kind, port, { cpus: cfg.serverCpu });
  result.pid = server.pid;
  try {
    await checkResponse(port);
    if (cfg.warmup > 0) {
      P.log(`   warmup ${cfg.warmup}s`);
      const { text } = await runWrk(TESTS[0], port, cfg.warmup);
      raw.push(`### ${kind} warmup\n${text}`);
      const w = parseWrk(text);
      if (w.errors) P.log(`   WARNING: errors during warmup: ${w.errorLines.join('; ')}`);
    }
    for (const test of TESTS) {
      const runs = [];
      const entry = (result.tests[test.name] = { runs, median: null });
      for (let i = 0; i < cfg.repeat; i++) {
        if (!alive(server)) throw new Error(`server exited (code ${server.exitCode}, signal ${server.signalCode})`);
        const c0 = P.cpuSeconds(server.pid);
        const k0 = P.coreRuntime();
        const w0 = process.hrtime.bigint();
        const { text, wrkCpuSeconds } = await runWrk(test, port, cfg.duration);
        const w1 = process.hrtime.bigint();
        const k1 = P.coreRuntime();
        const serverAlive = alive(server);
        const c1 = serverAlive ? P.cpuSeconds(server.pid) : NaN;
        raw.push(`### ${kind} ${test.name} run ${i + 1}\n${text}`);
        const r = parseWrk(text);
        r.serverCpuSeconds = c1 - c0;
        r.reqPerCpuSecond = r.requests / r.serverCpuSeconds;
        r.serverCpuPercent = (100 * r.serverCpuSeconds) / (r.wrkSeconds || cfg.duration);
        r.wrkCpuSeconds = wrkCpuSeconds;
        r.wrkCpuPercent = (100 * wrkCpuSeconds) / (r.wrkSeconds || cfg.duration);
        // Noise: what else ran on the two pinned cores meanwhile.
        if (k0 && k1) {
          const wall = Number(w1 - w0) / 1e9;
          const busy = (core) => (100 * (k1[core] - k0[core])) / wall;
          if (/^\d+$/.test(cfg.serverCpu)) {
            r.otherLoadOnServerCorePercent = Math.max(0, busy(cfg.serverCpu) - (100 * r.serverCpuSeconds) / wall);
          }
          if (/^\d+$/.test(cfg.clientCpus)) {
            r.otherLoadOnClientCorePercent = Math.max(0, busy(cfg.clientCpus) - (100 * r.wrkCpuSeconds) / wall);
          }
        }
        const e = r.errorLines;
        delete r.errorLines;
        P.log(
          `   ${test.name} #${i + 1}: ${r.requests} requests in ${r.wrkSeconds.toFixed(2)}s, ` +
            `${fmt(r.rps)} req/s, ${r.serverCpuSeconds.toFixed(2)} server CPU-s, ${fmt(r.reqPerCpuSecond)} req/CPU-s` +
            (r.errors ? `, ${r.errors} ERRORS` : ''),
        );
        if (r.errors) P.log(`   WARNING: ${kind} ${test.name}: wrk reported errors:\n     ${e.join('\n     ')}`);
        if (r.requests === 0) P.log(`   WARNING: ${kind} ${test.name}: no requests completed`);
        runs.push(r);
        entry.median = summarize(runs);
        if (!serverAlive) {
          throw new Error(`server exited during the run (code ${server.exitCode}, signal ${server.signalCode})`);
        }
      }
    }
  } catch (err) {
    result.error = err.message;
    P.log(`   FAILED: ${kind}: ${err.message}`);
  } finally {
    await P.stop(server);
  }
  return result;
}

function summarize(runs) {
  const m = (f) => P.median(runs.map(f));
  return {
    rps: m((r) => r.rps),
    reqPerCpuSecond: m((r) => r.reqPerCpuSecond),
    serverCpuPercent: m((r) => r.serverCpuPercent),
    wrkCpuPercent: m((r) => r.wrkCpuPercent),
    otherLoadOnServerCorePercent: m((r) => r.otherLoadOnServerCorePercent),
    otherLoadOnClientCorePercent: m((r) => r.otherLoadOnClientCorePercent),
    p50_ms: m((r) => r.latency.p50_ms),
    p99_ms: m((r) => r.latency.p99_ms),
    errors: runs.reduce((a, r) => a + r.errors, 0),
  };
}

function fmtPct(x) {
  return Number.isFinite(x) ? `${x >= 0 ? '+' : ''}${x.toFixed(1)}%` : 'n/a';
}

function ratios(byKind) {
  const out = {};
  for (const t of TESTS) {
    const g = (k, f) => byKind[k]?.tests[t.name]?.median?.[f];
    out[t.name] = {
      rps: {
        nativeVsNode: ratio(g('native', 'rps'), g('node', 'rps')),
        psgiVsNode: ratio(g('psgi', 'rps'), g('node', 'rps')),
        nginxVsNode: ratio(g('nginx', 'rps'), g('node', 'rps')),
      },
      reqPerCpuSecond: {
        nativeVsNode: ratio(g('native', 'reqPerCpuSecond'), g('node', 'reqPerCpuSecond')),
        psgiVsNode: ratio(g('psgi', 'reqPerCpuSecond'), g('node', 'reqPerCpuSecond')),
        nginxVsNode: ratio(g('nginx', 'reqPerCpuSecond'), g('node', 'reqPerCpuSecond')),
      },
      // How much more a PSGI request costs than a native one, in %:
      // wall time per request (from req/s) and server CPU time per request.
      psgiOverheadPercent: {
        time: 100 * (ratio(g('native', 'rps'), g('psgi', 'rps')) - 1),
        cpu: 100 * (ratio(g('native', 'reqPerCpuSecond'), g('psgi', 'reqPerCpuSecond')) - 1),
      },
    };
  }
  return out;
}

function markdown(doc) {
  const L = [];
  const c = doc.config;
  L.push(`## Hello world: ${c.connections} keep-alive connections, ${c.duration}s per run, median of ${c.repeat}`);
  L.push('');
  L.push(`${doc.host.cpu}, ${doc.host.cores} cores, node ${doc.host.node}, ${doc.host.wrk}`);
  L.push(`server: \`${doc.commands.server}\``);
  for (const t of TESTS) L.push(`${t.name}: \`${doc.commands[t.name]}\``);
  L.push('');
  L.push('| server | test | req/s | req/CPU-s | server CPU | wrk CPU | other load on server / client core | p50 | p99 | errors |');
  L.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const k of c.kinds) {
    const r = doc.results[k];
    if (!r) continue;
    for (const t of TESTS) {
      const m = r.tests[t.name]?.median;
      if (!m) {
        L.push(`| ${k} | ${t.name} | failed: ${r.error || 'not run'} | | | | | | | |`);
        continue;
      }
      const ms = (x) => (Number.isFinite(x) ? `${x.toFixed(2)} ms` : 'n/a');
      const pct = (x) => (Number.isFinite(x) ? `${x.toFixed(0)}%` : 'n/a');
      L.push(
        `| ${k} | ${t.name} | ${fmt(m.rps)} | ${fmt(m.reqPerCpuSecond)} | ${pct(m.serverCpuPercent)} | ` +
          `${pct(m.wrkCpuPercent)} | ${pct(m.otherLoadOnServerCorePercent)} / ${pct(m.otherLoadOnClientCorePercent)} | ` +
          `${ms(m.p50_ms)} | ${ms(m.p99_ms)} | ${m.errors} |`,
      );
    }
  }
  L.push('');
  L.push('| test | native/node req/s | psgi/node req/s | native/node req/CPU-s | psgi/node req/CPU-s | PSGI overhead vs native (time / CPU per request) |');
  L.push('|---|---:|---:|---:|---:|---:|');
  for (const t of TESTS) {
    const r = doc.ratios[t.name];
    L.push(
      `| ${t.name} | ${fmtRatio(r.rps.nativeVsNode)} | ${fmtRatio(r.rps.psgiVsNode)} | ` +
        `${fmtRatio(r.reqPerCpuSecond.nativeVsNode)} | ${fmtRatio(r.reqPerCpuSecond.psgiVsNode)} | ` +
        `${fmtPct(r.psgiOverheadPercent.time)} / ${fmtPct(r.psgiOverheadPercent.cpu)} |`,
    );
  }
  if (c.kinds.includes('nginx')) {
    L.push('');
    for (const t of TESTS) {
      const r = doc.ratios[t.name];
      L.push(`(reference) nginx/node ${t.name}: ${fmtRatio(r.rps.nginxVsNode)} req/s, ${fmtRatio(r.reqPerCpuSecond.nginxVsNode)} req/CPU-s`);
    }
  }
  if (doc.errors.length) {
    L.push('');
    L.push('**Problems:**');
    for (const e of doc.errors) L.push(`- ${e}`);
  }
  return L.join('\n');
}

async function main() {
  P.checkBuild();
  for (const k of cfg.kinds) if (!['node', 'native', 'psgi', 'nginx'].includes(k)) P.fail(`unknown kind '${k}' in KINDS`);
  if (cores < 2 && (cfg.serverCpu !== '' || cfg.clientCpus !== '')) {
    P.log('warning: fewer than 2 cores; set SERVER_CPU= CLIENT_CPUS= to run unpinned');
  }
  let wrkVersion = 'wrk';
  try {
    execFileSync('wrk', ['-v'], { stdio: 'pipe' });
  } catch (err) {
    // wrk -v exits 1 after printing its version.
    const m = /^(wrk \S+)/.exec(String(err.stdout || ''));
    if (m) wrkVersion = m[1];
    else if (err.code === 'ENOENT') P.fail('wrk not found (bench/run.sh installs it)');
  }
  const load = os.loadavg()[0];
  if (load > 0.5) P.log(`note: load average is ${load.toFixed(2)} before starting; figures may be noisy`);

  const results = {};
  for (const kind of cfg.kinds) results[kind] = await measureKind(kind);

  const errors = [];
  for (const k of cfg.kinds) {
    const r = results[k];
    if (r.error) errors.push(`${k}: ${r.error}`);
    for (const t of TESTS) {
      for (const [i, run] of (r.tests[t.name]?.runs || []).entries()) {
        if (run.errors) {
          errors.push(
            `${k} ${t.name} run ${i + 1}: ${run.errors} errors in ${run.requests} requests ` +
              `(non-2xx ${run.non2xx}, socket ${JSON.stringify(run.socketErrors)})`,
          );
        }
      }
    }
  }
  const pin = cfg.serverCpu !== '' ? `taskset -c ${cfg.serverCpu} ` : '';
  const doc = {
    date: new Date().toISOString(),
    host: {
      cpu: P.cpuModel(),
      cores,
      kernel: os.release(),
      node: process.version,
      wrk: wrkVersion,
      loadAverageAtStart: load,
    },
    config: cfg,
    commands: {
      server: `${pin}node bench/servers.js <kind> <port>`,
      hello: wrkCommand(TESTS[0], cfg.duration),
      pipelined: wrkCommand(TESTS[1], cfg.duration),
    },
    results,
    ratios: ratios(results),
    errors,
  };
  fs.mkdirSync(path.dirname(OUT), { recursive: true });
  fs.writeFileSync(OUT, JSON.stringify(doc, null, 2) + '\n');
  fs.writeFileSync(RAW, raw.join('\n'));
  P.log(`\nwrote ${path.relative(process.cwd(), OUT)} (raw wrk output: ${path.relative(process.cwd(), RAW)})\n`);
  process.stdout.write(markdown(doc) + '\n');
  for (const e of errors) P.log(`WARNING: ${e}`);
  process.exitCode = errors.length ? 2 : 0;
}

main().catch((err) => {
  P.log(err.stack || String(err));
  P.killAll();
  process.exit(1);
});
