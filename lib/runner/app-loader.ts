// Loads the application module: CommonJS or ESM (.js, .cjs, .mjs), always
// through import(), which handles both and honours package.json "type".
// Every failure becomes a one-line StartupError naming the file and the
// problem; the runner reports it before any port is bound.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import { firstLine, StartupError } from './errors';

// tsc compiles import() to require() for CommonJS output; a real dynamic
// import is needed to load ES modules, so it is built at run time.
// eslint-disable-next-line @typescript-eslint/no-implied-eval
const dynamicImport = new Function('specifier', 'return import(specifier)') as (s: string) => Promise<Record<string, unknown>>;

export type AppFunction = (...args: never[]) => unknown;

/** The path as people will recognise it: relative to the working directory when inside it. */
export function shownPath(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file;
}

/**
 * Imports `file` and returns the function it exports (module.exports = fn,
 * export default fn, or a transpiled exports.default = fn).
 */
export async function loadApp(file: string, native: boolean): Promise<AppFunction> {
  const shown = shownPath(file);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new StartupError(`cannot load ${shown}: ${code === 'ENOENT' || code === 'ENOTDIR' ? 'no such file' : firstLine(err)}`);
  }
  if (stat.isDirectory()) throw new StartupError(`cannot load ${shown}: it is a directory; give the application's file`);

  let ns: Record<string, unknown>;
  try {
    ns = await dynamicImport(pathToFileURL(file).href);
  } catch (err) {
    throw new StartupError(`${shown} failed to load: ${describeLoadError(err, file)}`);
  }
  let exported: unknown = ns.default;
  // A TypeScript/Babel build of `export default app` as CommonJS: exports.default.
  if (exported !== null && typeof exported === 'object' && typeof (exported as { default?: unknown }).default === 'function') {
    exported = (exported as { default: unknown }).default;
  }
  if (exported !== null && typeof exported === 'object' && typeof (exported as PromiseLike<unknown>).then === 'function') {
    try {
      exported = await exported; // module.exports = a promise of the app
    } catch (err) {
      throw new StartupError(`${shown} failed to load: its exported promise rejected: ${describeLoadError(err, file)}`);
    }
  }
  if (typeof exported !== 'function') {
    const kind = native ? 'a native handler function(req)' : 'a PSGI application function(env)';
    const got = exported === undefined ? 'nothing' : exported === null ? 'null' : `a value of type ${typeof exported}`;
    throw new StartupError(
      `${shown} does not export a function (it exports ${got}); ` +
        `it must export ${kind}: module.exports = app, or export default app`,
    );
  }
  return exported as AppFunction;
}

/** "SyntaxError: Unexpected token ';' (line 3)", "Error: boom (app.js:5:9)". */
function describeLoadError(err: unknown, file: string): string {
  if (!(err instanceof Error)) return String(err);
  let where = '';
  const stack = err.stack ?? '';
  // CommonJS syntax errors start their stack with "/path/app.js:LINE".
  const head = /^(.*):(\d+)\n/.exec(stack);
  if (head && (head[1] === file || head[1] === pathToFileURL(file).href)) where = ` (line ${head[2]})`;
  else {
    const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const frame = new RegExp(`(?:${esc(file)}|${esc(pathToFileURL(file).href)}):(\\d+):(\\d+)`).exec(stack);
    if (frame) where = ` (line ${frame[1]})`;
  }
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND') return firstLine(err) + where;
  return `${err.name}: ${firstLine(err)}${where}`;
}
