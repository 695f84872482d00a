// The pre-fork runner against a single process: the same hello-world PSGI
// app (bench/prefork-app.js) under `feersum-ts` with --pre-fork=0 and
// --pre-fork=N, driven by wrk with keep-alive connections and with a new
// connection per request. Records req/s, the CPU time of the whole server
// (supervisor + workers, recycled workers included), latency, errors, and
// how the load spread over the workers (their CPU time).
//
//   node bench/prefork.js                        # this machine's defaults
//   PREFORK="0 2 4 8" SERVER_CPUS=0-7 CLIENT_CPUS=8-15 THREADS=8 CONNECTIONS=256 node bench/prefork.js
//
// Environment (defaults in brackets):
//   PREFORK ["0 2"]        worker counts to compare (0 = single process)
//   MAX_REQS ["0 1000"]    --max-reqs-per-child values for the pre-fork runs
//                          (1000 is the runner's default: workers recycle)
//   PIN ["split none"]     split: server on SERVER_CPUS, wrk on CLIENT_CPUS;
//                          none: no pinning, everything shares every core
//   SERVER_CPUS [0]  CLIENT_CPUS [1]   taskset lists for PIN=split
//   DURATION [10]  WARMUP [2]  CONNECTIONS [50]  THREADS [1]
//   OUT [bench/results/<date>-prefork.json]
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const P = require('./proc');
const { parseWrk, runWrk, fmt } = require('./wrk-report');

const env = process.env;
const list = (v, d) => (v ?? d).split(/[\s,]+/).filter(Boolean);
const cfg = {
  prefork: list(env.PREFORK, '0 2').map(Number),
  maxReqs: list(env.MAX_REQS, '0 1000').map(Number),
  pin: list(env.PIN, P.coreCount() >= 2 ? 'split none' : 'none'),
  serverCpus: env.SERVER_CPUS || '0',
  clientCpus: env.CLIENT_CPUS || '1',
  duration: Number(env.DURATION || 10),
  warmup: Number(env.WARMUP ?? 2),
  connections: Number(env.CONNECTIONS || 50),
  threads: Number(env.THREADS || 1),
};
const OUT = env.OUT || path.join(__dirname, 'results', `${P.today()}-prefork.json`);
const CLI = path.join(P.ROOT, 'dist', 'runner', 'cli.js');
const APP = path.join(__dirname, 'prefork-app.js');
const LOADS = [
  { name: 'keep-alive', extra: [] },
  { name: 'new connection per request', extra: ['-H', 'Connection: close'] },
];

/** The runner's children (its workers), from /proc. */
function children(pid) {
  const out = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const st = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      if (Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(e));
    } catch {}
  }
  return out;
}

/** CPU seconds of the supervisor, its live workers, and the workers it already reaped (cutime + cstime). */
function treeCpu(pid) {
  const raw = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // After "pid (comm) ", field N is at index N - 3: utime 14, stime 15, cutime 16, cstime 17.
  const stat = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
  const self = (Number(stat[11]) + Number(stat[12]) + Number(stat[13]) + Number(stat[14])) / P.CLK_TCK;
  const perWorker = new Map();
  for (const c of children(pid)) {
    try {
      perWorker.set(c, P.cpuSeconds(c));
    } catch {}
  }
  return { total: self + [...perWorker.values()].reduce((a, b) => a + b, 0), perWorker };
}

function startRunner(workers, maxReqs, pinned) {
  return new Promise((resolve, reject) => {
    const args = [CLI, '--listen', '127.0.0.1:0', `--pre-fork=${workers}`, `--max-reqs-per-child=${maxReqs}`, APP];
    let cmd = process.execPath;
    let argv = args;
    if (pinned) {
      argv = ['-c', cfg.serverCpus, cmd, ...args];
      cmd = 'taskset';
    }
    const child = P.track(spawn(cmd, argv, { cwd: P.ROOT, stdio: ['ignore', 'ignore', 'pipe'] }));
    let err = '';
    child.stderr.on('data', (d) => {
      err += d;
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(err);
      if (m) resolve({ child, port: Number(m[1]) });
    });
    child.on('exit', (code) => reject(new Error(`runner exited (${code}): ${err}`)));
  });
}


