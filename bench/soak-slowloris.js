// Soak test: a normal client's latency while 300 slowloris connections
// trickle header bytes at the server.
//
//   node bench/soak-slowloris.js              # 60 s idle + 60 s under slowloris
//   DURATION=10 node bench/soak-slowloris.js  # shorter
//
// Phases (each DURATION seconds):
//   1. idle: only the normal client;
//   2. slowloris: SLOWLORIS (300) connections, each sending one more byte of
//      an endless request head every INTERVAL (3) seconds (staggered), and
//      reconnecting whenever the server closes it (the header timeout's
//      408), so the server always has about 300 of them; plus the normal
//      client.
// The normal client sends GET / on one keep-alive connection, back to back
// with a PAUSE_MS (5) pause, and every NEW_CONN_EVERY-th (10th) request on a
// fresh connection instead (so the accept path is measured too). Reported:
// p50/p99/max of both kinds per phase, and the ratio of the p99s (target:
// under slowloris within 2x of idle). The server runs with its default
// options (HEADER_TIMEOUT overrides headerTimeout) in a child process on
// SERVER_CPU (0), the slowloris in another on CLIENT_CPUS (1), the normal
// client in this process (also on CLIENT_CPUS when set).
//
// Loads dist/ (`npm run build` first). Exit status 0 when the target holds,
// 3 when it does not, 1 on errors.
'use strict';
const net = require('node:net');
const path = require('node:path');

const proc = require('./proc');

const MODE = process.argv[2];

// ------------------------------------------------------------------ server mode

if (MODE === '--server') {
  const { Feersum } = require('..');
  const opts = {};
  if (process.env.HEADER_TIMEOUT) opts.headerTimeout = Number(process.env.HEADER_TIMEOUT);
  const engine = new Feersum(opts);
  engine.onError(() => {});
  const headers = ['Content-Type', 'text/plain'];
  engine.requestHandler((req) => req.sendResponse(200, headers, 'Hello, World!\n'));
  engine.listen({ host: '127.0.0.1', port: Number(process.argv[3]) }).then(() => {
    process.send('ready');
    process.on('disconnect', () => process.exit(0));
    process.on('message', (m) => {
      if (m && m.cmd === 'stats') process.send({ cmd: 'stats', stats: engine.stats(), options: engine.options });
    });
  });
  return;
}

// ------------------------------------------------------------------ slowloris mode

if (MODE === '--slowloris') {
  const port = Number(process.argv[3]);
  const count = Number(process.argv[4]);
  const intervalMs = Number(process.argv[5]);
  const counters = { opened: 0, closedByServer: 0, got408: 0, gotOther: 0, bytesSent: 0, errors: 0 };
  const open = new Set();
  let stopping = false;

  function connect(delay) {
    const sock = net.connect(port, '127.0.0.1');
    sock.setNoDelay(true);
    let i = 0;
    let timer;
    let got = '';
    const head = 'GET /slow HTTP/1.1\r\nHost: x\r\n';
    sock.on('connect', () => {
      counters.opened++;
      open.add(sock);
      // First bytes at once, then one byte per interval, staggered.
      sock.write(head);
      counters.bytesSent += head.length;
      const tick = () => {
        if (sock.destroyed) return;
        // An endless header: X-a: b, one byte at a time.
        const s = 'X-a: b\r\n'[i++ % 8];
        sock.write(s);
        counters.bytesSent++;
        timer = setTimeout(tick, intervalMs);
      };
      timer = setTimeout(tick, delay);
    });
    sock.on('data', (d) => (got += d.toString('latin1')));
    sock.on('error', () => counters.errors++);
    sock.on('close', () => {
      clearTimeout(timer);
      open.delete(sock);
      if (stopping) return;
      counters.closedByServer++;
      if (got.startsWith('HTTP/1.1 408')) counters.got408++;
      else if (got) counters.gotOther++;
      setImmediate(() => connect(Math.random() * intervalMs));
    });
  }

  let started = 0;
  const ramp = setInterval(() => {
    for (let k = 0; k < 25 && started < count; k++, started++) connect(Math.random() * intervalMs);
    if (started >= count) {
      clearInterval(ramp);
      process.send({ cmd: 'started' });
    }
  }, 20);
  process.on('message', (m) => {
    if (m && m.cmd === 'counters') process.send({ cmd: 'counters', counters, open: open.size });
    if (m && m.cmd === 'stop') {
      stopping = true;
      for (const s of open) s.destroy();
      process.send({ cmd: 'stopped', counters });
      setTimeout(() => process.exit(0), 50);
    }
  });
  process.on('disconnect', () => process.exit(0));
  return;
}

