// The same idea as an ES module: `export default app`.
//   npx feersum-ts --listen :5000 examples/app.mjs
/** @type {import('feersum-ts').PsgiApp} */
export default function app(env) {
  return [200, ['Content-Type', 'text/plain'], [`esm hello ${env.PATH_INFO} from ${process.pid}\n`]];
}
