// The install-time fallback: the packed tarball without a prebuild for this platform, installed with
// scripts on and a compiler on PATH, builds the addon from source (node-gyp-build -> node-gyp rebuild).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const execFileP = promisify(execFile);
const ROOT = path.join(__dirname, '..');
let tmp: string;
let project: string;
let installed: string;
let installLog = '';

/** The environment without the repository's npm_*, loader and sanitizer variables (as package.test.ts). */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_|^INIT_CWD$|^NODE_|^PREBUILDS_ONLY$|^FEERSUM_TS_|^LD_PRELOAD$|^ASAN_|^UBSAN_|^JOBS$/i.test(k)) continue;
    env[k] = v;
  }
  return env;
}

function run(cmd: string, args: string[], cwd: string, timeout = 30000, env = cleanEnv()) {
  return execFileP(cmd, args, { cwd, env, timeout, maxBuffer: 64 * 1024 * 1024 });
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'feersum-src-'));
  project = path.join(tmp, 'project');
  fs.mkdirSync(project);
  // Pack the current dist/ (no rebuild, as package.test.ts), unpack, drop this platform's prebuild, repack:
  // installing the directory itself would link it (or run its `prepare` script) instead of installing a copy.
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], ROOT);
  const tarball = path.join(tmp, (JSON.parse(stdout)[0] as { filename: string }).filename);
  await run('tar', ['xzf', tarball, '-C', tmp], tmp);
  const dropped = path.join(tmp, 'package', 'prebuilds', `${process.platform}-${process.arch}`);
  expect(fs.existsSync(dropped), `the tarball has no ${dropped}`).toBe(true);
  fs.rmSync(dropped, { recursive: true });
  const noPrebuild = path.join(tmp, 'feersum-ts-no-prebuild.tgz');
  await run('tar', ['czf', noPrebuild, '-C', tmp, 'package'], tmp);

  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'fresh-project', version: '1.0.0', private: true }));
  const env = { ...cleanEnv(), JOBS: String(os.availableParallelism?.() ?? os.cpus().length) }; // node-gyp's make -j
  try {
    const out = await run('npm', ['install', noPrebuild, '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts'], project, 300000, env);
    installLog = out.stdout + out.stderr;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`npm install failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
  installed = path.join(project, 'node_modules', 'feersum-ts');
}, 330000);

afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('installed where no prebuild matches', () => {
  it('builds the addon from source with node-gyp during npm install', () => {
    expect(installLog).toContain('> node-gyp-build');
    expect(installLog).toMatch(/gyp info ok/);
    expect(installLog).toMatch(/CXX\(target\) Release\/obj\.target\/feersum\/native\/addon\.o/);
    expect(installLog).not.toMatch(/gyp ERR/);
    expect(fs.existsSync(path.join(installed, 'prebuilds', `${process.platform}-${process.arch}`))).toBe(false);
    expect(fs.statSync(path.join(installed, 'build', 'Release', 'feersum.node')).size).toBeGreaterThan(0);
  });

  it('serves a request from CommonJS with the binary it built', async () => {
    fs.writeFileSync(
      path.join(project, 'cjs.js'),
      `'use strict';
const { Feersum } = require('feersum-ts');
const which = require('node-gyp-build').path(require('path').dirname(require.resolve('feersum-ts/package.json')));
const engine = new Feersum();
engine.psgiRequestHandler((env) => [200, ['Content-Type', 'text/plain'], ['built ' + env.PATH_INFO]]);
engine.listen({ host: '127.0.0.1', port: 0 }).then(async ({ port }) => {
  const res = await fetch('http://127.0.0.1:' + port + '/here');
  console.log(JSON.stringify({ status: res.status, body: await res.text(), binary: which }));
  await engine.gracefulShutdown();
});
`,
    );
    const { stdout } = await run(process.execPath, ['cjs.js'], project);
    expect(JSON.parse(stdout)).toEqual({
      status: 200,
      body: 'built /here',
      binary: path.join(fs.realpathSync(installed), 'build', 'Release', 'feersum.node'),
    });
  });
});
