// HTTPS benchmarks: feersum-ts (native interface, built-in TLS) against
// node:https in the same run, with an RSA-2048 certificate made for the run.
//
//   1. keep-alive hello world: wrk -t1 -c50 over https, req/s and requests
//      per server CPU-second (target: feersum >= 1.8x node:https);
//   2. full handshakes per second: `openssl s_time -new` (never resumes),
//      handshakes/s and per server CPU-second (target: >= 0.9x node:https);
//   3. session resumption: `openssl s_time -reuse`, and how the servers
//      counted the connections (feersum: engine.stats() tlsHandshakes /
//      tlsResumed; node:https: isSessionReused() on 'secureConnection').
//
//   node bench/https.js
//   DURATION=5 HS_DURATION=5 node bench/https.js
//
// Environment (defaults in brackets):
//   DURATION [10]          seconds of each wrk run
//   REPEAT [1]             wrk runs per server; the median is reported
//   WARMUP [2]             seconds of unmeasured wrk load after each server start
//   CONNECTIONS [50]  THREADS [1]   wrk -c / -t
//   HS_DURATION [10]       seconds of each s_time run (-time)
//   HS_VERSIONS ["default tls1_2"]  s_time protocol flags for the handshake
//                          runs: default = no flag (TLS 1.3), tls1_2 = -tls1_2
//   HS_PARALLEL [1]        s_time processes at once (s_time is one sequential
//                          client: with 1, the rate is bounded by the round
//                          trips and both sides' CPU in turn, not by the server)
//   KEEPALIVE_REQUESTS [0] requests per keep-alive connection before the server
//                          closes it, for both servers (feersum
//                          maxKeepaliveRequests, node maxRequestsPerSocket);
//                          0 = unlimited, node:https's default (feersum's is
//                          1000: wrk would reconnect, with a full handshake,
//                          every 1000 requests on each connection)
//   KINDS ["node feersum"]   add nginx for nginx (apt-get install nginx-light) as
//                          a reference: one process, same certificate, `return 200`
//                          (the server counters of the s_time runs are then n/a)
//   SERVER_CPU [0]  CLIENT_CPUS [1]   taskset lists ('' = no pinning)
//   OUT [bench/results/<date>-https.json]
//
// The servers run from this file: `node bench/https.js --server <kind> <port> <cert dir>`.
// Markdown goes to stdout, progress to stderr. Exit status 2 when a run had
// errors, 0 otherwise (targets are reported, not enforced).
'use strict';
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const BODY = 'Hello, World!\n';

// ------------------------------------------------------------------ servers

function server(kind, port, certDir) {
  const key = fs.readFileSync(path.join(certDir, 'key.pem'));
  const cert = fs.readFileSync(path.join(certDir, 'cert.pem'));
  let stats;
  const ready = () => {
    process.send('ready');
    process.on('disconnect', () => process.exit(0));
    process.on('message', (msg) => {
      if (msg && msg.cmd === 'stats') process.send({ cmd: 'stats', stats: stats() });
    });
  };
  if (kind === 'node') {
    const https = require('node:https');
    const counts = { connections: 0, tlsHandshakes: 0, tlsResumed: 0 };
    const srv = https.createServer({ key, cert }, (req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': BODY.length });
      res.end(BODY);
    });
    srv.keepAliveTimeout = 600000;
    srv.maxRequestsPerSocket = Number(process.env.KEEPALIVE_REQUESTS || 0);
    srv.on('secureConnection', (sock) => {
      if (sock.isSessionReused()) counts.tlsResumed++;
      else counts.tlsHandshakes++;
    });
    stats = () => counts;
    srv.listen(port, '127.0.0.1', ready);
  } else if (kind === 'feersum') {
    const { Feersum } = require('..');
    const engine = new Feersum({ keepaliveTimeout: 600, maxKeepaliveRequests: Number(process.env.KEEPALIVE_REQUESTS || 0) });
    const headers = ['Content-Type', 'text/plain'];
    engine.requestHandler((req) => req.sendResponse(200, headers, BODY));
    stats = () => engine.stats();
    engine.listen({ host: '127.0.0.1', port, tls: { key, cert } }).then(ready);
  } else {
    throw new Error(`unknown server kind ${kind}`);
  }
}

// ------------------------------------------------------------------ driver

const P = require('./proc');
const { parseWrk, fmt, pct, ratio, fmtRatio } = require('./wrk-report');

