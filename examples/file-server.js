// Serving files with pollCb: each file is read in 64 KiB pieces as the client
// takes them, with a Content-Length, so a slow client of a large file costs
// one buffer, not the whole file.
//   node examples/file-server.js [DIR]         (default: this directory)
//   curl -O http://127.0.0.1:8080/file-server.js
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { Feersum } = require('feersum-ts');

const root = path.resolve(process.argv[2] || __dirname);
const types = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.json': 'application/json', '.txt': 'text/plain; charset=utf-8' };

/** @param {import('feersum-ts').FeersumRequest} req */
function serveFile(req) {
  if (req.method !== 'GET' && req.method !== 'HEAD') return req.sendResponse(405, ['Allow', 'GET, HEAD'], 'method not allowed\n');
  if (req.path.includes('\0')) return req.sendResponse(400, ['Content-Type', 'text/plain'], 'bad path\n');
  const file = path.join(root, path.normalize(req.path)); // req.path is decoded; normalize removes '..'
  if (!file.startsWith(root + path.sep)) return req.sendResponse(403, ['Content-Type', 'text/plain'], 'forbidden\n');
  fs.open(file, 'r', (err, fd) => {
    if (err) return req.sendResponse(404, ['Content-Type', 'text/plain'], 'not found\n');
    const stat = fs.fstatSync(fd);
    const size = stat.size;
    if (!stat.isFile()) {
      fs.closeSync(fd);
      return req.sendResponse(404, ['Content-Type', 'text/plain'], 'not found\n');
    }
    const headers = ['Content-Type', types[/** @type {keyof types} */ (path.extname(file))] || 'application/octet-stream', 'Content-Length', size];
    if (req.method === 'HEAD') {
      fs.closeSync(fd);
      return req.sendResponse(200, headers); // HEAD keeps our Content-Length
    }
    const w = req.startStreaming(200, headers);
    let offset = 0;
    let reading = false;
    const done = () => {
      if (fd >= 0) fs.close(fd, () => {});
      fd = -1;
    };
    req.responseGuard(done); // complete, or the client went away
    w.pollCb((writer) => {
      if (reading || fd < 0) return;
      reading = true;
      const buf = Buffer.allocUnsafe(Math.min(65536, size - offset));
      fs.read(fd, buf, 0, buf.length, offset, (err, n) => {
        reading = false;
        if (err || n === 0) {
          writer.close(); // fewer bytes than Content-Length: the engine closes the connection
          return;
        }
        offset += n;
        writer.write(n === buf.length ? buf : buf.subarray(0, n));
        if (offset >= size) writer.close();
      });
    });
  });
}

const engine = Feersum.endjinn();
engine.requestHandler(serveFile);
engine.listen({ host: '127.0.0.1', port: 8080 }).then(({ port }) => console.log(`serving ${root} on http://127.0.0.1:${port}/`));
