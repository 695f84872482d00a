// The published package, as a user gets it: `npm pack` the repository, check
// what the tarball holds, install it into an empty project on a PATH with no
// compiler (only node, npm and sh), then use it the ways the README says --
// require() from CommonJS, import from ESM, type-check a TypeScript program
// against its declarations, and run the `feersum-ts` command.
//
// The tarball is packed from the current dist/ (`npm pack --ignore-scripts`:
// rebuilding dist/ here would race the other test files), so run
// `npm run build` first, as CI does.
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const execFileP = promisify(execFile);
const ROOT = path.join(__dirname, '..');
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const HAS_RUNNER = fs.existsSync(path.join(ROOT, 'dist', 'runner', 'cli.js'));

if (!HAS_RUNNER) {
  console.warn('package.test.ts: dist/runner/cli.js does not exist (runner not built yet): the feersum-ts command is not tested');
}

let tmp: string;
let project: string; // the empty project the tarball is installed into
let installed: string; // project/node_modules/feersum-ts
let bin: string; // the only directory on PATH: node, npm and sh
let tarballFiles: string[];
let installLog = '';

/** An environment without the repository's npm_* variables, whose PATH holds only node and npm. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_|^INIT_CWD$|^NODE_|^PREBUILDS_ONLY$|^FEERSUM_TS_|^LD_PRELOAD$|^ASAN_|^UBSAN_/i.test(k)) continue;
    env[k] = v;
  }
  return { ...env, PATH: bin, ...extra };
}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}) {
  return execFileP(cmd, args, {
    cwd: opts.cwd ?? project,
    env: opts.env ?? cleanEnv(),
    timeout: opts.timeout ?? 30000,
    maxBuffer: 16 * 1024 * 1024,
  });
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'feersum-pkg-'));
  bin = path.join(tmp, 'bin');
  project = path.join(tmp, 'project');
  fs.mkdirSync(bin);
  fs.mkdirSync(project);
  fs.symlinkSync(process.execPath, path.join(bin, 'node'));
  fs.symlinkSync('/bin/sh', path.join(bin, 'sh')); // npm runs lifecycle scripts with `sh`
  // npm's own script (npm-cli.js), found through the PATH the tests run with
  const npmOnPath = (process.env.PATH ?? '')
    .split(path.delimiter)
    .map((d) => path.join(d, 'npm'))
    .find((f) => fs.existsSync(f));
  if (!npmOnPath) throw new Error('npm not found on PATH');
  fs.symlinkSync(fs.realpathSync(npmOnPath), path.join(bin, 'npm'));

  // Pack (the repository's .npmrc/user config still apply: cache, registry).
  const packEnv = { ...cleanEnv(), PATH: process.env.PATH };
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], {
    cwd: ROOT,
    env: packEnv,
  });
  const info = JSON.parse(stdout)[0] as { filename: string; files: Array<{ path: string }> };
  tarballFiles = info.files.map((f) => f.path).sort();
  const tarball = path.join(tmp, info.filename);

  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'fresh-project', version: '1.0.0', private: true }));
  // No compiler reachable: a prebuilt binary must be used.
  const { stdout: installOut, stderr: installErr } = await run(
    path.join(bin, 'npm'),
    ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts'],
    { timeout: 60000 },
  );
  installLog = installOut + installErr;
  installed = path.join(project, 'node_modules', 'feersum-ts');
}, 90000);

afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('the tarball', () => {
  it('holds dist/, prebuilds/, the native sources, binding.gyp, README, LICENSE and types', () => {
    for (const f of [
      'package.json',
      'README.md',
      'LICENSE',
      'binding.gyp',
      'dist/index.js',
      'dist/index.mjs',
      'dist/index.d.ts',
      'dist/engine.d.ts',
      'dist/psgi/env.d.ts',
      'prebuilds/MANIFEST.json',
      'prebuilds/linux-x64/feersum-ts.glibc.node',
      'prebuilds/linux-arm64/feersum-ts.glibc.node',
      'native/addon.cc',
      'native/engine.h',
    ]) {
      expect(tarballFiles, f).toContain(f);
    }
    if (HAS_RUNNER) expect(tarballFiles).toContain('dist/runner/cli.js');
    // every source binding.gyp compiles is shipped, so a from-source build works
    const gyp = fs.readFileSync(path.join(ROOT, 'binding.gyp'), 'utf8');
    for (const m of gyp.matchAll(/"(native\/[^"]+\.cc)"/g)) expect(tarballFiles).toContain(m[1]);
  });

  it('holds no tests, benchmarks, fuzz corpora, build output, TypeScript sources or scripts', () => {
    const unwanted = tarballFiles.filter(
      (f) =>
        /^(test|bench|build|build-asan|lib|scripts|examples|node_modules|\.ci)\//.test(f) ||
        /fuzz|corpus|\.test\.|(?<!\.d)\.ts$|\.o$|\.log$|\.tgz$/.test(f),
    );
    expect(unwanted).toEqual([]);
  });

  it('ships no stale dist/ file (every dist/**/*.js comes from a lib/**/*.ts)', () => {
    const stale = tarballFiles
      .filter((f) => f.startsWith('dist/') && f.endsWith('.js'))
      .filter((f) => f !== 'dist/index.mjs' && !fs.existsSync(path.join(ROOT, 'lib', f.slice(5, -3) + '.ts')));
    expect(stale, 'remove dist/ and run `npm run build:ts`').toEqual([]);
  });
});

