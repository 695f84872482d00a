// Soak test: one client reads a huge streamed response slowly; the server's
// memory must stay flat (the app streams with pollCb, so it only produces
// what the socket takes).
//
//   node bench/soak-slow-reader.js                      # 1 GiB at 1 MB/s (~18 min)
//   SIZE=64M RATE=4M node bench/soak-slow-reader.js     # 16 s
//
// The server (a child process on SERVER_CPU, default 0) answers GET /stream
// with `Content-Length: SIZE` and writes CHUNK (64 KiB) buffers from a
// pollCb callback, i.e. only when everything written so far has reached the
// socket. The client (this process) reads at RATE bytes per second (a token
// bucket; the socket is paused between bursts, so the kernel buffers fill and
// the server sees backpressure), checks every byte arrived, and samples the
// server's VmRSS (/proc/<pid>/status) every second. Reported: RSS baseline
// (after a warm-up request, before the stream), peak and final RSS during the
// stream, the peak growth (target: under 64 MiB), and the server's CPU time.
//
// Sizes accept k/M/G suffixes (powers of 1024; "1MB" style also works, as
// 10^n: 1MB = 1,000,000). Defaults: SIZE 1G, RATE 1MB (1,000,000 B/s),
// CHUNK 64k, writeTimeout WRITE_TIMEOUT (60 s, the default).
//
// Loads dist/ (`npm run build` first). Exit status 0 when the target holds,
// 3 when it does not, 1 on errors.
'use strict';
const net = require('node:net');
const path = require('node:path');

const proc = require('./proc');

function size(text, dflt) {
  if (text === undefined || text === '') return dflt;
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]?)(i?b?)$/i.exec(String(text).trim());
  if (!m) throw new Error(`bad size '${text}'`);
  const unit = m[2].toLowerCase();
  const decimal = /^b$/i.test(m[3]); // "MB": powers of 1000
  const base = decimal ? 1000 : 1024;
  const exp = unit === 'k' ? 1 : unit === 'm' ? 2 : unit === 'g' ? 3 : 0;
  return Math.round(Number(m[1]) * base ** exp);
}

// ------------------------------------------------------------------ server mode

if (process.argv[2] === '--server') {
  const { Feersum } = require('..');
  const total = Number(process.argv[4]);
  const chunkSize = Number(process.argv[5]);
  const opts = {};
  if (process.env.WRITE_TIMEOUT) opts.writeTimeout = Number(process.env.WRITE_TIMEOUT);
  const engine = new Feersum(opts);
  let errors = 0;
  let completed = 0;
  let aborted = 0;
  engine.onError((err) => {
    errors++;
    process.stderr.write(`server error: ${err && err.stack}\n`);
  });
  engine.requestHandler((req) => {
    if (req.uri !== '/stream') return req.sendResponse(200, ['Content-Type', 'text/plain'], 'warm\n');
    const w = req.startStreaming(200, ['Content-Type', 'application/octet-stream', 'Content-Length', String(total)]);
    // A new buffer per chunk, as a real app producing data would have.
    let sent = 0;
    req.responseGuard(() => {
      if (sent >= total) completed++;
      else aborted++;
    });
    w.pollCb((writer) => {
      if (sent >= total) return writer.close();
      const n = Math.min(chunkSize, total - sent);
      const chunk = Buffer.allocUnsafe(n);
      chunk.fill(sent & 0xff);
      writer.write(chunk);
      sent += n;
    });
  });
  engine.listen({ host: '127.0.0.1', port: Number(process.argv[3]) }).then(() => {
    process.send('ready');
    process.on('disconnect', () => process.exit(0));
    process.on('message', (m) => {
      if (m && m.cmd === 'stats') {
        process.send({ cmd: 'stats', stats: engine.stats(), errors, completed, aborted, memoryUsage: process.memoryUsage() });
      } else if (m && m.cmd === 'gc') {
        if (global.gc) global.gc();
        process.send({ cmd: 'gc' });
      }
    });
  });
  return;
}

// ------------------------------------------------------------------ driver

const SIZE = size(process.env.SIZE, 1024 ** 3);
const RATE = size(process.env.RATE, 1000 * 1000);
const CHUNK = size(process.env.CHUNK, 64 * 1024);
const LIMIT_MIB = Number(process.env.LIMIT_MIB || 64);
const SERVER_CPU = process.env.SERVER_CPU ?? (proc.coreCount() >= 2 ? '0' : '');

function ask(child, cmd) {
  child.send({ cmd });
  return proc.waitMessage(child, (m) => m && m.cmd === cmd);
}

