// Server memory per idle keep-alive connection: RSS growth with CONNS open
// connections that have each completed one request, for each server kind.
// Usage: node bench/idle-memory.js [kind...]   (IDLE=1 bash bench/run.sh)
// See bench/README.md.
//
// Environment (defaults in brackets):
//   CONNS [10000]        idle connections to open
//   CLIENTS [4]          client processes they are spread over
//   KINDS [node native psgi]   (or kinds as arguments)
//   SERVER_CPU [0]       taskset list for the server ('' = no pinning)
//   CLIENT_CPUS [1]      taskset list for the clients ('' = no pinning)
//   IDLE_OUT [bench/results/<date>-idle-memory.json]
//
// Both the server and the clients raise their soft fd limit with
// `ulimit -n 65536` (falling back to the hard limit) in a bash wrapper.
// Every server runs with BENCH_KEEPALIVE=600 (see servers.js) so that no
// engine closes idle connections during the measurement: node:http's default
// keepAliveTimeout is 5 s, feersum's keepaliveTimeout 75 s.
'use strict';
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const REQUEST = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n';
const NOFILE = 65536;
const KEEPALIVE = 600;

// ---------------------------------------------------------------- client ---
// `node idle-memory.js --client`: opens connections on command and holds them.

function clientMain() {
  const sockets = new Set();
  let closedAfterResponse = 0;

  function openOne(port) {
    return new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.1' });
      let buf = '';
      let done = false;
      const finish = (err) => {
        if (done) return;
        done = true;
        if (err) {
          s.destroy();
          resolve(err);
        } else {
          sockets.add(s);
          resolve(null);
        }
      };
      s.setEncoding('latin1');
      s.once('connect', () => s.write(REQUEST));
      s.on('data', (d) => {
        if (done) return;
        buf += d;
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const status = /^HTTP\/1\.1 (\d{3})/.exec(buf);
        if (!status || status[1] !== '200') return finish(`status ${status ? status[1] : JSON.stringify(buf.slice(0, 40))}`);
        const cl = /\r\ncontent-length:\s*(\d+)/i.exec(buf.slice(0, end + 2));
        if (!cl) return finish('no content-length');
        if (buf.length - (end + 4) >= Number(cl[1])) finish(null);
      });
      s.on('error', (e) => finish(e.code || e.message));
      s.on('close', () => {
        if (!done) finish('closed before the response');
        else if (sockets.delete(s)) closedAfterResponse++;
      });
    });
  }

  async function openMany(port, count, concurrency) {
    const errors = {};
    let ok = 0;
    let next = 0;
    async function worker() {
      while (next < count) {
        next++;
        const err = await openOne(port);
        if (err) errors[err] = (errors[err] || 0) + 1;
        else ok++;
      }
    }
    await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
    return { ok, failed: count - ok, errors };
  }

  process.on('disconnect', () => process.exit(0));
  process.on('message', async (msg) => {
    if (msg.cmd === 'open') {
      const t0 = Date.now();
      const r = await openMany(msg.port, msg.count, msg.concurrency);
      process.send({ cmd: 'opened', ...r, ms: Date.now() - t0 });
    } else if (msg.cmd === 'status') {
      process.send({ cmd: 'status', open: sockets.size, closedAfterResponse });
    }
  });
  process.send('ready');
}

// ------------------------------------------------------------------ main ---

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function fdLimit(pid) {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(fs.readFileSync(`/proc/${pid}/limits`, 'utf8'));
  return m ? (m[1] === 'unlimited' ? Infinity : Number(m[1])) : 0;
}

function fdCount(pid) {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

/** Median VmRSS (KiB) over `n` samples `gapMs` apart. */
async function sampleRss(P, pid, n = 5, gapMs = 400) {
  const xs = [];
  for (let i = 0; i < n; i++) {
    if (i) await sleep(gapMs);
    xs.push(P.rssKiB(pid));
  }
  return { median: P.median(xs), samples: xs };
}

async function gc(P, server) {
  server.send({ cmd: 'gc' });
  const r = await P.waitMessage(server, 'gc', 10000);
  return r.ok;
}

async function memoryUsage(P, server) {
  server.send({ cmd: 'mem' });
  return (await P.waitMessage(server, 'mem', 10000)).memoryUsage;
}

/** 10 keep-alive connections, 2000 requests: JIT and pools warm. */
async function warmup(port) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 10 });
  const one = () =>
    new Promise((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
        })
        .on('error', reject);
    });
  await Promise.all(
    Array.from({ length: 10 }, async () => {
      for (let i = 0; i < 200; i++) await one();
    }),
  );
  agent.destroy();
}

