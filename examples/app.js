// A PSGI application for the feersum-ts runner (CommonJS):
//   npx feersum-ts --pre-fork=4 --listen :5000 examples/app.js
// The runner's tests use its routes:
//   /            hello, with the worker's pid
//   /env         JSON of a few env keys (SERVER_NAME, psgi.multiprocess, ...)
//   /slow?ms=N   answers after N milliseconds
//   /stream      a streamed (delayed) response in three parts
//   /harakiri    answers, then asks the runner to retire this worker
//   /warn        writes a line to psgi.errors
//   /throw       throws (the runner answers 500 and logs the error)
'use strict';

/** @type {import('feersum-ts').PsgiApp} */
module.exports = async (env) => {
  const url = new URL(env.REQUEST_URI, 'http://x');
  switch (env.PATH_INFO) {
    case '/env':
      return [200, ['Content-Type', 'application/json'], [JSON.stringify({
        pid: process.pid,
        SERVER_NAME: env.SERVER_NAME,
        SERVER_PORT: env.SERVER_PORT,
        REMOTE_ADDR: env.REMOTE_ADDR,
        url_scheme: env['psgi.url_scheme'],
        SSL_CLIENT_S_DN: env.SSL_CLIENT_S_DN,
        multiprocess: env['psgi.multiprocess'],
        harakiri: env['psgix.harakiri'] === true,
      })]];
    case '/slow': {
      const ms = Number(url.searchParams.get('ms') || 1000);
      await new Promise((resolve) => setTimeout(resolve, ms));
      return [200, ['Content-Type', 'text/plain'], [`slept ${ms} ms in ${process.pid}\n`]];
    }
    case '/stream':
      return (respond) => {
        const w = respond([200, ['Content-Type', 'text/plain']]);
        w.write('one,');
        setTimeout(() => {
          w.write('two,');
          w.write('three\n');
          w.close();
        }, 10);
      };
    case '/harakiri':
      env['psgix.harakiri.commit'] = env['psgix.harakiri'] === true;
      return [200, ['Content-Type', 'text/plain'], [`${process.pid}\n`]];
    case '/warn':
      env['psgi.errors'].write(`app warning from ${process.pid}\n`);
      return [200, ['Content-Type', 'text/plain'], ['warned\n']];
    case '/throw':
      throw new Error('thrown by the app');
    default:
      return [200, ['Content-Type', 'text/plain'], [`hello from ${process.pid}\n`]];
  }
};