const env = process.env;
const cores = P.coreCount();
const cfg = {
  duration: Number(env.DURATION || 10),
  repeat: Math.max(1, Number(env.REPEAT || 1)),
  warmup: Number(env.WARMUP ?? 2),
  connections: Number(env.CONNECTIONS || 50),
  threads: Number(env.THREADS || 1),
  hsDuration: Number(env.HS_DURATION || 10),
  hsVersions: (env.HS_VERSIONS || 'default tls1_2').split(/[\s,]+/).filter(Boolean),
  hsParallel: Math.max(1, Number(env.HS_PARALLEL || 1)),
  kinds: (env.KINDS || 'node feersum').split(/[\s,]+/).filter(Boolean),
  keepaliveRequests: Number(env.KEEPALIVE_REQUESTS || 0),
  serverCpu: env.SERVER_CPU ?? (cores >= 2 ? '0' : ''),
  clientCpus: env.CLIENT_CPUS ?? (cores >= 2 ? '1' : ''),
};
const OUT = env.OUT || path.join(__dirname, 'results', `${P.today()}-https.json`);
const RAW = OUT.replace(/\.json$/, '') + '.raw';
const raw = [];

const pinned = (cmd, args) => (cfg.clientCpus !== '' ? ['taskset', ['-c', cfg.clientCpus, cmd, ...args]] : [cmd, args]);
const typed = (cmd, args) => (cfg.clientCpus !== '' ? `taskset -c ${cfg.clientCpus} ` : '') + [cmd, ...args].join(' ');

// The client runs under `bash -c '...; times'` so that its CPU time is known.
const TIMES_WRAPPER = '"$@"; rc=$?; echo "--- times" >&2; times >&2; exit $rc';

function runClient(cmd, args) {
  const [c, a] = pinned('bash', ['-c', TIMES_WRAPPER, 'client', cmd, ...args]);
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(c, a, { stdio: ['ignore', 'pipe', 'pipe'] });
    P.track(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      const wall = Number(process.hrtime.bigint() - t0) / 1e9;
      let cpu = NaN;
      const i = err.lastIndexOf('--- times\n');
      if (i >= 0) {
        const lines = err.slice(i + 10).trim().split('\n');
        cpu = (lines[1] || '').match(/(\d+)m([\d.]+)s/g)?.map((x) => {
          const m = /(\d+)m([\d.]+)s/.exec(x);
          return Number(m[1]) * 60 + Number(m[2]);
        }).reduce((a, b) => a + b, 0) ?? NaN;
        err = err.slice(0, i);
      }
      if (code !== 0) reject(new Error(`${cmd} exited with code ${code} signal ${signal}\n${out}${err}`));
      else resolve({ out, err, wall, cpu });
    });
  });
}

/** Runs fn() while measuring the server's CPU time and the other load on both cores. */
async function measured(pid, fn) {
  const c0 = P.cpuSeconds(pid);
  const k0 = P.coreRuntime();
  const w0 = process.hrtime.bigint();
  const r = await fn();
  const wall = Number(process.hrtime.bigint() - w0) / 1e9;
  const k1 = P.coreRuntime();
  const serverCpu = P.cpuSeconds(pid) - c0;
  const m = { wall, serverCpuSeconds: serverCpu, serverCpuPercent: (100 * serverCpu) / wall, clientCpuPercent: (100 * r.cpu) / wall };
  if (k0 && k1) {
    const busy = (core) => (100 * (k1[core] - k0[core])) / wall;
    if (/^\d+$/.test(cfg.serverCpu)) m.otherLoadOnServerCorePercent = Math.max(0, busy(cfg.serverCpu) - m.serverCpuPercent);
    if (/^\d+$/.test(cfg.clientCpus)) m.otherLoadOnClientCorePercent = Math.max(0, busy(cfg.clientCpus) - m.clientCpuPercent);
  }
  return { r, m };
}

/** s_time's summary: connections and the client's user seconds; 'r' = resumed, '*' = new. */
function parseSTime(text) {
  const m = /(\d+) connections in ([\d.]+)s; ([\d.]+) connections\/user sec/.exec(text);
  const marks = text.split('\n').filter((l) => /^[r*]+$/.test(l)).join('');
  return {
    connections: m ? Number(m[1]) : 0,
    clientUserSeconds: m ? Number(m[2]) : NaN,
    resumedMarks: (marks.match(/r/g) || []).length,
    newMarks: (marks.match(/\*/g) || []).length,
  };
}