async function measure(workers, maxReqs, pin) {
  const pinned = pin === 'split';
  const label = workers === 0 ? 'single process' : `--pre-fork=${workers}, --max-reqs-per-child=${maxReqs}`;
  P.log(`\n== ${label}, ${pinned ? `server on cpu ${cfg.serverCpus}, wrk on cpu ${cfg.clientCpus}` : 'unpinned'}`);
  const { child, port } = await startRunner(workers, maxReqs, pinned);
  const rows = [];
  try {
    for (const load of LOADS) {
      const base = [`-t${cfg.threads}`, `-c${cfg.connections}`, '--latency', ...load.extra];
      const url = `http://127.0.0.1:${port}/`;
      if (cfg.warmup > 0) await runWrk([...base, `-d${cfg.warmup}s`, url], pinned ? cfg.clientCpus : '');
      const c0 = treeCpu(child.pid);
      const text = await runWrk([...base, `-d${cfg.duration}s`, url], pinned ? cfg.clientCpus : '');
      const c1 = treeCpu(child.pid);
      const w = parseWrk(text);
      const r = { requests: w.requests, rps: w.rps, p50_ms: w.latency.p50_ms ?? NaN, p99_ms: w.latency.p99_ms ?? NaN, errors: w.errors };
      const cpu = c1.total - c0.total;
      // The spread: each worker's share of the CPU the workers used, for
      // workers that lived through the whole run (without recycling, all).
      const shares = [];
      for (const [pid, t1] of c1.perWorker) if (c0.perWorker.has(pid)) shares.push(t1 - c0.perWorker.get(pid));
      const sum = shares.reduce((a, b) => a + b, 0);
      const row = {
        workers,
        maxReqs: workers === 0 ? null : maxReqs,
        pin,
        load: load.name,
        ...r,
        serverCpuSeconds: cpu,
        reqPerCpuSecond: r.requests / cpu,
        workerCpuSharesPercent: workers > 0 && sum > 0 ? shares.map((s) => (100 * s) / sum).sort((a, b) => b - a) : [],
      };
      rows.push(row);
      P.log(
        `   ${load.name}: ${Math.round(r.rps)} req/s, ${cpu.toFixed(2)} server CPU-s, p99 ${r.p99_ms} ms` +
          (row.workerCpuSharesPercent.length ? `, worker CPU shares ${row.workerCpuSharesPercent.map((s) => s.toFixed(0) + '%').join(' ')}` : '') +
          (r.errors ? `, ${r.errors} ERRORS` : ''),
      );
    }
  } finally {
    await P.stop(child, 10000);
  }
  return rows;
}

function markdown(doc) {
  const L = [
    `## feersum-ts runner: single process vs pre-fork (wrk -t${cfg.threads} -c${cfg.connections}, ${cfg.duration}s per run)`,
    '',
    `${doc.host.cpu}, ${doc.host.cores} cores, node ${doc.host.node}`,
    '',
    '| server | pinning | load | req/s | req/CPU-s | p50 | p99 | worker CPU shares | errors |',
    '|---|---|---|---:|---:|---:|---:|---|---:|',
  ];
  for (const r of doc.rows) {
    const server = r.workers === 0 ? 'single process' : `--pre-fork=${r.workers}${r.maxReqs ? ` --max-reqs-per-child=${r.maxReqs}` : ' (no recycling)'}`;
    const pin = r.pin === 'split' ? `server ${cfg.serverCpus} / wrk ${cfg.clientCpus}` : 'none';
    const shares = r.workerCpuSharesPercent.map((s) => `${s.toFixed(0)}%`).join(' ') || '-';
    L.push(`| ${server} | ${pin} | ${r.load} | ${fmt(r.rps)} | ${fmt(r.reqPerCpuSecond)} | ${r.p50_ms.toFixed(2)} ms | ${r.p99_ms.toFixed(2)} ms | ${shares} | ${r.errors} |`);
  }
  return L.join('\n');
}

(async () => {
  P.checkBuild();
  if (!fs.existsSync(CLI)) P.fail(`${CLI} missing; run \`npm run build\``);
  const rows = [];
  for (const pin of cfg.pin) {
    for (const workers of cfg.prefork) {
      for (const maxReqs of workers === 0 ? [0] : cfg.maxReqs) rows.push(...(await measure(workers, maxReqs, pin)));
    }
  }
  const doc = {
    date: new Date().toISOString(),
    host: { cpu: P.cpuModel(), cores: P.coreCount(), kernel: os.release(), node: process.version, loadAverageAtStart: os.loadavg()[0] },
    config: cfg,
    rows,
  };
  fs.mkdirSync(path.dirname(OUT), { recursive: true });
  fs.writeFileSync(OUT, JSON.stringify(doc, null, 2) + '\n');
  P.log(`\nwrote ${path.relative(process.cwd(), OUT)}\n`);
  process.stdout.write(markdown(doc) + '\n');
  if (rows.some((r) => r.errors)) {
    P.log('WARNING: some runs had errors');
    process.exitCode = 2;
  }
})().catch((err) => {
  P.log(err.stack || String(err));
  P.killAll();
  process.exit(1);
});
