// WebSockets with the `ws` package (npm install ws): the PSGI app hands
// upgrade requests to ws, which takes the connection from the engine;
// everything else stays plain HTTP on the same port.
//   node examples/websocket-echo.js
//   npx wscat -c ws://127.0.0.1:8080/echo
'use strict';
const { WebSocketServer } = require('ws');
const { Feersum, wsUpgradeRequest } = require('feersum-ts');

const wss = new WebSocketServer({ noServer: true });
wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));

/** @type {import('feersum-ts').PsgiApp} */
function app(env) {
  if (String(env.HTTP_UPGRADE).toLowerCase() !== 'websocket') {
    return [200, ['Content-Type', 'text/plain'], ['connect a WebSocket client to /echo\n']];
  }
  const { request, socket, head } = wsUpgradeRequest(env);
  wss.handleUpgrade(/** @type {any} */ (request), socket, head, (ws) => wss.emit('connection', ws, request));
  return () => {}; // a delayed response that never responds: the connection is ws's now
}

module.exports = app;
if (require.main === module) {
  Feersum.endjinn().psgiRequestHandler(app).listen({ host: '127.0.0.1', port: 8080 })
    .then(({ port }) => console.log(`ws://127.0.0.1:${port}/echo`));
}
