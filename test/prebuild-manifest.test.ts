// The checked-in prebuilt binaries (prebuilds/) must have been built from
// the current native/ sources and binding.gyp: prebuilds/MANIFEST.json
// records their hashes, and this test recomputes them -- so a stale binary
// can never ship. Also checks that the binaries are the ones the manifest
// lists, for the architectures their directories name, and that this
// machine's one loads.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

import { describe, expect, it } from 'vitest';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const { sourceFiles, combinedHash, sha256, REGENERATE } = require('../scripts/prebuild-manifest.js') as {
  sourceFiles(root: string): Record<string, string>;
  combinedHash(files: Record<string, string>): string;
  sha256(buf: Buffer): string;
  REGENERATE: string;
};

const ROOT = path.join(__dirname, '..');
const PREBUILDS = path.join(ROOT, 'prebuilds');
const FIX = `Run \`${REGENERATE}\` (or \`npm run prebuilds\`; needs g++ and g++-aarch64-linux-gnu) and commit prebuilds/.`;

interface Manifest {
  sourceHash: string;
  sources: Record<string, string>;
  node: string;
  napiVersion: number;
  binaries: Record<string, { sha256: string; bytes: number; compiler: string; minGlibc: string }>;
}

function manifest(): Manifest {
  const file = path.join(PREBUILDS, 'MANIFEST.json');
  if (!fs.existsSync(file)) throw new Error(`prebuilds/MANIFEST.json is missing. ${FIX}`);
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Manifest;
}

describe('prebuilds/MANIFEST.json', () => {
  it('matches the current native/ sources and binding.gyp', () => {
    const m = manifest();
    const now = sourceFiles(ROOT);
    if (combinedHash(now) !== m.sourceHash) {
      const changed = Object.keys({ ...now, ...m.sources })
        .sort()
        .filter((f) => now[f] !== m.sources[f])
        .map((f) => (!(f in now) ? `${f} (removed)` : !(f in m.sources) ? `${f} (added)` : `${f} (changed)`));
      throw new Error(
        `The prebuilt binaries in prebuilds/ were built from other sources than the current native/ and binding.gyp ` +
          `(${changed.length ? changed.join(', ') : 'the manifest hash itself was edited'}). ${FIX}`,
      );
    }
    expect(combinedHash(m.sources)).toBe(m.sourceHash);
  });

  it('lists exactly the binaries in prebuilds/, with their hashes', () => {
    const m = manifest();
    const present = fs
      .readdirSync(PREBUILDS, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .flatMap((d) => fs.readdirSync(path.join(PREBUILDS, d.name)).map((f) => `${d.name}/${f}`))
      .sort();
    expect(present, FIX).toEqual(Object.keys(m.binaries).sort());
    expect(present).toEqual(['linux-arm64/feersum-ts.glibc.node', 'linux-x64/feersum-ts.glibc.node']);
    for (const [rel, info] of Object.entries(m.binaries)) {
      const buf = fs.readFileSync(path.join(PREBUILDS, rel));
      expect(sha256(buf), `${rel} is not the binary the manifest describes. ${FIX}`).toBe(info.sha256);
      expect(buf.length).toBe(info.bytes);
    }
  });

  it('has binaries for the architectures their directories name (ELF, x86-64 / aarch64)', () => {
    const machineOf = (rel: string) => {
      const head = fs.readFileSync(path.join(PREBUILDS, rel)).subarray(0, 20);
      expect(head.readUInt32BE(0)).toBe(0x7f454c46); // ELF
      expect(head[4]).toBe(2); // 64-bit
      return head.readUInt16LE(18);
    };
    expect(machineOf('linux-x64/feersum-ts.glibc.node')).toBe(0x3e);
    expect(machineOf('linux-arm64/feersum-ts.glibc.node')).toBe(0xb7);
    for (const info of Object.values(manifest().binaries)) {
      // no newer glibc than Node 18's own official binaries need
      expect(info.minGlibc.split('.').map(Number)[1]).toBeLessThanOrEqual(28);
    }
  });

  it("loads this machine's prebuilt binary (PREBUILDS_ONLY: the from-source build/ is ignored)", async () => {
    const tuple = `${process.platform}-${process.arch}`;
    if (!fs.existsSync(path.join(PREBUILDS, tuple))) return; // no prebuild for this machine: nothing to load
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [
        '-e',
        `const b = require('node-gyp-build'); const p = b.path(${JSON.stringify(ROOT)}); const m = require(p);
         console.log(JSON.stringify({ p, engine: typeof m.Engine, bind: typeof m.bindSocket, tls: typeof m.createTlsContext }));`,
      ],
      { cwd: ROOT, env: { ...process.env, PREBUILDS_ONLY: '1' } },
    );
    expect(JSON.parse(stdout)).toEqual({
      p: path.join(PREBUILDS, tuple, 'feersum-ts.glibc.node'),
      engine: 'function',
      bind: 'function',
      tls: 'function',
    });
  });
});