// ------------------------------------------------------------------ driver

const DURATION = Number(process.env.DURATION || 60);
const SLOWLORIS = Number(process.env.SLOWLORIS || 300);
const INTERVAL = Number(process.env.INTERVAL || 3);
const PAUSE_MS = Number(process.env.PAUSE_MS ?? 5);
const NEW_CONN_EVERY = Number(process.env.NEW_CONN_EVERY || 10);
const TWO_CORES = proc.coreCount() >= 2;
const SERVER_CPU = process.env.SERVER_CPU ?? (TWO_CORES ? '0' : '');
const CLIENT_CPUS = process.env.CLIENT_CPUS ?? (TWO_CORES ? '1' : '');

function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function summary(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return { n: s.length, p50: percentile(s, 50), p99: percentile(s, 99), max: s[s.length - 1] };
}

/** One GET on `sock`, resolving with the latency in ms once the whole response is in. */
function request(sock) {
  return new Promise((resolve, reject) => {
    let buf = '';
    const t0 = process.hrtime.bigint();
    const onData = (d) => {
      buf += d.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const m = /content-length: (\d+)/i.exec(buf.slice(0, end));
      if (!m || buf.length < end + 4 + Number(m[1])) return;
      cleanup();
      if (!buf.startsWith('HTTP/1.1 200')) return reject(new Error(`unexpected response: ${buf.slice(0, 40)}`));
      resolve(Number(process.hrtime.bigint() - t0) / 1e6);
    };
    const onClose = () => {
      cleanup();
      reject(new Error('connection closed'));
    };
    function cleanup() {
      sock.off('data', onData);
      sock.off('close', onClose);
    }
    sock.on('data', onData);
    sock.on('close', onClose);
    sock.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  });
}

function connect(port) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    s.setNoDelay(true);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** The normal client for `seconds`: latencies of keep-alive and new-connection requests. */
async function normalClient(port, seconds) {
  const keepalive = [];
  const fresh = [];
  let errors = 0;
  let ka = await connect(port);
  const end = Date.now() + seconds * 1000;
  for (let i = 1; Date.now() < end; i++) {
    try {
      if (i % NEW_CONN_EVERY === 0) {
        const t0 = process.hrtime.bigint();
        const s = await connect(port);
        await request(s);
        fresh.push(Number(process.hrtime.bigint() - t0) / 1e6); // connect + request
        s.destroy();
      } else {
        if (ka.destroyed) ka = await connect(port);
        keepalive.push(await request(ka));
      }
    } catch (err) {
      errors++;
      if (ka.destroyed || err.message === 'connection closed') ka = await connect(port).catch(() => ka);
    }
    if (PAUSE_MS) await new Promise((r) => setTimeout(r, PAUSE_MS));
  }
  ka.destroy();
  return { keepalive: summary(keepalive), fresh: summary(fresh), errors };
}

function ask(child, cmd) {
  child.send({ cmd });
  return proc.waitMessage(child, (m) => m && m.cmd === cmd);
}

const fmt = (x) => (Number.isFinite(x) ? x.toFixed(2) : '-');

