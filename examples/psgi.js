// A PSGI application: `node examples/psgi.js` serves it on :8080, and
// `npx feersum-ts examples/psgi.js` runs the same file under the runner.
const { Feersum } = require('feersum-ts');

/** @type {import('feersum-ts').PsgiApp} */
async function app(env) {
  let bytes = 0;
  for await (const chunk of env['psgi.input']) bytes += chunk.length;
  const text = bytes ? `${env.REQUEST_METHOD} ${env.PATH_INFO}: got ${bytes} bytes\n` : `Hello from ${env.PATH_INFO}\n`;
  return [200, ['Content-Type', 'text/plain'], [text]];
}

module.exports = app;
if (require.main === module) Feersum.endjinn().psgiRequestHandler(app).listen({ port: 8080 });