async function measureKind(P, kind, cfg) {
  const out = { kind };
  const port = await P.freePort();
  P.log(`\n== ${kind}: server on 127.0.0.1:${port}`);
  const server = await P.startServer(kind, port, {
    cpus: cfg.serverCpu,
    nofile: NOFILE,
    nodeArgs: ['--expose-gc'],
    env: { BENCH_KEEPALIVE: String(KEEPALIVE) },
  });
  const clients = [];
  try {
    const limit = fdLimit(server.pid);
    if (limit < cfg.conns + 100) {
      throw new Error(`server fd limit is ${limit}, need ${cfg.conns + 100}: raise the hard limit (ulimit -Hn) or lower CONNS`);
    }
    await warmup(port);
    await sleep(500);
    out.gc = await gc(P, server);
    await sleep(1000);
    const before = await sampleRss(P, server.pid);
    const memBefore = await memoryUsage(P, server);
    const fdsBefore = fdCount(server.pid);
    P.log(`   after warmup: RSS ${before.median} KiB, ${fdsBefore} fds`);

    const per = Math.ceil(cfg.conns / cfg.clients);
    const concurrency = Math.max(8, Math.floor(256 / cfg.clients));
    for (let i = 0; i < cfg.clients; i++) {
      const c = P.spawnNode([__filename, '--client'], { cpus: cfg.clientCpus, nofile: NOFILE });
      clients.push(c);
      await P.waitMessage(c, 'ready');
      if (fdLimit(c.pid) < per + 100) throw new Error(`client fd limit is ${fdLimit(c.pid)}, need ${per + 100}`);
    }
    const t0 = Date.now();
    const opened = await Promise.all(
      clients.map((c, i) => {
        const count = Math.min(per, cfg.conns - i * per);
        c.send({ cmd: 'open', port, count, concurrency });
        return P.waitMessage(c, 'opened', 300000);
      }),
    );
    const ok = opened.reduce((a, r) => a + r.ok, 0);
    const errors = {};
    for (const r of opened) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] || 0) + v;
    out.openMs = Date.now() - t0;
    out.connectionsOk = ok;
    out.connectionsFailed = cfg.conns - ok;
    out.connectErrors = errors;
    P.log(`   opened ${ok}/${cfg.conns} connections in ${out.openMs} ms` + (ok < cfg.conns ? `; errors ${JSON.stringify(errors)}` : ''));

    out.gcAfter = await gc(P, server);
    await sleep(2000);
    const after = await sampleRss(P, server.pid);
    const memAfter = await memoryUsage(P, server);
    const fdsAfter = fdCount(server.pid);

    const statuses = await Promise.all(
      clients.map((c) => {
        c.send({ cmd: 'status' });
        return P.waitMessage(c, 'status', 10000);
      }),
    );
    out.stillOpen = statuses.reduce((a, s) => a + s.open, 0);
    out.closedByServer = statuses.reduce((a, s) => a + s.closedAfterResponse, 0);
    out.serverFds = { before: fdsBefore, after: fdsAfter };
    out.rssKiB = { before: before.median, after: after.median, beforeSamples: before.samples, afterSamples: after.samples };
    out.memoryUsage = { before: memBefore, after: memAfter };
    const n = out.stillOpen || 1;
    out.perConnectionKiB = (after.median - before.median) / n;
    out.heapPerConnectionKiB = (memAfter.heapUsed - memBefore.heapUsed) / 1024 / n;
    out.heapTotalPerConnectionKiB = (memAfter.heapTotal - memBefore.heapTotal) / 1024 / n;
    out.externalPerConnectionKiB = (memAfter.external - memBefore.external) / 1024 / n;
    P.log(
      `   with ${out.stillOpen} idle connections: RSS ${after.median} KiB, ${fdsAfter} fds; ` +
        `${out.perConnectionKiB.toFixed(2)} KiB/connection (JS heap ${out.heapPerConnectionKiB.toFixed(2)})`,
    );
    if (out.stillOpen !== cfg.conns) {
      out.problem = `${cfg.conns - out.stillOpen} of ${cfg.conns} connections not open at the end (${out.closedByServer} closed after their response, ${out.connectionsFailed} failed)`;
      P.log(`   WARNING: ${out.problem}`);
    }
  } catch (err) {
    out.error = err.message;
    P.log(`   FAILED: ${kind}: ${err.message}`);
  } finally {
    // The server goes first so the TIME_WAITs land on its side, not on the
    // clients' ephemeral ports.
    await P.stop(server);
    await Promise.all(clients.map((c) => P.stop(c)));
  }
  return out;
}

