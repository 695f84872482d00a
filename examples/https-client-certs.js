// HTTPS that asks clients for a certificate (mutual TLS). Clients without a
// valid one still get in here (rejectUnauthorized: false) and the app
// decides; with rejectUnauthorized: true (the default) the handshake refuses them.
//   sh examples/make-certs.sh examples/certs
//   node examples/https-client-certs.js examples/certs
//   curl --cacert examples/certs/ca.pem --cert examples/certs/client.pem \
//        --key examples/certs/client-key.pem https://localhost:8443/
'use strict';
const path = require('node:path');
const { Feersum } = require('feersum-ts');

const certs = path.resolve(process.argv[2] || path.join(__dirname, 'certs'));

/** @type {import('feersum-ts').PsgiApp} */
function app(env) {
  // nginx's names: SSL_CLIENT_VERIFY is SUCCESS, NONE or FAILED:<reason>
  if (env.SSL_CLIENT_VERIFY !== 'SUCCESS') {
    return [403, ['Content-Type', 'text/plain'], [`client certificate required (${env.SSL_CLIENT_VERIFY})\n`]];
  }
  return [200, ['Content-Type', 'text/plain'], [`hello ${env.SSL_CLIENT_S_DN} (${env.SSL_PROTOCOL}, issued by ${env.SSL_CLIENT_I_DN})\n`]];
}

const engine = Feersum.endjinn();
engine.psgiRequestHandler(app);
engine
  .listen({
    host: '127.0.0.1',
    port: 8443,
    tls: {
      cert: path.join(certs, 'server.pem'),
      key: path.join(certs, 'server-key.pem'),
      ca: path.join(certs, 'ca.pem'), // CAs that sign client certificates
      requestCert: true,
      rejectUnauthorized: false,
    },
  })
  .then(({ port }) => console.log(`https://localhost:${port}/`));
