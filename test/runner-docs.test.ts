// README's Runner section cannot drift from the runner's option table
// (OPTIONS, which --help prints): every option, its aliases and short form
// have a row in the section's options table, with the default --help shows,
// and the table names no option that does not exist.
import fs from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { OPTIONS, VERSION } from '../lib/runner/options';

const README = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8');
const start = README.indexOf('## Runner: the `feersum-ts` command');
const end = README.indexOf('\n## ', start + 1);
const RUNNER = README.slice(start, end);

interface Row {
  names: string;
  def: string;
  line: string;
}

/** The rows of the options table (the one whose header is "| option | default | meaning |"). */
function optionRows(): Row[] {
  const lines = RUNNER.split('\n');
  const at = lines.findIndex((l) => /^\| option \| default \| meaning \|$/.test(l));
  expect(at, "README's Runner section has no '| option | default | meaning |' table").toBeGreaterThanOrEqual(0);
  const rows: Row[] = [];
  for (const line of lines.slice(at + 2)) {
    if (!line.startsWith('|')) break;
    // Cells split on unescaped pipes (`--access-log FILE\|-` holds one).
    const cells = line.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim());
    rows.push({ names: cells[0], def: cells[1].replace(/`/g, ''), line });
  }
  return rows;
}

/** `--name` as a whole option name in a cell (so --socket does not match --socket-mode). */
const names = (cell: string, name: string) => new RegExp(`\`--${name}[\` ]`).test(cell) || cell.includes(`\`--${name}\``);

describe("README's Runner section", () => {
  const rows = optionRows();

  it('has a row for every option, with its aliases and short form', () => {
    expect(start).toBeGreaterThanOrEqual(0);
    for (const o of OPTIONS) {
      const row = rows.find((r) => names(r.names, o.name));
      expect(row, `no row for --${o.name}`).toBeTruthy();
      for (const a of o.aliases ?? []) expect(row!.names, `--${o.name}'s alias --${a}`).toContain(`\`--${a}\``);
      if (o.short) expect(row!.names, `--${o.name}'s short form`).toContain(`\`-${o.short}\``);
    }
  });

  it('shows the default --help shows', () => {
    for (const o of OPTIONS) {
      const row = rows.find((r) => names(r.names, o.name))!;
      // The package version is written out in --help, named in the README.
      const want = o.def === undefined ? '--' : o.name === 'product-version' && o.def === VERSION ? 'the package version' : o.def;
      expect(row.def, `README's default for --${o.name}`).toBe(want);
    }
  });

  it('names no option that does not exist', () => {
    const known = new Set(OPTIONS.flatMap((o) => [o.name, ...(o.aliases ?? [])]));
    for (const r of rows) {
      for (const m of r.names.matchAll(/`--([a-z0-9-]+)/g)) expect(known.has(m[1]), `README row: ${r.line}`).toBe(true);
    }
    expect(rows).toHaveLength(OPTIONS.length);
  });
});