function markdown(doc) {
  const L = [];
  const c = doc.config;
  L.push(`## Idle keep-alive connections: ${c.conns} connections, each after one request`);
  L.push('');
  L.push(`${doc.host.cpu}, ${doc.host.cores} cores, node ${doc.host.node}; servers with --expose-gc, GC forced before each sample, keep-alive timeout ${KEEPALIVE} s for every kind`);
  L.push('');
  L.push('| server | RSS before | RSS with connections | RSS KiB per connection | JS heap used, KiB/conn | JS heap size, KiB/conn | server fds | open at end |');
  L.push('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const k of c.kinds) {
    const r = doc.results[k];
    if (r.error) {
      L.push(`| ${k} | failed: ${r.error} | | | | | | |`);
      continue;
    }
    const mib = (x) => `${(x / 1024).toFixed(1)} MiB`;
    L.push(
      `| ${k} | ${mib(r.rssKiB.before)} | ${mib(r.rssKiB.after)} | ${r.perConnectionKiB.toFixed(2)} | ` +
        `${r.heapPerConnectionKiB.toFixed(2)} | ${r.heapTotalPerConnectionKiB.toFixed(2)} | ${r.serverFds.after} | ${r.stillOpen}/${c.conns} |`,
    );
  }
  const problems = c.kinds.map((k) => doc.results[k]).filter((r) => r.error || r.problem);
  if (problems.length) {
    L.push('');
    L.push('**Problems:**');
    for (const r of problems) L.push(`- ${r.kind}: ${r.error || r.problem}`);
  }
  return L.join('\n');
}

async function main() {
  const P = require('./proc');
  P.checkBuild();
  const cores = P.coreCount();
  const env = process.env;
  const args = process.argv.slice(2);
  const cfg = {
    conns: Number(env.CONNS || 10000),
    clients: Math.max(1, Number(env.CLIENTS || 4)),
    kinds: args.length ? args : (env.KINDS || 'node native psgi').split(/[\s,]+/).filter(Boolean),
    serverCpu: env.SERVER_CPU ?? (cores >= 2 ? '0' : ''),
    clientCpus: env.CLIENT_CPUS ?? (cores >= 2 ? '1' : ''),
  };
  for (const k of cfg.kinds) if (!['node', 'native', 'psgi'].includes(k)) P.fail(`unknown kind '${k}'`);
  const range = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  if (range[1] - range[0] + 1 < cfg.conns + 1000) {
    P.log(`warning: only ${range[1] - range[0] + 1} ephemeral ports (${range.join('-')}) for ${cfg.conns} connections`);
  }
  const results = {};
  for (const kind of cfg.kinds) results[kind] = await measureKind(P, kind, cfg);
  const doc = {
    date: new Date().toISOString(),
    host: { cpu: P.cpuModel(), cores, kernel: os.release(), node: process.version, loadAverageAtStart: os.loadavg()[0] },
    config: { ...cfg, keepaliveTimeoutSeconds: KEEPALIVE, nofile: NOFILE },
    results,
  };
  const OUT = env.IDLE_OUT || path.join(__dirname, 'results', `${P.today()}-idle-memory.json`);
  fs.mkdirSync(path.dirname(OUT), { recursive: true });
  fs.writeFileSync(OUT, JSON.stringify(doc, null, 2) + '\n');
  P.log(`\nwrote ${path.relative(process.cwd(), OUT)}\n`);
  process.stdout.write(markdown(doc) + '\n');
  const bad = cfg.kinds.some((k) => results[k].error || results[k].problem);
  process.exitCode = bad ? 2 : 0;
}

if (process.argv[2] === '--client') {
  clientMain();
} else {
  main().catch((err) => {
    process.stderr.write((err.stack || String(err)) + '\n');
    process.exit(1);
  });
}
