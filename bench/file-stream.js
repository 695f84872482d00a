// Large-file downloads: is fs.createReadStream through the PSGI interface
// worth replacing with sendfile(2)? Measures server CPU per GiB served for
// feersum-ts (PSGI body = fs.createReadStream), node:http (stream.pipe) and,
// as the reference for what sendfile buys, nginx with `sendfile on` / `off`.
//
//   node bench/file-stream.js
//   SIZE=1G REPEAT=3 node bench/file-stream.js
//
// Environment (defaults in brackets):
//   SIZE [256M]        file size (k/M/G suffixes, powers of 1024)
//   REPEAT [5]         downloads per server, one after another, each on a new connection
//   KINDS ["node psgi nginx-sendfile nginx-copy"]  (nginx kinds are skipped when nginx is not installed:
//                      apt-get install nginx-light)
//   SERVER_CPU [0]  CLIENT_CPUS [1]   taskset lists ('' = no pinning)
//
// The client is curl writing to /dev/null. Reported per server: GiB/s over
// all downloads (wall time) and server CPU-seconds per GiB (utime+stime of
// the server process from /proc).
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

// ------------------------------------------------------------------ servers

function server(kind, port, file) {
  const size = fs.statSync(file).size;
  const ready = () => {
    process.send('ready');
    process.on('disconnect', () => process.exit(0));
  };
  if (kind === 'node') {
    require('node:http')
      .createServer((req, res) => {
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': size });
        fs.createReadStream(file).pipe(res);
      })
      .listen(port, '127.0.0.1', ready);
  } else {
    const { Feersum } = require('..');
    const engine = new Feersum();
    engine.psgiRequestHandler(() => [200, ['Content-Type', 'application/octet-stream', 'Content-Length', size], fs.createReadStream(file)]);
    engine.listen({ host: '127.0.0.1', port }).then(ready);
  }
}

if (process.argv[2] === '--server') {
  server(process.argv[3], Number(process.argv[4]), process.argv[5]);
  return;
}

const P = require('./proc');
const { fmt } = require('./wrk-report');

function parseSize(s) {
  const m = /^(\d+)([kMG]?)$/.exec(s);
  if (!m) P.fail(`bad SIZE '${s}'`);
  return Number(m[1]) * { '': 1, k: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2]];
}

const env = process.env;
const cfg = {
  size: parseSize(env.SIZE || '256M'),
  repeat: Number(env.REPEAT || 5),
  kinds: (env.KINDS || 'node psgi nginx-sendfile nginx-copy').split(/\s+/).filter(Boolean),
  serverCpu: env.SERVER_CPU ?? '0',
  clientCpus: env.CLIENT_CPUS ?? '1',
};

function startNginx(port, file, sendfile, dir) {
  const http = `sendfile ${sendfile ? 'on' : 'off'}; tcp_nopush on;
  server { listen 127.0.0.1:${port}; location = /file { alias ${file}; default_type application/octet-stream; } }`;
  return P.spawnNginx(dir, http, { cpus: cfg.serverCpu });
}

function download(port) {
  const curl = ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code} %{size_download}', `http://127.0.0.1:${port}/file`];
  const argv = cfg.clientCpus !== '' ? ['taskset', '-c', String(cfg.clientCpus), ...curl] : curl;
  const out = execFileSync(argv[0], argv.slice(1), { encoding: 'utf8' }).trim().split(' ');
  if (out[0] !== '200' || Number(out[1]) !== cfg.size) throw new Error(`download: status ${out[0]}, ${out[1]} of ${cfg.size} bytes`);
}

async function measure(kind, file, dir) {
  const port = await P.freePort();
  let child;
  if (kind.startsWith('nginx')) {
    child = startNginx(port, file, kind === 'nginx-sendfile', dir);
    if (!child) {
      P.log(`   ${kind}: skipped (nginx not installed)`);
      return null;
    }
  } else {
    child = P.spawnNode([__filename, '--server', kind, String(port), file], { cpus: cfg.serverCpu });
    await P.waitMessage(child, 'ready');
  }
  try {
    await P.waitPort(port);
    download(port); // warm-up: page cache, JIT
    const cpu0 = P.cpuSeconds(child.pid);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < cfg.repeat; i++) download(port);
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = P.cpuSeconds(child.pid) - cpu0;
    const gib = (cfg.size * cfg.repeat) / 1024 ** 3;
    const r = { kind, gibPerSecond: gib / wall, cpuSecondsPerGiB: cpu / gib, serverCpuPercent: (100 * cpu) / wall };
    P.log(`   ${kind}: ${r.gibPerSecond.toFixed(2)} GiB/s, ${r.cpuSecondsPerGiB.toFixed(3)} server CPU-s per GiB (${r.serverCpuPercent.toFixed(0)}% CPU)`);
    return r;
  } finally {
    await P.stop(child);
  }
}

async function main() {
  P.checkBuild();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'feersum-file-'));
  const file = path.join(dir, 'file');
  const fd = fs.openSync(file, 'w');
  const block = Buffer.alloc(1024 * 1024, 0x61);
  for (let n = 0; n < cfg.size; n += block.length) fs.writeSync(fd, block, 0, Math.min(block.length, cfg.size - n));
  fs.closeSync(fd);
  const rows = [];
  try {
    for (const kind of cfg.kinds) {
      const row = await measure(kind, file, dir);
      if (row) rows.push(row);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const L = [];
  L.push(`## File downloads: ${fmt(cfg.size / 1024 ** 2)} MiB file, ${cfg.repeat} downloads per server (curl, one at a time)\n`);
  L.push(`${P.cpuModel()}, ${P.coreCount()} cores, node ${process.version}; server on cpu ${cfg.serverCpu}, curl on cpu ${cfg.clientCpus}\n`);
  L.push('| server | GiB/s | server CPU-s per GiB | server CPU |');
  L.push('|---|---:|---:|---:|');
  for (const r of rows) L.push(`| ${r.kind} | ${r.gibPerSecond.toFixed(2)} | ${r.cpuSecondsPerGiB.toFixed(3)} | ${r.serverCpuPercent.toFixed(0)}% |`);
  console.log(L.join('\n'));
}

main().catch((err) => {
  P.log(err.stack || String(err));
  process.exit(1);
});