function wrkArgs(port, seconds) {
  return [`-t${cfg.threads}`, `-c${cfg.connections}`, `-d${seconds}s`, '--latency', `https://127.0.0.1:${port}/`];
}

function sTimeArgs(port, mode, version) {
  const a = ['s_time', '-connect', `127.0.0.1:${port}`, mode === 'new' ? '-new' : '-reuse', '-time', String(cfg.hsDuration)];
  if (version !== 'default') a.push(`-${version}`);
  // TLS 1.3 tickets arrive after the handshake: s_time only reads them
  // (and so can resume) when it fetches a page.
  if (mode === 'reuse' && version !== 'tls1_2') a.push('-www', '/');
  return a;
}

// nginx, as a reference, with the same certificate, keep-alive settings and body.
function startNginx(port, certDir) {
  const requests = cfg.keepaliveRequests || 1000000000;
  const http = `keepalive_timeout 600s; keepalive_requests ${requests};
  server {
    listen 127.0.0.1:${port} ssl; ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate ${certDir}/cert.pem; ssl_certificate_key ${certDir}/key.pem;
    location / { default_type text/plain; return 200 ${JSON.stringify(BODY)}; }
  }`;
  return P.spawnNginx(certDir, http, { cpus: cfg.serverCpu });
}

function serverStats(child) {
  if (!child.send) return Promise.resolve({ tlsHandshakes: NaN, tlsResumed: NaN }); // nginx: not counted
  const p = P.waitMessage(child, 'stats', 5000);
  child.send({ cmd: 'stats' });
  return p.then((m) => m.stats);
}

function checkResponse(port) {
  const https = require('node:https');
  return new Promise((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port, path: '/', rejectUnauthorized: false, agent: false }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => {
          if (res.statusCode === 200 && body === BODY) resolve(res.socket.getProtocol?.() || '');
          else reject(new Error(`GET / answered ${res.statusCode} ${JSON.stringify(body.slice(0, 80))}`));
        });
      })
      .on('error', reject);
  });
}