/** GET `uri` and read the response at `rate` bytes/s; resolves with the body length and head. */
function slowGet(port, uri, rate, onProgress) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let head = '';
    let headDone = false;
    let body = 0;
    let expected = -1;
    let received = 0;
    const t0 = Date.now();
    let resumeTimer;
    sock.on('connect', () => sock.write(`GET ${uri} HTTP/1.1\r\nHost: x\r\n\r\n`));
    sock.on('data', (d) => {
      received += d.length;
      if (!headDone) {
        head += d.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        headDone = true;
        const m = /content-length: (\d+)/i.exec(head.slice(0, end));
        expected = m ? Number(m[1]) : -1;
        body = head.length - end - 4;
        head = head.slice(0, end);
      } else {
        body += d.length;
      }
      if (onProgress) onProgress(body);
      if (expected >= 0 && body >= expected) {
        clearTimeout(resumeTimer);
        sock.destroy();
        resolve({ head, body, seconds: (Date.now() - t0) / 1000 });
        return;
      }
      // Token bucket: ahead of the allowed rate -> pause until we are not.
      if (rate > 0) {
        const allowedAt = t0 + (received / rate) * 1000;
        const wait = allowedAt - Date.now();
        if (wait > 5) {
          sock.pause();
          clearTimeout(resumeTimer);
          resumeTimer = setTimeout(() => sock.resume(), wait);
        }
      }
    });
    sock.on('error', reject);
    sock.on('close', () => {
      clearTimeout(resumeTimer);
      if (expected < 0 || body < expected) reject(new Error(`connection closed after ${body} of ${expected} body bytes`));
    });
  });
}

const MiB = (kib) => (kib / 1024).toFixed(1);

async function main() {
  proc.checkBuild();
  const port = await proc.freePort();
  const self = path.join(__dirname, 'soak-slow-reader.js');
  const server = proc.spawnNode(['--expose-gc', self, '--server', String(port), String(SIZE), String(CHUNK)], {
    cpus: SERVER_CPU,
  });
  await proc.waitMessage(server, 'ready');
  await proc.waitPort(port);
  proc.log(`server pid ${server.pid}; ${SIZE} bytes at ${RATE} B/s (~${Math.round(SIZE / RATE)} s), ${CHUNK}-byte chunks`);

  // Warm-up, then the baseline: median of 5 samples after a GC.
  await slowGet(port, '/warm', 0);
  await ask(server, 'gc');
  await new Promise((r) => setTimeout(r, 500));
  const base = [];
  for (let i = 0; i < 5; i++) {
    base.push(proc.rssKiB(server.pid));
    await new Promise((r) => setTimeout(r, 200));
  }
  const baseline = proc.median(base);
  const cpu0 = proc.cpuSeconds(server.pid);

  const samples = [];
  let lastBody = 0;
  const sampler = setInterval(() => {
    const rss = proc.rssKiB(server.pid);
    samples.push({ t: samples.length + 1, rssKiB: rss, bodyBytes: lastBody });
    if (samples.length % 30 === 0) {
      proc.log(`  ${samples.length} s: ${(lastBody / 1024 ** 2).toFixed(0)} MiB read, server RSS ${MiB(rss)} MiB (baseline ${MiB(baseline)})`);
    }
  }, 1000);
  let result;
  let failure;
  try {
    result = await slowGet(port, '/stream', RATE, (b) => (lastBody = b));
  } catch (err) {
    failure = err;
  }
  clearInterval(sampler);
  const cpu = proc.cpuSeconds(server.pid) - cpu0;
  const finalRss = proc.rssKiB(server.pid);
  const stats = await ask(server, 'stats');
  await proc.stop(server);

  const peak = Math.max(baseline, ...samples.map((s) => s.rssKiB));
  const growthMiB = (peak - baseline) / 1024;
  const out = {
    date: new Date().toISOString(),
    node: process.version,
    cpu: proc.cpuModel(),
    settings: { SIZE, RATE, CHUNK, SERVER_CPU, LIMIT_MIB },
    bytesRead: result ? result.body : lastBody,
    seconds: result ? result.seconds : null,
    readRate: result ? result.body / result.seconds : null,
    rss: { baselineMiB: baseline / 1024, peakMiB: peak / 1024, finalMiB: finalRss / 1024, peakGrowthMiB: growthMiB },
    serverCpuSeconds: cpu,
    server: { errors: stats.errors, completed: stats.completed, aborted: stats.aborted, heapUsedMiB: stats.memoryUsage.heapUsed / 1024 ** 2, externalMiB: stats.memoryUsage.external / 1024 ** 2 },
    failure: failure ? String(failure.message) : null,
    samples: samples.filter((_, i) => i % Math.max(1, Math.ceil(samples.length / 120)) === 0),
  };
  console.log(JSON.stringify(out, null, 2));
  console.log('');
  console.log('| bytes read | time | read rate | server RSS baseline | peak | final | peak growth | server CPU |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|');
  console.log(
    `| ${out.bytesRead.toLocaleString('en')} | ${out.seconds ? out.seconds.toFixed(1) + ' s' : '-'} | ` +
      `${out.readRate ? (out.readRate / 1e6).toFixed(2) + ' MB/s' : '-'} | ${MiB(baseline)} MiB | ${MiB(peak)} MiB | ` +
      `${MiB(finalRss)} MiB | ${growthMiB.toFixed(1)} MiB | ${cpu.toFixed(2)} s |`,
  );
  const ok = !failure && out.bytesRead === SIZE && growthMiB < LIMIT_MIB && stats.errors === 0;
  console.log(`\n${ok ? 'OK' : 'FAILED'}: peak RSS growth ${growthMiB.toFixed(1)} MiB (target < ${LIMIT_MIB} MiB)${failure ? `; ${failure.message}` : ''}`);
  process.exit(ok ? 0 : 3);
}

main().catch((err) => {
  proc.log(`error: ${err.stack || err}`);
  process.exit(1);
});
