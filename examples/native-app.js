// A native-interface handler for the runner: `feersum-ts --native examples/native-app.js`.
'use strict';

/** @param {import('feersum-ts').FeersumRequest} req */
module.exports = (req) => {
  req.sendResponse(200, ['Content-Type', 'text/plain'], `native ${req.method} ${req.uri} from ${process.pid}\n`);
};
