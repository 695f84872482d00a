// The smallest feersum-ts server: the native interface on one port.
//   node examples/hello.js            (PORT=8080 by default)
'use strict';
const { Feersum } = require('feersum-ts');

const engine = Feersum.endjinn();
engine.requestHandler((req) => {
  req.sendResponse(200, ['Content-Type', 'text/plain'], `Hello from feersum-ts: ${req.method} ${req.uri}\n`);
});
engine.listen({ host: process.env.HOST || '127.0.0.1', port: Number(process.env.PORT || 8080) }).then((addr) => {
  console.log(`listening on http://${addr.address}:${addr.port}/`);
});
process.on('SIGINT', () => engine.gracefulShutdown().then(() => process.exit(0)));
process.on('SIGTERM', () => engine.gracefulShutdown().then(() => process.exit(0)));
