// Hello-world servers for the benchmarks: `node servers.js <kind> <port>`.
// kinds: native (feersum-ts native interface), psgi (feersum-ts PSGI),
// node (node:http).
//
// Environment:
//   BENCH_KEEPALIVE=<seconds>  idle keep-alive timeout for every kind
//                              (feersum keepaliveTimeout, node:http
//                              server.keepAliveTimeout); unset = each
//                              engine's default (feersum 75 s, node 5 s).
//
// When forked with an IPC channel (bench/measure.js, bench/idle-memory.js):
//   sends 'ready' once listening; exits when the parent goes away;
//   answers {cmd:'gc'} (needs --expose-gc) and {cmd:'mem'} with
//   {cmd, memoryUsage}.
'use strict';
const kind = process.argv[2];
const port = Number(process.argv[3] || 8080);
const BODY = 'Hello, World!\n';
const keepalive = process.env.BENCH_KEEPALIVE ? Number(process.env.BENCH_KEEPALIVE) : undefined;

function ready() {
  if (!process.send) return;
  process.send('ready');
  // The parent died or closed the channel: don't linger holding the port.
  process.on('disconnect', () => process.exit(0));
  process.on('message', (msg) => {
    if (!msg || typeof msg !== 'object') return;
    if (msg.cmd === 'gc') {
      if (typeof global.gc === 'function') {
        global.gc();
        global.gc();
      }
      process.send({ cmd: 'gc', ok: typeof global.gc === 'function' });
    } else if (msg.cmd === 'mem') {
      process.send({ cmd: 'mem', memoryUsage: process.memoryUsage() });
    }
  });
}

if (kind === 'node') {
  const http = require('node:http');
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': BODY.length });
    res.end(BODY);
  });
  // 0 disables node:http's idle timeout (connections stay open until closed).
  if (keepalive !== undefined) server.keepAliveTimeout = keepalive * 1000;
  server.listen(port, '127.0.0.1', ready);
} else {
  const { Feersum } = require('..');
  const engine = new Feersum(keepalive !== undefined ? { keepaliveTimeout: keepalive } : undefined);
  if (kind === 'native') {
    const headers = ['Content-Type', 'text/plain'];
    engine.requestHandler((req) => req.sendResponse(200, headers, BODY));
  } else if (kind === 'psgi') {
    const headers = ['Content-Type', 'text/plain'];
    engine.psgiRequestHandler(() => [200, headers, [BODY]]);
  } else {
    throw new Error(`unknown server kind ${kind}`);
  }
  engine.listen({ host: '127.0.0.1', port }).then(ready);
}
