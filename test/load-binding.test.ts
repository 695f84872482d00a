// What a user sees when no native binary loads (wrong platform, a binary for
// another architecture, a damaged file, musl/old glibc): one paragraph naming
// the platform, what was looked for and how to build from source -- not
// node-gyp-build's or N-API's stack trace.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadBinding } from '../lib/native';

const ROOT = path.join(__dirname, '..');
let tmp: string;

/** A package root holding `files` (relative path -> contents). */
function packageDir(name: string, files: Record<string, string | Buffer>): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'package.json'), '{"name":"feersum-ts"}');
  for (const [rel, data] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), data);
  }
  return dir;
}

function loadError(dir: string): Error & { code?: string; causes?: unknown[] } {
  try {
    loadBinding(dir);
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected loadBinding to fail');
}

const tuple = `${process.platform}-${process.arch}`;
const otherArch = process.arch === 'arm64' ? 'x64' : 'arm64';

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'feersum-load-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('loadBinding() when no binary loads', () => {
  it('names the platform, the places searched, and the from-source command', () => {
    const err = loadError(packageDir('empty', {}));
    expect(err.code).toBe('ERR_FEERSUM_NO_BINDING');
    const m = err.message;
    expect(m).not.toContain('\n'); // one paragraph
    expect(m).toContain(`no native addon found for ${tuple}`);
    const glibc = (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header.glibcVersionRuntime;
    if (glibc) expect(m).toContain(`with glibc ${glibc}`);
    expect(m).toContain(`Node.js ${process.version}, N-API ${process.versions.napi}`);
    expect(m).toContain(path.join(tmp, 'empty', 'build', 'Release'));
    expect(m).toContain(path.join(tmp, 'empty', 'prebuilds', tuple));
    expect(m).toContain('the prebuilds directory is missing');
    expect(m).toContain('install python3, make and a C++17 compiler');
    expect(m).toContain('`npm rebuild feersum-ts --build-from-source`');
    expect(err.stack).not.toMatch(/node-gyp-build|node:internal|native\.ts/);
    expect(Object.keys(err)).toEqual(['code']); // the causes are kept, but not printed
    expect(err.causes).toHaveLength(1);
  });

  it('says which platforms prebuilt binaries exist for', () => {
    const m = loadError(packageDir('other-platform', { [`prebuilds/${process.platform}-${otherArch}/feersum-ts.glibc.node`]: 'x' })).message;
    expect(m).toContain(`prebuilt binaries ship for ${process.platform}-${otherArch}, glibc`);
  });

  it('explains a binary built for another architecture', () => {
    const arm = fs.readFileSync(path.join(ROOT, 'prebuilds', `linux-${otherArch}`, 'feersum-ts.glibc.node'));
    const dir = packageDir('wrong-arch', { [`prebuilds/${tuple}/feersum-ts.glibc.node`]: arm });
    const m = loadError(dir).message;
    expect(m).toContain(`the native addon ${path.join(dir, 'prebuilds', tuple, 'feersum-ts.glibc.node')} was found but does not load on ${tuple}`);
    expect(m).toContain(`The file is a Linux ${otherArch} binary, and this machine is ${process.arch}.`);
    expect(m).toContain('npm rebuild feersum-ts --build-from-source');
    expect(m).not.toContain('\n');
  });

  it('reports a damaged binary with the loader\'s own reason, in one line', () => {
    const dir = packageDir('damaged', { [`prebuilds/${tuple}/feersum-ts.glibc.node`]: 'not an ELF file at all' });
    const m = loadError(dir).message;
    expect(m).toContain(`the native addon ${path.join(dir, 'prebuilds', tuple, 'feersum-ts.glibc.node')} was found but does not load`);
    expect(m).toMatch(/invalid ELF header|file too short/);
    expect(m).not.toContain('\n');
  });

  it('prints one paragraph, without internal frames, when uncaught (FEERSUM_TS_PREBUILD redirects the search)', async () => {
    const dir = packageDir('uncaught', {});
    const err = await promisify(execFile)(process.execPath, ['-e', "new (require('./dist/index.js').Feersum)()"], {
      cwd: ROOT,
      env: { ...process.env, FEERSUM_TS_PREBUILD: dir },
    }).then(
      () => '',
      (e: { stderr: string }) => e.stderr,
    );
    expect(err).toMatch(/^Error \[ERR_FEERSUM_NO_BINDING\]: feersum-ts: no native addon found for /m);
    expect(err).toContain(`FEERSUM_TS_PREBUILD=${dir} redirected this search.`);
    expect(err).not.toMatch(/node-gyp-build\.js|Module\._extensions|node:internal|dist\/native\.js:\d+:\d+\)/);
  });

  it('still loads, and caches, the real binary without a directory', () => {
    const a = loadBinding();
    expect(typeof a.Engine).toBe('function');
    expect(loadBinding()).toBe(a);
  });
});