async function main() {
  proc.checkBuild();
  const port = await proc.freePort();
  const self = path.join(__dirname, 'soak-slowloris.js');
  const server = proc.spawnNode([self, '--server', String(port)], { cpus: SERVER_CPU, nofile: 4096 });
  await proc.waitMessage(server, 'ready');
  await proc.waitPort(port);
  const { options } = await ask(server, 'stats');
  proc.log(`server pid ${server.pid} on port ${port}, headerTimeout ${options.headerTimeout} s; ${DURATION} s per phase`);

  // Warm-up.
  await normalClient(port, Math.min(2, DURATION));

  proc.log('phase 1: idle');
  const cpu0 = proc.cpuSeconds(server.pid);
  const idle = await normalClient(port, DURATION);
  const cpuIdle = proc.cpuSeconds(server.pid) - cpu0;
  const rssIdle = proc.rssKiB(server.pid);

  proc.log(`phase 2: ${SLOWLORIS} slowloris connections, a byte every ${INTERVAL} s`);
  const loris = proc.spawnNode([self, '--slowloris', String(port), String(SLOWLORIS), String(INTERVAL * 1000)], {
    cpus: CLIENT_CPUS,
    nofile: 4096,
  });
  await proc.waitMessage(loris, 'started');
  await new Promise((r) => setTimeout(r, 1000));
  const atStart = await ask(loris, 'counters');
  const serverAtStart = (await ask(server, 'stats')).stats;
  const cpu1 = proc.cpuSeconds(server.pid);
  let maxRss = 0;
  const rssTimer = setInterval(() => (maxRss = Math.max(maxRss, proc.rssKiB(server.pid))), 500);
  const loaded = await normalClient(port, DURATION);
  clearInterval(rssTimer);
  const cpuLoaded = proc.cpuSeconds(server.pid) - cpu1;
  const atEnd = await ask(loris, 'counters');
  const serverAtEnd = (await ask(server, 'stats')).stats;
  loris.send({ cmd: 'stop' });
  await proc.waitMessage(loris, (m) => m && m.cmd === 'stopped', 5000).catch(() => {});
  await proc.stop(loris);
  await proc.stop(server);

  const ratioKa = loaded.keepalive.p99 / idle.keepalive.p99;
  const ratioFresh = loaded.fresh.p99 / idle.fresh.p99;
  const out = {
    date: new Date().toISOString(),
    node: process.version,
    cpu: proc.cpuModel(),
    cores: proc.coreCount(),
    settings: { DURATION, SLOWLORIS, INTERVAL, PAUSE_MS, NEW_CONN_EVERY, SERVER_CPU, CLIENT_CPUS, headerTimeout: options.headerTimeout },
    idle: { ...idle, serverCpuPercent: (100 * cpuIdle) / DURATION, rssMiB: rssIdle / 1024 },
    slowloris: {
      ...loaded,
      serverCpuPercent: (100 * cpuLoaded) / DURATION,
      maxRssMiB: maxRss / 1024,
      openAtStart: atStart.open,
      openAtEnd: atEnd.open,
      serverConnectionsAtStart: serverAtStart.connections,
      serverConnectionsAtEnd: serverAtEnd.connections,
      counters: atEnd.counters,
    },
    p99Ratio: { keepalive: ratioKa, newConnection: ratioFresh },
  };
  console.log(JSON.stringify(out, null, 2));
  console.log('');
  console.log('| phase | keep-alive p50 / p99 / max (ms) | new connection p50 / p99 / max (ms) | requests | errors | server CPU |');
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const [name, r, cpu] of [
    ['idle', idle, out.idle.serverCpuPercent],
    [`${SLOWLORIS} slowloris`, loaded, out.slowloris.serverCpuPercent],
  ]) {
    console.log(
      `| ${name} | ${fmt(r.keepalive.p50)} / ${fmt(r.keepalive.p99)} / ${fmt(r.keepalive.max)} | ` +
        `${fmt(r.fresh.p50)} / ${fmt(r.fresh.p99)} / ${fmt(r.fresh.max)} | ${r.keepalive.n + r.fresh.n} | ${r.errors} | ${cpu.toFixed(1)}% |`,
    );
  }
  console.log('');
  console.log(
    `p99 under slowloris / idle: keep-alive ${ratioKa.toFixed(2)}x, new connection ${ratioFresh.toFixed(2)}x (target < 2x); ` +
      `slowloris open ${atStart.open} → ${atEnd.open}, server saw ${serverAtEnd.connections} connections, ` +
      `${atEnd.counters.got408} closed with 408, ${atEnd.counters.closedByServer} closed in all, ${atEnd.counters.opened} opened`,
  );
  const okTarget = ratioKa < 2 && ratioFresh < 2 && idle.errors === 0 && loaded.errors === 0;
  process.exit(okTarget ? 0 : 3);
}

main().catch((err) => {
  proc.log(`error: ${err.stack || err}`);
  process.exit(1);
});