describe('installed without a compiler', () => {
  it('has no compiler, make or python on the PATH used', async () => {
    const probe = await run('/bin/sh', ['-c', 'for c in g++ gcc c++ cc clang make python3 python node-gyp; do command -v $c; done; true']);
    // node-gyp would only be found through npm's own bin directory during lifecycle scripts,
    // and without make/g++/python3 it cannot build anything.
    expect(probe.stdout.trim()).toBe('');
  });

  it('installed from the prebuilt binary, built nothing', () => {
    expect(fs.existsSync(path.join(installed, 'dist', 'index.js'))).toBe(true);
    expect(fs.existsSync(path.join(installed, 'build')), `install log:\n${installLog}`).toBe(false);
    expect(installLog).toContain('> node-gyp-build'); // the install script ran, and found the prebuild
    expect(installLog).not.toMatch(/gyp info|gyp ERR|node-gyp rebuild/);
    const deps = fs.readdirSync(path.join(project, 'node_modules')).filter((d) => !d.startsWith('.')).sort();
    expect(deps).toEqual(['feersum-ts', 'node-addon-api', 'node-gyp-build']);
  });

  it('serves a request when required from CommonJS', async () => {
    fs.writeFileSync(
      path.join(project, 'cjs.js'),
      `'use strict';
const { Feersum } = require('feersum-ts');
const which = require('node-gyp-build').path(require('path').dirname(require.resolve('feersum-ts/package.json')));
const engine = new Feersum();
engine.psgiRequestHandler((env) => [200, ['Content-Type', 'text/plain'], ['cjs ' + env.PATH_INFO]]);
engine.listen({ host: '127.0.0.1', port: 0 }).then(async ({ port }) => {
  const res = await fetch('http://127.0.0.1:' + port + '/hello');
  console.log(JSON.stringify({ status: res.status, body: await res.text(), binary: which }));
  await engine.gracefulShutdown();
});
`,
    );
    const { stdout } = await run('node', ['cjs.js']);
    const out = JSON.parse(stdout);
    expect(out.status).toBe(200);
    expect(out.body).toBe('cjs /hello');
    expect(out.binary).toBe(path.join(fs.realpathSync(installed), 'prebuilds', `linux-${process.arch}`, 'feersum-ts.glibc.node'));
  });

  it('serves a request when imported from ESM, sharing one module with require()', async () => {
    fs.writeFileSync(
      path.join(project, 'esm.mjs'),
      `import { createRequire } from 'node:module';
import feersum, { Feersum, wsUpgradeRequest } from 'feersum-ts';
const require = createRequire(import.meta.url);
const same = require('feersum-ts').Feersum === Feersum && feersum.Feersum === Feersum;
const engine = Feersum.endjinn();
engine.requestHandler((req) => req.sendResponse(200, ['Content-Type', 'text/plain'], 'esm ' + req.path));
const { port } = await engine.listen({ host: '127.0.0.1', port: 0 });
const res = await fetch('http://127.0.0.1:' + port + '/there');
console.log(JSON.stringify({ status: res.status, body: await res.text(), same, ws: typeof wsUpgradeRequest }));
await engine.gracefulShutdown();
`,
    );
    const { stdout } = await run('node', ['esm.mjs']);
    expect(JSON.parse(stdout)).toEqual({ status: 200, body: 'esm /there', same: true, ws: 'function' });
  });

  it('type-checks a TypeScript program (CommonJS and ESM) against the shipped declarations', async () => {
    const program = `import { Feersum, type EngineOptions, type FeersumRequest, type PsgiApp, type PsgiEnv, type Writer } from 'feersum-ts';

const options: EngineOptions = { maxBodySize: 1 << 20, keepaliveTimeout: 30 };
const engine = new Feersum(options);
const app: PsgiApp = (env: PsgiEnv) => {
  const method: string = env.REQUEST_METHOD;
  if (env.PATH_INFO === '/stream') {
    return (respond) => {
      const w: Writer | undefined = respond([200, ['Content-Type', 'text/plain']]);
      w?.write('a');
      w?.close();
    };
  }
  return [200, ['Content-Type', 'text/plain', 'X-Method', method], ['hello']];
};
engine.psgiRequestHandler(app);
engine.requestHandler((req: FeersumRequest) => {
  const w = req.startStreaming(200, ['Content-Type', 'text/plain']);
  w.pollCb((writer) => writer.close());
});
// @ts-expect-error -- the status must be a number
engine.requestHandler((req) => req.sendResponse('200', [], 'x'));
// @ts-expect-error -- unknown engine option
new Feersum({ maxBodySise: 1 });
export const listening: Promise<{ address: string; port: number; family: string }> = engine.listen({ port: 0 });
`;
    fs.writeFileSync(path.join(project, 'main.ts'), program);
    fs.writeFileSync(path.join(project, 'main.mts'), program);
    fs.writeFileSync(
      path.join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'es2022',
          skipLibCheck: false,
          typeRoots: [path.join(ROOT, 'node_modules', '@types')],
          types: ['node'],
        },
        files: ['main.ts', 'main.mts'],
      }),
    );
    const { stdout } = await run('node', [TSC, '-p', 'tsconfig.json', '--listFiles']).catch((err) => {
      throw new Error(`tsc failed:\n${err.stdout}${err.stderr}`);
    });
    // the declarations came from the installed package, not from the repository
    expect(stdout).toContain(path.join(project, 'node_modules', 'feersum-ts', 'dist', 'index.d.ts'));
    expect(stdout).not.toContain(path.join(ROOT, 'dist'));
  });

  it.skipIf(!HAS_RUNNER)('runs the feersum-ts command on an example app', async () => {
    fs.copyFileSync(path.join(ROOT, 'examples', 'psgi.js'), path.join(project, 'app.js'));
    const child = spawn(path.join(project, 'node_modules', '.bin', 'feersum-ts'), ['--listen', '127.0.0.1:0', 'app.js'], {
      cwd: project,
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const port = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no "listening on" line; stderr:\n${stderr}`)), 15000);
        child.stderr.on('data', () => {
          const m = stderr.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
          if (m) {
            clearTimeout(timer);
            resolve(Number(m[1]));
          }
        });
        child.on('exit', () => reject(new Error(`feersum-ts exited; stderr:\n${stderr}`)));
      });
      const res = await fetch(`http://127.0.0.1:${port}/there?x=1`);
      expect(res.status).toBe(200);
      expect(res.headers.get('server')).toMatch(/^feersum-ts\//);
      expect(await res.text()).toContain('/there');
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });

  it('explains, in one paragraph, when no binary matches', async () => {
    const empty = path.join(tmp, 'empty');
    fs.mkdirSync(empty, { recursive: true });
    const err = await run('node', ['-e', "new (require('feersum-ts').Feersum)()"], {
      env: cleanEnv({ FEERSUM_TS_PREBUILD: empty }),
    }).then(
      () => {
        throw new Error('expected the load to fail');
      },
      (e: { stderr: string }) => e.stderr,
    );
    expect(err).toMatch(/Error \[ERR_FEERSUM_NO_BINDING\]: feersum-ts: no native addon found for linux-/);
    expect(err).toContain('npm rebuild feersum-ts --build-from-source');
    expect(err).not.toMatch(/node-gyp-build\.js|Module\._extensions|node:internal/);
  });
});
