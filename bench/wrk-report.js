// What the benchmark scripts share for running wrk and printing figures:
// running it, its text output parsed into numbers, the tables' number formats.
'use strict';
const { spawn } = require('node:child_process');

const P = require('./proc');

const UNITS = { us: 1e-3, ms: 1, s: 1000, m: 60000 };

/** wrk's output (with --latency) as numbers; latencies in ms. */
function parseWrk(text) {
  const num = (re) => {
    const m = re.exec(text);
    return m ? Number(m[1]) : 0;
  };
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m),/.exec(text);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const lat = {};
  for (const p of ['50', '90', '99']) {
    const m = new RegExp(`^\\s+${p}(?:\\.000)?%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(text);
    if (m) lat[`p${p}_ms`] = Number(m[1]) * UNITS[m[2]];
  }
  const r = {
    requests: total ? Number(total[1]) : 0,
    wrkSeconds: total ? (Number(total[2]) * UNITS[total[3]]) / 1000 : 0,
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    non2xx: num(/Non-2xx or 3xx responses: (\d+)/),
    socketErrors: sock
      ? { connect: +sock[1], read: +sock[2], write: +sock[3], timeout: +sock[4] }
      : { connect: 0, read: 0, write: 0, timeout: 0 },
    latency: lat,
  };
  r.errors = r.non2xx + Object.values(r.socketErrors).reduce((a, b) => a + b, 0);
  r.errorLines = text.split('\n').filter((l) => /Socket errors|Non-2xx|error/i.test(l)).map((l) => l.trim());
  return r;
}

/** Runs wrk (pinned to `cpus` when given) and resolves with its output; rejects if it fails. */
function runWrk(args, cpus = '') {
  const [cmd, argv] = cpus ? ['taskset', ['-c', String(cpus), 'wrk', ...args]] : ['wrk', args];
  return new Promise((resolve, reject) => {
    const child = P.track(spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'inherit'] }));
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`wrk exited with ${code}`))));
  });
}

function fmt(n) {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a';
}
function pct(x) {
  return Number.isFinite(x) ? `${x.toFixed(0)}%` : 'n/a';
}
function ratio(a, b) {
  return Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : NaN;
}
function fmtRatio(x) {
  return Number.isFinite(x) ? `${x.toFixed(2)}x` : 'n/a';
}

module.exports = { parseWrk, runWrk, fmt, pct, ratio, fmtRatio };
