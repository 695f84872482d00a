// How evenly do pre-fork workers share the load? Compares the two ways N
// processes can accept on one port:
//
//   fd         one listening socket, bound by the parent, inherited by every
//              worker (what `feersum-ts --pre-fork` does): one accept queue,
//              every idle worker waits on it
//   reuseport  each worker binds its own socket with SO_REUSEPORT: the
//              kernel hashes each new connection to one worker's queue
//
// and reports each worker's share of the requests under wrk, with
// keep-alive connections and with a new connection per request; then,
// under the second load, replaces workers one by one (replacement first,
// then the old one stops gracefully, as the runner recycles them) and
// counts the requests that failed.
//
//   node bench/prefork-spread.js                 # 4 workers, 5 s per test
//   WORKERS=8 DURATION=10 node bench/prefork-spread.js
//
// Environment: WORKERS [4], DURATION [5] seconds, CONNECTIONS [50],
// THREADS [1] (wrk), SERVER_CPUS / CLIENT_CPUS (taskset lists; default
// unpinned), OUT [bench/results/<date>-prefork-spread.json].
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const P = require('./proc');
const { runWrk } = require('./wrk-report');

const env = process.env;
const cfg = {
  workers: Number(env.WORKERS || 4),
  duration: Number(env.DURATION || 5),
  connections: Number(env.CONNECTIONS || 50),
  threads: Number(env.THREADS || 1),
  serverCpus: env.SERVER_CPUS || '',
  clientCpus: env.CLIENT_CPUS || '',
};
const OUT = env.OUT || path.join(__dirname, 'results', `${P.today()}-prefork-spread.json`);

// The worker: the same engine the runner uses, counting its requests.
const WORKER = `
const { Feersum } = require(${JSON.stringify(P.ROOT)});
const [mode, port] = [process.argv[1], Number(process.argv[2])];
const engine = new Feersum();
let requests = 0;
const headers = ['Content-Type', 'text/plain'];
engine.requestHandler((req) => { requests++; req.sendResponse(200, headers, 'Hello, World!\\n'); });
(async () => {
  if (mode === 'fd') engine.acceptOnFd(3);
  else await engine.listen({ host: '127.0.0.1', port, reusePort: true });
  process.send('ready');
})();
process.on('message', (m) => {
  if (m === 'count') { process.send({ requests }); requests = 0; }
  if (m === 'stop') stop();
});
// As the runner's workers stop: no more accepts, a moment for connections
// accepted just before to send their request, then the graceful shutdown.
function stop() {
  engine.unlisten();
  const deadline = Date.now() + 1000;
  const wait = () => {
    const s = engine.stats();
    if (s.connections <= s.requests || Date.now() > deadline) engine.gracefulShutdown().then(() => process.exit(0));
    else setTimeout(wait, 10);
  };
  wait();
}
process.on('disconnect', () => process.exit(0));
`;

function startWorker(mode, port, fd) {
  let cmd = process.execPath;
  let args = ['-e', WORKER, mode, String(port)];
  if (cfg.serverCpus) {
    args = ['-c', cfg.serverCpus, cmd, ...args];
    cmd = 'taskset';
  }
  return P.track(spawn(cmd, args, { stdio: ['ignore', 'inherit', 'inherit', fd ?? 'ignore', 'ipc'] }));
}

/** The inherited-fd mode's socket stays open here, as the runner's supervisor keeps it. */
function listenFd(mode, port) {
  if (mode !== 'fd') return undefined;
  const { loadBinding } = require(path.join(P.ROOT, 'dist', 'native.js'));
  return loadBinding().bindSocket({ host: '127.0.0.1', port }, 511);
}

const counts = (workers) =>
  Promise.all(workers.map((w) => new Promise((resolve) => {
    w.once('message', (m) => resolve(m.requests));
    w.send('count');
  })));

const LOADS = [
  { name: 'keep-alive', extra: [] },
  { name: 'new connection per request', extra: ['-H', 'Connection: close'] },
];

function wrkErrors(text) {
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const non2xx = Number((/Non-2xx or 3xx responses: (\d+)/.exec(text) || [0, 0])[1]);
  return (sock ? sock.slice(1).reduce((a, n) => a + Number(n), 0) : 0) + non2xx;
}