async function measureKind(kind, certDir) {
  const result = { kind, keepalive: { runs: [] }, handshakes: {}, resumption: {} };
  const port = await P.freePort();
  P.log(`\n== ${kind}: https://127.0.0.1:${port}/` + (cfg.serverCpu !== '' ? ` (server on cpu ${cfg.serverCpu})` : ''));
  const child = kind === 'nginx' ? startNginx(port, certDir) : P.spawnNode([__filename, '--server', kind, String(port), certDir], { cpus: cfg.serverCpu });
  try {
    if (!child) throw new Error('nginx is not installed (apt-get install nginx-light)');
    if (kind !== 'nginx') await P.waitMessage(child, 'ready');
    await P.waitPort(port);
    result.pid = child.pid;
    result.protocol = await checkResponse(port);
    if (cfg.warmup > 0) {
      const { out } = await runClient('wrk', wrkArgs(port, cfg.warmup));
      raw.push(`### ${kind} warmup\n${out}`);
    }
    // 1. keep-alive
    for (let i = 0; i < cfg.repeat; i++) {
      const { r, m } = await measured(child.pid, () => runClient('wrk', wrkArgs(port, cfg.duration)));
      raw.push(`### ${kind} keep-alive run ${i + 1}\n${r.out}${r.err}`);
      const w = { ...parseWrk(r.out + r.err), ...m };
      w.reqPerCpuSecond = w.requests / w.serverCpuSeconds;
      result.keepalive.runs.push(w);
      P.log(
        `   keep-alive #${i + 1}: ${fmt(w.rps)} req/s, ${fmt(w.reqPerCpuSecond)} req/CPU-s, server CPU ${pct(w.serverCpuPercent)}, ` +
          `wrk CPU ${pct(w.clientCpuPercent)}` + (w.errors ? `, ${w.errors} ERRORS` : ''),
      );
    }
    result.keepalive.median = {
      rps: P.median(result.keepalive.runs.map((w) => w.rps)),
      reqPerCpuSecond: P.median(result.keepalive.runs.map((w) => w.reqPerCpuSecond)),
      serverCpuPercent: P.median(result.keepalive.runs.map((w) => w.serverCpuPercent)),
      clientCpuPercent: P.median(result.keepalive.runs.map((w) => w.clientCpuPercent)),
      otherLoadOnServerCorePercent: P.median(result.keepalive.runs.map((w) => w.otherLoadOnServerCorePercent)),
      otherLoadOnClientCorePercent: P.median(result.keepalive.runs.map((w) => w.otherLoadOnClientCorePercent)),
      p50_ms: P.median(result.keepalive.runs.map((w) => w.latency.p50_ms)),
      p99_ms: P.median(result.keepalive.runs.map((w) => w.latency.p99_ms)),
      errors: result.keepalive.runs.reduce((a, w) => a + w.errors, 0),
    };
    // The least disturbed run (other processes on a shared machine only ever slow a run down).
    const best = result.keepalive.runs.reduce((a, w) => (w.rps > a.rps ? w : a));
    result.keepalive.best = { rps: best.rps, reqPerCpuSecond: best.reqPerCpuSecond, serverCpuPercent: best.serverCpuPercent, clientCpuPercent: best.clientCpuPercent };
    // 2. full handshakes, 3. resumption
    for (const [mode, bucket, versions] of [
      ['new', result.handshakes, cfg.hsVersions],
      ['reuse', result.resumption, ['tls1_2', 'tls1_3']],
    ]) {
      for (const version of versions) {
        const s0 = await serverStats(child);
        const { r, m } = await measured(child.pid, async () => {
          const rs = await Promise.all(Array.from({ length: cfg.hsParallel }, () => runClient('openssl', sTimeArgs(port, mode, version))));
          return { out: rs.map((x) => x.out).join('\n'), err: rs.map((x) => x.err).join('\n'), cpu: rs.reduce((a, x) => a + x.cpu, 0), parts: rs };
        });
        const s1 = await serverStats(child);
        raw.push(`### ${kind} s_time -${mode} ${version} (x${cfg.hsParallel})\n${r.out}${r.err}`);
        const parts = r.parts.map((x) => parseSTime(x.out));
        const st = parts.reduce((a, p) => ({
          connections: a.connections + p.connections,
          clientUserSeconds: a.clientUserSeconds + p.clientUserSeconds,
          resumedMarks: a.resumedMarks + p.resumedMarks,
          newMarks: a.newMarks + p.newMarks,
        }));
        const h = {
          ...st,
          ...m,
          perSecond: st.connections / m.wall,
          perServerCpuSecond: st.connections / m.serverCpuSeconds,
          serverFullHandshakes: s1.tlsHandshakes - s0.tlsHandshakes,
          serverResumed: s1.tlsResumed - s0.tlsResumed,
        };
        bucket[version] = h;
        P.log(
          `   s_time -${mode} ${version}: ${st.connections} connections in ${m.wall.toFixed(1)}s = ${fmt(h.perSecond)}/s, ` +
            `${fmt(h.perServerCpuSecond)}/server CPU-s, server CPU ${pct(m.serverCpuPercent)}, client CPU ${pct(m.clientCpuPercent)}; ` +
            `server counted ${h.serverFullHandshakes} full + ${h.serverResumed} resumed; s_time marks ${st.newMarks} new, ${st.resumedMarks} resumed`,
        );
      }
    }
  } catch (err) {
    result.error = err.message;
    P.log(`   FAILED: ${kind}: ${err.message}`);
  } finally {
    await P.stop(child);
  }
  return result;
}

