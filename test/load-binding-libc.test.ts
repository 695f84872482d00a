// bindingError()'s libc explanations, from real dlopen failures: binaries built here with gcc that
// need a glibc symbol version this system lacks, or need musl's libc.so (see load-binding.test.ts).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadBinding } from '../lib/native';

const tuple = `${process.platform}-${process.arch}`;
const muslArch = ({ x64: 'x86_64', arm64: 'aarch64' } as Record<string, string>)[process.arch] ?? process.arch;
const glibc = (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header.glibcVersionRuntime;
let tmp: string;

function gcc(cwd: string, args: string[]): void {
  try {
    execFileSync('gcc', args, { cwd, stdio: 'pipe' });
  } catch (err) {
    const e = err as { code?: string; stderr?: Buffer };
    if (e.code === 'ENOENT') throw new Error('gcc is not on PATH: these tests build their failing binaries with it (apt-get install gcc)');
    throw new Error(`gcc ${args.join(' ')} failed:\n${e.stderr}`);
  }
}

/** A package root whose prebuilds/<tuple>/ holds feersum-ts.glibc.node, made by `make(binDir)`. */
function fakePackage(name: string, make: (binDir: string) => void): { dir: string; file: string } {
  const dir = path.join(tmp, name);
  const binDir = path.join(dir, 'prebuilds', tuple);
  fs.mkdirSync(binDir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'package.json'), '{"name":"feersum-ts"}');
  make(binDir);
  return { dir, file: path.join(binDir, 'feersum-ts.glibc.node') };
}

function loadError(dir: string): Error & { code?: string } {
  try {
    loadBinding(dir);
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected loadBinding to fail');
}

function expectOneParagraph(err: Error & { code?: string }, file: string): void {
  expect(err.code).toBe('ERR_FEERSUM_NO_BINDING');
  expect(err.message).not.toContain('\n');
  expect(err.message).toContain(`the native addon ${file} was found but does not load on ${tuple}`);
  if (glibc) expect(err.message).toContain(`${tuple} with glibc ${glibc} (Node.js ${process.version}, N-API ${process.versions.napi})`);
  expect(err.message).toContain('`npm rebuild feersum-ts --build-from-source`');
  expect(err.stack).not.toMatch(/node-gyp-build|node:internal|native\.ts|Module\._extensions/);
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'feersum-libc-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe.runIf(process.platform === 'linux')('loadBinding() on a libc mismatch', () => {
  it('explains a binary that needs a newer glibc (version `GLIBC_2.99\' not found)', () => {
    const { dir, file } = fakePackage('old-glibc', (d) => {
      fs.writeFileSync(path.join(d, 'lib.c'), 'int fake_glibc_symbol(void) { return 1; }\n');
      fs.writeFileSync(path.join(d, 'new.map'), 'GLIBC_2.99 { global: fake_glibc_symbol; local: *; };\n');
      fs.writeFileSync(path.join(d, 'old.map'), 'GLIBC_2.2 { global: fake_glibc_symbol; local: *; };\n');
      fs.writeFileSync(path.join(d, 'addon.c'), 'int fake_glibc_symbol(void);\nint addon(void) { return fake_glibc_symbol(); }\n');
      gcc(d, ['-shared', '-fPIC', '-o', 'libfakeglibc.so', 'lib.c', '-Wl,--version-script=new.map']);
      gcc(d, ['-shared', '-fPIC', '-o', 'feersum-ts.glibc.node', 'addon.c', '-L.', '-Wl,--no-as-needed', '-lfakeglibc', "-Wl,-rpath,$ORIGIN"]);
      // the "system" library is now older: it defines the symbol, but not version GLIBC_2.99
      gcc(d, ['-shared', '-fPIC', '-o', 'libfakeglibc.so', 'lib.c', '-Wl,--version-script=old.map']);
    });
    const err = loadError(dir);
    expectOneParagraph(err, file);
    expect(err.message).toMatch(/version `GLIBC_2\.99' not found/);
    expect(err.message).toContain(
      'The C or C++ runtime library of this system is older than the one the binary was built against ' +
        '(the prebuilt binaries need glibc 2.28 or later, as Node.js 18 does).',
    );
    expect(err.message).not.toContain('musl');
  });

  it(`explains a binary built for musl (libc.musl-${muslArch}.so.1 missing)`, () => {
    const musl = `libc.musl-${muslArch}.so.1`;
    const { dir, file } = fakePackage('musl', (d) => {
      fs.writeFileSync(path.join(d, 'lib.c'), 'int fake_musl_symbol(void) { return 1; }\n');
      fs.writeFileSync(path.join(d, 'addon.c'), 'int fake_musl_symbol(void);\nint addon(void) { return fake_musl_symbol(); }\n');
      gcc(d, ['-shared', '-fPIC', '-o', musl, `-Wl,-soname,${musl}`, 'lib.c']);
      gcc(d, ['-shared', '-fPIC', '-o', 'feersum-ts.glibc.node', 'addon.c', '-Wl,--no-as-needed', `./${musl}`, "-Wl,-rpath,$ORIGIN"]);
      fs.rmSync(path.join(d, musl));
    });
    const err = loadError(dir);
    expectOneParagraph(err, file);
    expect(err.message).toContain(`${musl}: cannot open shared object file`);
    expect(err.message).toContain('The prebuilt binaries are for glibc; musl systems (Alpine) need a build from source.');
    expect(err.message).not.toContain('older than the one the binary was built against');
  });
});
