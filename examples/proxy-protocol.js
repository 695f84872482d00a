// Behind HAProxy (send-proxy / send-proxy-v2) or nginx's stream proxy
// (proxy_protocol on): every connection starts with a PROXY protocol header
// carrying the real client address, which becomes REMOTE_ADDR / REMOTE_PORT.
// A connection without the header is refused, so only the proxy may connect:
// listen on loopback or a Unix socket. Configurations: examples/deploy/.
//   node examples/proxy-protocol.js
'use strict';
const { Feersum } = require('feersum-ts');

const engine = Feersum.endjinn();
engine.psgiRequestHandler((env) => [200, ['Content-Type', 'text/plain'], [`your address: ${env.REMOTE_ADDR}:${env.REMOTE_PORT}\n`]]);
engine
  .listen({ host: '127.0.0.1', port: 8080, proxyProtocol: true })
  .then(({ port }) => console.log(`expecting PROXY protocol v1/v2 on 127.0.0.1:${port}`));