function markdown(doc) {
  const L = [];
  const c = doc.config;
  L.push(`## HTTPS: feersum-ts vs node:https (RSA-2048 certificate)`);
  L.push('');
  L.push(`${doc.host.cpu}, ${doc.host.cores} cores, node ${doc.host.node}, ${doc.host.openssl}, ${doc.host.wrk}`);
  L.push(`server: \`${doc.commands.server}\``);
  L.push(`keep-alive: \`${doc.commands.keepalive}\` (after ${c.warmup}s warm-up, median of ${c.repeat})`);
  for (const [k, v] of Object.entries(doc.commands.sTime)) L.push(`${k}: \`${v}\`` + (c.hsParallel > 1 ? ` (${c.hsParallel} at once)` : ''));
  L.push('');
  L.push('### Keep-alive hello world');
  L.push('');
  L.push('| server | req/s (median) | best run req/s (server / wrk CPU) | req/CPU-s | server CPU | wrk CPU | other load server / client core | p50 | p99 | errors |');
  L.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const k of c.kinds) {
    const m = doc.results[k]?.keepalive?.median;
    if (!m) {
      L.push(`| ${k} | failed: ${doc.results[k]?.error || 'not run'} | | | | | | | | |`);
      continue;
    }
    const ms = (x) => (Number.isFinite(x) ? `${x.toFixed(2)} ms` : 'n/a');
    const b = doc.results[k].keepalive.best;
    L.push(
      `| ${k} | ${fmt(m.rps)} | ${fmt(b.rps)} (${pct(b.serverCpuPercent)} / ${pct(b.clientCpuPercent)}) | ${fmt(m.reqPerCpuSecond)} | ${pct(m.serverCpuPercent)} | ${pct(m.clientCpuPercent)} | ` +
        `${pct(m.otherLoadOnServerCorePercent)} / ${pct(m.otherLoadOnClientCorePercent)} | ${ms(m.p50_ms)} | ${ms(m.p99_ms)} | ${m.errors} |`,
    );
  }
  L.push('');
  L.push('### Connections per second with `openssl s_time`');
  L.push('');
  const counted = (n) => (Number.isFinite(n) ? String(n) : 'n/a');
  L.push('| server | run | connections/s | per server CPU-s | server CPU | s_time CPU | server counted full / resumed | s_time new / resumed |');
  L.push('|---|---|---:|---:|---:|---:|---:|---:|');
  for (const k of c.kinds) {
    const r = doc.results[k];
    for (const [mode, bucket] of [['-new', r?.handshakes], ['-reuse', r?.resumption]]) {
      for (const [v, h] of Object.entries(bucket || {})) {
        L.push(
          `| ${k} | ${mode} ${v} | ${fmt(h.perSecond)} | ${fmt(h.perServerCpuSecond)} | ${pct(h.serverCpuPercent)} | ${pct(h.clientCpuPercent)} | ` +
            `${counted(h.serverFullHandshakes)} / ${counted(h.serverResumed)} | ${h.newMarks} / ${h.resumedMarks} |`,
        );
      }
    }
  }
  L.push('');
  L.push('### feersum-ts / node:https');
  L.push('');
  L.push('| measure | ratio | target |');
  L.push('|---|---:|---|');
  const R = doc.ratios;
  L.push(`| keep-alive req/s | ${fmtRatio(R.keepalive.rps)} | >= 1.8x: ${R.keepalive.rps >= 1.8 ? 'met' : 'NOT met'} |`);
  L.push(`| keep-alive req/s, best run of each | ${fmtRatio(R.keepalive.bestRps)} | |`);
  L.push(`| keep-alive req/CPU-s | ${fmtRatio(R.keepalive.reqPerCpuSecond)} | |`);
  if (Number.isFinite(R.keepalive.nginxRps)) {
    L.push(`| (reference) nginx / node:https keep-alive req/s | ${fmtRatio(R.keepalive.nginxRps)} | |`);
    L.push(`| (reference) nginx / node:https keep-alive req/CPU-s | ${fmtRatio(R.keepalive.nginxReqPerCpuSecond)} | |`);
  }
  for (const [v, x] of Object.entries(R.handshakes)) {
    L.push(`| full handshakes/s (${v}) | ${fmtRatio(x.perSecond)} | >= 0.9x: ${x.perSecond >= 0.9 ? 'met' : 'NOT met'} |`);
    L.push(`| full handshakes/server CPU-s (${v}) | ${fmtRatio(x.perServerCpuSecond)} | |`);
  }
  for (const [v, x] of Object.entries(R.resumption)) L.push(`| resumed connections/s (${v}) | ${fmtRatio(x.perSecond)} | |`);
  if (doc.errors.length) {
    L.push('');
    L.push('**Problems:**');
    for (const e of doc.errors) L.push(`- ${e}`);
  }
  return L.join('\n');
}

