// The WebSocket echo of websocket-echo.js over TLS (wss://). TLS stays in the
// engine (Node's OpenSSL, in C++); ws gets a socket-like stream of the
// decrypted bytes, so the app is the same.
//   sh examples/make-certs.sh examples/certs
//   node examples/websocket-echo-tls.js examples/certs
//   npx wscat --ca examples/certs/ca.pem -c wss://localhost:8443/echo
'use strict';
const path = require('node:path');
const { Feersum } = require('feersum-ts');
const app = require('./websocket-echo.js');

const certs = path.resolve(process.argv[2] || path.join(__dirname, 'certs'));
const engine = Feersum.endjinn();
engine.psgiRequestHandler(app);
engine
  .listen({
    host: '127.0.0.1',
    port: 8443,
    // PEM strings, Buffers or file paths
    tls: { cert: path.join(certs, 'server.pem'), key: path.join(certs, 'server-key.pem') },
  })
  .then(({ port }) => console.log(`wss://localhost:${port}/echo`));
