// The README cannot drift from the code:
//
//   <!-- include: PATH -->      the code block that follows must be the file
//                               PATH verbatim (the examples are run by
//                               test/examples.test.ts);
//   <!-- run: /PATH expects "TEXT" -->
//                               the js block that follows is a complete
//                               program: it is run, GET /PATH must answer
//                               200 with a body containing TEXT.
//
// A js block that requires feersum-ts and listens must carry one of the two
// markers. Also: every file in examples/deploy/ appears in the README
// verbatim, every example program is used by a test, and the engine options
// table lists every option with its real default.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { DEFAULT_OPTIONS } from '../lib/options';
import { ROOT, startProgram, stopAll } from './example-helpers';

interface Block {
  lang: string;
  code: string;
  line: number;
  marker?: { kind: 'include' | 'run'; arg: string };
}

const README = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');

function blocks(md: string): Block[] {
  const lines = md.split('\n');
  const out: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = lines[i].match(/^```(\S*)\s*$/);
    if (!open) continue;
    let j = i + 1;
    while (j < lines.length && lines[j] !== '```') j++;
    const block: Block = { lang: open[1], code: lines.slice(i + 1, j).join('\n'), line: i + 1 };
    const prev = lines[i - 1] ?? '';
    const m = prev.match(/^<!-- (include|run): (.*) -->$/);
    if (m) block.marker = { kind: m[1] as 'include' | 'run', arg: m[2] };
    out.push(block);
    i = j;
  }
  return out;
}

const ALL = blocks(README);
const includes = ALL.filter((b) => b.marker?.kind === 'include');
const runs = ALL.filter((b) => b.marker?.kind === 'run');

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'feersum-docs-'));
  // README programs say require('feersum-ts') / require('ws'), as a user would
  fs.mkdirSync(path.join(tmp, 'node_modules'));
  fs.symlinkSync(ROOT, path.join(tmp, 'node_modules', 'feersum-ts'));
  fs.symlinkSync(path.join(ROOT, 'node_modules', 'ws'), path.join(tmp, 'node_modules', 'ws'));
});
afterEach(stopAll);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('README code blocks', () => {
  it('has included and runnable blocks to check', () => {
    expect(includes.length).toBeGreaterThanOrEqual(7);
    expect(runs.length).toBeGreaterThanOrEqual(2);
  });

  it.each(includes.map((b) => [b.marker!.arg, b] as const))('<!-- include: %s --> is the file verbatim', (file, block) => {
    const full = path.join(ROOT, file);
    expect(fs.existsSync(full), `README line ${block.line} includes ${file}, which does not exist`).toBe(true);
    const text = fs.readFileSync(full, 'utf8').replace(/\n$/, '');
    expect(block.code, `README line ${block.line}: the block differs from ${file}; copy the file into the README`).toBe(text);
  });

  it.each(runs.map((b) => [b.line, b] as const))('the program at README line %i runs and answers', async (_line, block) => {
    const m = block.marker!.arg.match(/^(\/\S*) expects "(.*)"$/);
    expect(m, `README line ${block.line}: marker must be <!-- run: /PATH expects "TEXT" -->`).toBeTruthy();
    const esm = /^\s*import\s/m.test(block.code);
    const file = path.join(tmp, `readme-${block.line}.${esm ? 'mjs' : 'js'}`);
    fs.writeFileSync(file, block.code + '\n');
    const program = startProgram(file, [], { cwd: tmp });
    const [{ port }] = await program.ready();
    const res = await fetch(`http://127.0.0.1:${port}${m![1]}`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain(m![2]);
  });

  it('marks every complete program (requires feersum-ts and listens) as include or run', () => {
    const unmarked = ALL.filter(
      (b) =>
        /^(js|mjs|cjs|javascript|ts|typescript)$/.test(b.lang) &&
        /require\('feersum-ts'\)|from 'feersum-ts'/.test(b.code) &&
        /\.listen\(/.test(b.code) &&
        !b.marker,
    ).map((b) => `README line ${b.line}`);
    expect(unmarked, 'add <!-- run: /PATH expects "TEXT" --> or <!-- include: FILE --> above these blocks').toEqual([]);
  });

  it('shows every file of examples/deploy/ verbatim', () => {
    const codes = new Set(ALL.map((b) => b.code));
    for (const f of fs.readdirSync(path.join(ROOT, 'examples', 'deploy'))) {
      const text = fs.readFileSync(path.join(ROOT, 'examples', 'deploy', f), 'utf8').replace(/\n$/, '');
      expect(codes.has(text), `examples/deploy/${f} differs from (or is missing in) README.md`).toBe(true);
    }
  });
});

describe('examples/', () => {
  it('every example program is exercised by a test', () => {
    const tests = fs
      .readdirSync(path.join(ROOT, 'test'))
      .filter((f) => f.endsWith('.ts'))
      .map((f) => fs.readFileSync(path.join(ROOT, 'test', f), 'utf8'))
      .join('\n');
    const programs = fs.readdirSync(path.join(ROOT, 'examples')).filter((f) => /\.(js|mjs|cjs|sh)$/.test(f));
    const unused = programs.filter((f) => !tests.includes(`'${f}'`) && !tests.includes(`examples/${f}`));
    expect(unused, 'examples no test runs').toEqual([]);
  });
});

describe('README engine options', () => {
  it('lists every option with its default', () => {
    const table = README.slice(README.indexOf('### Options'), README.indexOf('### Errors'));
    for (const [name, value] of Object.entries(DEFAULT_OPTIONS)) {
      const row = table.match(new RegExp(`^\\| \`${name}\` \\| ([^|]+) \\|`, 'm'));
      expect(row, `README's options table has no row for ${name}`).toBeTruthy();
      const shown = row![1].trim().replace(/^`(.*)`$/, '$1');
      expect(shown, `README's default for ${name}`).toBe(typeof value === 'string' ? `'${value}'` : String(value));
    }
  });
});