async function measure(mode) {
  const port = await P.freePort();
  const fd = listenFd(mode, port);
  let workers = Array.from({ length: cfg.workers }, () => startWorker(mode, port, fd));
  await Promise.all(workers.map((w) => P.waitMessage(w, 'ready')));
  const out = [];
  for (const load of LOADS) {
    const url = `http://127.0.0.1:${port}/`;
    await runWrk([`-t${cfg.threads}`, `-c${cfg.connections}`, '-d1s', ...load.extra, url], cfg.clientCpus); // warm-up
    await counts(workers);
    const text = await runWrk([`-t${cfg.threads}`, `-c${cfg.connections}`, `-d${cfg.duration}s`, ...load.extra, url], cfg.clientCpus);
    const per = await counts(workers);
    const total = per.reduce((a, b) => a + b, 0);
    const shares = per.map((n) => (100 * n) / total).sort((a, b) => b - a);
    const mean = 100 / cfg.workers;
    const sd = Math.sqrt(shares.reduce((a, s) => a + (s - mean) ** 2, 0) / shares.length);
    const rps = Number((/Requests\/sec:\s+([\d.]+)/.exec(text) || [])[1]);
    out.push({ mode, load: load.name, rps, requests: total, sharesPercent: shares, maxOverMin: shares[0] / shares[shares.length - 1], cvPercent: (100 * sd) / mean });
    P.log(`${mode} / ${load.name}: ${Math.round(rps)} req/s, shares ${shares.map((s) => s.toFixed(1) + '%').join(' ')}`);
  }

  // Recycling under load: each worker in turn is replaced while wrk runs.
  const url = `http://127.0.0.1:${port}/`;
  const seconds = Math.max(4, cfg.workers + 2);
  const run = runWrk([`-t${cfg.threads}`, `-c${cfg.connections}`, `-d${seconds}s`, '-H', 'Connection: close', url], cfg.clientCpus);
  await new Promise((r) => setTimeout(r, 1000));
  for (let i = 0; i < cfg.workers; i++) {
    const fresh = startWorker(mode, port, fd);
    await P.waitMessage(fresh, 'ready');
    const old = workers.shift();
    const gone = new Promise((r) => old.once('exit', r));
    old.send('stop');
    await gone;
    workers.push(fresh);
  }
  const text = await run;
  const recycle = { mode, requests: Number((/(\d+) requests in/.exec(text) || [0, 0])[1]), errors: wrkErrors(text), replaced: cfg.workers };
  P.log(`${mode} / replacing ${cfg.workers} workers under load: ${recycle.errors} failed of ${recycle.requests}`);

  await Promise.all(workers.map((w) => P.stop(w)));
  if (fd !== undefined) fs.closeSync(fd);
  return { rows: out, recycle };
}

(async () => {
  P.checkBuild();
  const fd = await measure('fd');
  const rp = await measure('reuseport');
  const rows = [...fd.rows, ...rp.rows];
  const recycles = [fd.recycle, rp.recycle];
  fs.mkdirSync(path.dirname(OUT), { recursive: true });
  const host = { cpu: P.cpuModel(), cores: P.coreCount(), node: process.version };
  fs.writeFileSync(OUT, JSON.stringify({ date: new Date().toISOString(), host, config: cfg, rows, recycles }, null, 2) + '\n');
  const name = (mode) => (mode === 'fd' ? 'inherited fd (one queue)' : 'SO_REUSEPORT (queue per worker)');
  const L = [
    `## Spread over ${cfg.workers} workers: wrk -c${cfg.connections}, ${cfg.duration}s per test`,
    '',
    '| accept | load | req/s | shares, busiest first | busiest / idlest | CV |',
    '|---|---|---:|---|---:|---:|',
    ...rows.map((r) =>
      `| ${name(r.mode)} | ${r.load} | ${Math.round(r.rps).toLocaleString('en-US')} | ` +
        `${r.sharesPercent.map((s) => s.toFixed(1) + '%').join(' ')} | ${r.maxOverMin.toFixed(2)} | ${r.cvPercent.toFixed(0)}% |`),
    '',
    `Replacing all ${cfg.workers} workers one by one under a new-connection-per-request load:`,
    '',
    '| accept | requests | failed |',
    '|---|---:|---:|',
    ...recycles.map((r) => `| ${name(r.mode)} | ${r.requests.toLocaleString('en-US')} | ${r.errors} |`),
  ];
  process.stdout.write(L.join('\n') + '\n');
})().catch((err) => {
  P.log(err.stack || String(err));
  P.killAll();
  process.exit(1);
});
