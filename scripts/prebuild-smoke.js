#!/usr/bin/env node
// Smoke test of this machine's prebuilt binary under whatever node runs it
// (e.g. another Node.js version, or an arm64 node under qemu-user):
// loads prebuilds/<platform>-<arch>/ (never build/), serves plain HTTP, a
// streamed response with pollCb, PSGI, and HTTPS with a throwaway
// certificate (needs the openssl CLI). Prints one line; exit status 1 on failure.
//   node scripts/prebuild-smoke.js
//   qemu-aarch64-static -L SYSROOT SYSROOT/usr/bin/node scripts/prebuild-smoke.js
'use strict';
process.env.PREBUILDS_ONLY = '1'; // read by node-gyp-build when first required
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..');
const { Feersum } = require(root);
const binary = require('node-gyp-build').path(root);

function get(url, opts = {}) {
  return new Promise((resolve, reject) => {
    (url.startsWith('https:') ? https : http)
      .get(url, { agent: false, ...opts }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode, body }));
      })
      .on('error', reject);
  });
}

async function main() {
  const expected = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  if (path.dirname(binary) !== expected) throw new Error(`loaded ${binary}, expected a file in ${expected}`);

  const engine = new Feersum();
  engine.requestHandler((req) => {
    if (req.path !== '/stream') return req.sendResponse(200, ['Content-Type', 'text/plain'], `native ${req.path}`);
    const w = req.startStreaming(200, ['Content-Type', 'text/plain']);
    let n = 0;
    w.pollCb((writer) => {
      while (n < 20000) if (!writer.write(`${n++}\n`)) return;
      writer.close();
    });
  });
  const { port } = await engine.listen({ host: '127.0.0.1', port: 0 });
  const plain = await get(`http://127.0.0.1:${port}/x`);
  if (plain.body !== 'native /x') throw new Error(`plain: ${JSON.stringify(plain)}`);
  const streamed = await get(`http://127.0.0.1:${port}/stream`);
  if (streamed.body.split('\n').length !== 20001) throw new Error('stream: wrong length');

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'feersum-smoke-'));
  try {
    execFileSync('sh', [path.join(root, 'examples', 'make-certs.sh'), dir], { stdio: 'ignore' });
    const secure = new Feersum();
    secure.psgiRequestHandler((env) => [200, ['Content-Type', 'text/plain'], [`psgi ${env['psgi.url_scheme']} ${env.SSL_PROTOCOL}`]]);
    const tls = { cert: path.join(dir, 'server.pem'), key: path.join(dir, 'server-key.pem') };
    const { port: tlsPort } = await secure.listen({ host: '127.0.0.1', port: 0, tls });
    const res = await get(`https://127.0.0.1:${tlsPort}/`, { ca: fs.readFileSync(path.join(dir, 'ca.pem')), servername: 'localhost' });
    if (!/^psgi https TLSv1\.[23]$/.test(res.body)) throw new Error(`https: ${JSON.stringify(res)}`);
    await secure.gracefulShutdown();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  await engine.gracefulShutdown();
  console.log(`ok: ${path.relative(root, binary)} on Node.js ${process.version} ${process.platform}-${process.arch} (OpenSSL ${process.versions.openssl}): HTTP, pollCb streaming, PSGI over TLS`);
}

main().catch((err) => {
  console.error(`prebuild smoke test failed on Node.js ${process.version} ${process.arch}: ${err.stack || err}`);
  process.exit(1);
});