async function main() {
  P.checkBuild();
  for (const k of cfg.kinds) if (!['node', 'feersum', 'nginx'].includes(k)) P.fail(`unknown kind '${k}' in KINDS`);
  for (const tool of ['wrk', 'openssl']) {
    try {
      execFileSync('which', [tool], { stdio: 'ignore' });
    } catch {
      P.fail(`${tool} not found`);
    }
  }
  let wrkVersion = 'wrk';
  try {
    execFileSync('wrk', ['-v'], { stdio: 'pipe' });
  } catch (err) {
    const m = /^(wrk \S+)/.exec(String(err.stdout || ''));
    if (m) wrkVersion = m[1];
  }
  const opensslVersion = execFileSync('openssl', ['version']).toString().trim();
  const load = os.loadavg()[0];
  if (load > 0.5) P.log(`note: load average is ${load.toFixed(2)} before starting; figures may be noisy`);

  // A throwaway RSA-2048 certificate for localhost / 127.0.0.1.
  const certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'feersum-https-bench-'));
  process.on('exit', () => fs.rmSync(certDir, { recursive: true, force: true }));
  const certCmd = [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(certDir, 'key.pem'), '-out', path.join(certDir, 'cert.pem'),
    '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
  ];
  execFileSync('openssl', certCmd, { stdio: 'ignore' });

  const results = {};
  for (const kind of cfg.kinds) results[kind] = await measureKind(kind, certDir);

  const errors = [];
  for (const k of cfg.kinds) {
    const r = results[k];
    if (r.error) errors.push(`${k}: ${r.error}`);
    for (const [i, w] of (r.keepalive?.runs || []).entries()) {
      if (w.errors) errors.push(`${k} keep-alive run ${i + 1}: ${w.errors} errors (non-2xx ${w.non2xx}, socket ${JSON.stringify(w.socketErrors)})`);
    }
  }
  const g = (k, f) => f(results[k] || {});
  const ratios = {
    keepalive: {
      rps: ratio(g('feersum', (r) => r.keepalive?.median?.rps), g('node', (r) => r.keepalive?.median?.rps)),
      reqPerCpuSecond: ratio(
        g('feersum', (r) => r.keepalive?.median?.reqPerCpuSecond),
        g('node', (r) => r.keepalive?.median?.reqPerCpuSecond),
      ),
      bestRps: ratio(g('feersum', (r) => r.keepalive?.best?.rps), g('node', (r) => r.keepalive?.best?.rps)),
      // The reference: what nginx gets over node:https on the same machine.
      nginxRps: ratio(g('nginx', (r) => r.keepalive?.median?.rps), g('node', (r) => r.keepalive?.median?.rps)),
      nginxReqPerCpuSecond: ratio(
        g('nginx', (r) => r.keepalive?.median?.reqPerCpuSecond),
        g('node', (r) => r.keepalive?.median?.reqPerCpuSecond),
      ),
    },
    handshakes: {},
    resumption: {},
  };
  for (const [key, bucket] of [['handshakes', cfg.hsVersions], ['resumption', ['tls1_2', 'tls1_3']]]) {
    for (const v of bucket) {
      const f = (field) => ratio(g('feersum', (r) => r[key]?.[v]?.[field]), g('node', (r) => r[key]?.[v]?.[field]));
      ratios[key][v] = { perSecond: f('perSecond'), perServerCpuSecond: f('perServerCpuSecond') };
    }
  }
  const pin = cfg.serverCpu !== '' ? `taskset -c ${cfg.serverCpu} ` : '';
  const sTime = {};
  for (const v of cfg.hsVersions) sTime[`full handshakes (${v})`] = typed('openssl', sTimeArgs('<port>', 'new', v));
  for (const v of ['tls1_2', 'tls1_3']) sTime[`resumption (${v})`] = typed('openssl', sTimeArgs('<port>', 'reuse', v));
  const doc = {
    date: new Date().toISOString(),
    host: { cpu: P.cpuModel(), cores, kernel: os.release(), node: process.version, openssl: opensslVersion, wrk: wrkVersion, loadAverageAtStart: load },
    config: cfg,
    certificate: `openssl ${certCmd.map((x) => (x.startsWith(certDir) ? x.replace(certDir, '<tmp>') : x)).join(' ')}`,
    commands: {
      server: `${pin}node bench/https.js --server <node|feersum> <port> <cert dir>` + (cfg.kinds.includes('nginx') ? `; ${pin}nginx -c <conf> (one process)` : ''),
      keepalive: typed('wrk', wrkArgs('<port>', cfg.duration)),
      sTime,
    },
    results,
    ratios,
    errors,
  };
  fs.mkdirSync(path.dirname(OUT), { recursive: true });
  fs.writeFileSync(OUT, JSON.stringify(doc, null, 2) + '\n');
  fs.writeFileSync(RAW, raw.join('\n'));
  P.log(`\nresults: ${path.relative(process.cwd(), OUT)} (raw client output: ${path.relative(process.cwd(), RAW)})`);
  process.stdout.write(markdown(doc) + '\n');
  process.exitCode = errors.length ? 2 : 0;
}

if (process.argv[2] === '--server') {
  server(process.argv[3], Number(process.argv[4]), process.argv[5]);
} else {
  main().catch((err) => {
    process.stderr.write(`error: ${err.stack || err}\n`);
    process.exit(1);
  });
}
