// The feersum-ts command line: --help/--version, and every way to start it
// wrongly -- bad usage exits 2 with one line, a server that cannot start
// (app, port, pid file) exits 1 with one line, before anything is bound.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

import { afterAll, afterEach, describe, expect, it } from 'vitest';

import { OPTIONS } from '../lib/runner/options';
import { EXAMPLES, freePort, killAll, removeTmpDirs, Runner, runCli, tmpDir } from './runner-helpers';

afterEach(killAll);
afterAll(removeTmpDirs);

const APP = path.join(EXAMPLES, 'app.js');

/** One line on stderr, nothing that looks like a stack trace. */
function expectOneLine(stderr: string, re: RegExp): void {
  const lines = stderr.split('\n').filter((l) => l !== '');
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^feersum-ts: /);
  expect(lines[0]).toMatch(re);
  expect(stderr).not.toMatch(/\n\s+at /);
}

/** An option's entry in --help: its name line (from the name on) and the indented description that follows. */
function helpEntry(help: string, opt: string): string {
  const lines = help.split('\n');
  const at = lines.findIndex((l) => new RegExp(`(^|\\s)${opt}(=|$)`).test(l));
  expect(at, `${opt} in --help`).toBeGreaterThanOrEqual(0);
  let end = at + 1;
  while (lines[end]?.startsWith('        ')) end++;
  return [lines[at].slice(lines[at].indexOf(opt)), ...lines.slice(at + 1, end).map((l) => l.trim())].join(' ');
}

describe('help and version', () => {
  it('--help lists every option with its default, and exits 0', async () => {
    const r = await runCli(['--help']);
    expect(r.code).toBe(0);
    for (const o of OPTIONS) {
      expect(r.stdout).toContain(`--${o.name}`);
      for (const a of o.aliases ?? []) expect(r.stdout).toContain(`--${a}`);
    }
    for (const [opt, def] of [
      ['--port', '5000'],
      ['--pre-fork', '0'],
      ['--max-reqs-per-child', '1000'],
      ['--timeout', '60'],
      ['--keepalive-timeout', '75'],
      ['--max-keepalive-reqs', '1000'],
      ['--shutdown-timeout', '30'],
      ['--spawn-interval', '0'],
      ['--backlog', '511'],
      ['--socket', 'none'],
      ['--error-log', 'stderr'],
      ['--ssl-verify-client', 'optional with --ssl-ca-file, else none'],
    ]) {
      expect(helpEntry(r.stdout, opt), opt).toContain(`[default: ${def}]`);
    }
    // Every setting shows its default; --help and --version are actions, not settings.
    for (const o of OPTIONS.filter((o) => o.name !== 'help' && o.name !== 'version')) {
      expect(helpEntry(r.stdout, `--${o.name}`), o.name).toMatch(/\[default: [^\]]+\]/);
    }
    expect(helpEntry(r.stdout, '--ssl-verify-client')).toMatch(/^--ssl-verify-client=none\|optional\|require /);
    expect((await runCli(['-h'])).stdout).toBe(r.stdout);
  });

  it('--version prints the package version', async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { version: string };
    const r = await runCli(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^feersum-ts ${pkg.version.replace(/\./g, '\\.')} `));
  });
});

describe('bad usage: exit status 2, one line', () => {
  const cases: Array<[string, string[], RegExp]> = [
    ['unknown option', ['--bogus', APP], /unknown option --bogus/],
    ['unknown short option', ['-x', APP], /unknown option -x/],
    ['misspelt option', ['--pre-frok=2', APP], /unknown option --pre-frok/],
    ['no application', [], /no application given/],
    ['two applications', [APP, APP], /one application only/],
    ['option without its value', [APP, '--port'], /--port needs a value/],
    ['flag with a value', ['--quiet=yes', APP], /--quiet takes no value/],
    ['bad --pre-fork', ['--pre-fork=abc', APP], /--pre-fork: 'abc' is not a whole number/],
    ['negative --workers', ['--workers', '-1', APP], /--pre-fork: '-1' is not a whole number/],
    ['fractional --max-workers', ['--max-workers=1.5', APP], /--pre-fork: '1\.5' is not a whole number/],
    ['bad --port', ['--port=70000', APP], /--port: '70000' is not a port number/],
    ['bad --listen port', ['--listen', '127.0.0.1:http', APP], /--listen: '127\.0\.0\.1:http' is not/],
    ['bad --listen form', ['--listen', 'localhost', APP], /--listen: 'localhost' is not HOST:PORT/],
    ['unbracketed IPv6', ['--listen', '::1:8080', APP], /brackets/],
    ['bad --timeout', ['--timeout=soon', APP], /--timeout: 'soon' is not a number of seconds/],
    ['bad --keepalive-timeout', ['--keepalive-timeout=-3', APP], /--keepalive-timeout: '-3'/],
    ['bad --max-keepalive-reqs', ['--max-keepalive-reqs=many', APP], /--max-keepalive-reqs: 'many'/],
    ['--max-reqs-per-child not a number', ['--max-reqs-per-child=1e3', APP], /--max-reqs-per-child: '1e3'/],
    ['bad --spawn-interval', ['--spawn-interval=x', APP], /--spawn-interval: 'x'/],
    ['bad --shutdown-timeout', ['--shutdown-timeout=', APP], /--shutdown-timeout: '' is not/],
    ['bad --socket-mode', ['--socket-mode=999', APP], /--socket-mode: '999' is not an octal mode/],
    ['bad --backlog', ['--backlog=0', APP], /--backlog must be at least 1/],
    ['--host with --listen', ['--listen', ':8080', '--host', '127.0.0.1', APP], /cannot be combined with --listen/],
    ['--port with --listen', ['--listen', ':8080', '--port', '8081', APP], /cannot be combined with --listen/],
    ['min above max reqs', ['--min-reqs-per-child=100', '--max-reqs-per-child=10', APP], /--min-reqs-per-child \(100\) is more than/],
    ['--daemonize with access log on stdout', ['--daemonize', '--access-log', '-', APP], /--daemonize closes/],
    ['--access-log-format alone', ['--access-log-format=common', APP], /--access-log-format needs --access-log/],
    ['bad access log format', ['--access-log=/dev/null', '--access-log-format=%h %Z', APP], /unknown directive %Z/],
    ['--ssl-key-file without TLS', ['--ssl-key-file=k.pem', APP], /--ssl-key-file needs --ssl or an https:\/\/ listener/],
    ['https without key files', ['--listen', 'https://127.0.0.1:8443', APP], /need --ssl-key-file and --ssl-cert-file/],
    ['--ssl without key files', ['--ssl', APP], /need --ssl-key-file and --ssl-cert-file/],
    ['--ssl-verify-client without a CA', ['--ssl', '--ssl-key-file=k', '--ssl-cert-file=c', '--ssl-verify-client', APP], /--ssl-verify-client=require needs --ssl-ca-file/],
    ['--ssl-verify-client=optional without a CA', ['--ssl', '--ssl-key-file=k', '--ssl-cert-file=c', '--ssl-verify-client=optional', APP], /--ssl-verify-client=optional needs --ssl-ca-file/],
    ['--ssl-verify-client require without a CA', ['--ssl', '--ssl-key-file=k', '--ssl-cert-file=c', '--ssl-verify-client', 'require', APP], /--ssl-verify-client=require needs --ssl-ca-file/],
    ['bad --ssl-verify-client', ['--ssl', '--ssl-key-file=k', '--ssl-cert-file=c', '--ssl-ca-file=ca', '--ssl-verify-client=maybe', APP], /--ssl-verify-client: 'maybe' is not none, optional or require/],
    ['empty --ssl-verify-client', ['--ssl', '--ssl-key-file=k', '--ssl-cert-file=c', '--ssl-ca-file=ca', '--ssl-verify-client=', APP], /--ssl-verify-client: '' is not none, optional or require/],
    ['--ssl-verify-client=REQUIRE (modes are lower case)', ['--ssl', '--ssl-key-file=k', '--ssl-cert-file=c', '--ssl-ca-file=ca', '--ssl-verify-client=REQUIRE', APP], /'REQUIRE' is not none, optional or require/],
    // Two words, the value misspelt: it cannot be told from an app path, so it becomes a second one.
    ['misspelt --ssl-verify-client value', ['--ssl', '--ssl-key-file=k', '--ssl-cert-file=c', '--ssl-verify-client', 'requried', APP], /one application only, got 2: 'requried' .*\(--ssl-verify-client takes none, optional or require\)$/],
    ['--ssl-verify-client without TLS', ['--ssl-verify-client=none', APP], /--ssl-verify-client needs --ssl or an https:\/\/ listener/],
    ['--error-log -', ['--error-log=-', APP], /--error-log needs a file name/],
  ];
  for (const [name, args, re] of cases) {
    it(name, async () => {
      const r = await runCli(args);
      expect(r.code, r.stderr).toBe(2);
      expectOneLine(r.stderr, re);
      expect(r.stdout).toBe('');
    });
  }
});

describe('cannot start: exit status 1, one line, nothing bound', () => {
  const dir = tmpDir();
  const write = (name: string, text: string) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, text);
    return p;
  };
  const apps: Array<[string, string, RegExp]> = [
    ['a missing file', path.join(dir, 'nope.js'), /cannot load .*nope\.js: no such file/],
    ['a directory', dir, /it is a directory/],
    ['a module that throws', write('throws.js', '\n\nthrow new Error("database is down");\n'), /throws\.js failed to load: Error: database is down \(line 3\)/],
    ['a syntax error', write('syntax.js', 'module.exports = (env) => {\n  let x = ;\n};\n'), /syntax\.js failed to load: SyntaxError: Unexpected token ';' \(line 2\)/],
    ['an ESM syntax error', write('syntax.mjs', 'export default function (env) {\n'), /syntax\.mjs failed to load: SyntaxError/],
    ['a missing dependency', write('dep.js', 'require("no-such-package-here");\n'), /dep\.js failed to load: Cannot find module 'no-such-package-here'/],
    ['an object export', write('object.js', 'module.exports = { app: () => [200, [], []] };\n'), /object\.js does not export a function \(it exports a value of type object\).*module\.exports = app/],
    ['no export at all', write('empty.mjs', 'const x = 1;\n'), /empty\.mjs does not export a function \(it exports nothing\)/],
    ['a rejected promise', write('reject.js', 'module.exports = Promise.reject(new Error("no config"));\n'), /reject\.js failed to load: its exported promise rejected: Error: no config/],
  ];
  for (const mode of [[], ['--pre-fork=2']]) {
    for (const [name, app, re] of apps) {
      it(`${name}${mode.length ? ' (pre-fork)' : ''}`, async () => {
        // A Unix socket listener shows whether anything was bound: its file would exist.
        const sock = path.join(dir, `s-${Math.random().toString(36).slice(2)}.sock`);
        const r = await runCli([...mode, '--listen', sock, app]);
        expect(r.code, r.stderr).toBe(1);
        expectOneLine(r.stderr, re);
        expect(fs.existsSync(sock)).toBe(false);
      });
    }
  }

  it('a port in use fails fast with a clear message (single and pre-fork)', async () => {
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as net.AddressInfo).port;
    try {
      for (const mode of [[], ['--pre-fork=3']]) {
        const start = Date.now();
        const r = await runCli([...mode, '--listen', `127.0.0.1:${port}`, APP]);
        expect(r.code, r.stderr).toBe(1);
        expectOneLine(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: address already in use`));
        expect(Date.now() - start).toBeLessThan(10000);
      }
    } finally {
      holder.close();
    }
  });

  it('a second listener failing releases the first (its socket file is removed)', async () => {
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as net.AddressInfo).port;
    const sock = path.join(dir, 'first.sock');
    try {
      const r = await runCli(['--listen', sock, '--listen', `127.0.0.1:${port}`, APP]);
      expect(r.code).toBe(1);
      expectOneLine(r.stderr, /address already in use/);
      expect(fs.existsSync(sock)).toBe(false);
    } finally {
      holder.close();
    }
  });

  it('a host name that does not resolve', async () => {
    const r = await runCli(['--listen', 'no-such-host.invalid:8080', APP]);
    expect(r.code).toBe(1);
    expectOneLine(r.stderr, /cannot resolve host name 'no-such-host\.invalid'/);
  });

  it('a pid file held by a live process refuses to start; a stale one is replaced', async () => {
    const pidFile = path.join(dir, 'held.pid');
    fs.writeFileSync(pidFile, `${process.pid}\n`); // this test process: alive
    const port = await freePort();
    const r = await runCli(['--pid-file', pidFile, '--listen', `127.0.0.1:${port}`, APP]);
    expect(r.code).toBe(1);
    expectOneLine(r.stderr, new RegExp(`pid file .*held\\.pid belongs to running process ${process.pid}`));
    expect(fs.readFileSync(pidFile, 'utf8')).toBe(`${process.pid}\n`); // untouched

    // A pid that no longer runs: the runner takes the file over.
    fs.writeFileSync(pidFile, '2147483646\n');
    const runner = new Runner(['--pid-file', pidFile, '--listen', `127.0.0.1:${port}`, APP]);
    await runner.listeningPort();
    expect(fs.readFileSync(pidFile, 'utf8')).toBe(`${runner.pid}\n`);
    runner.signal('SIGTERM');
    expect((await runner.waitExit()).code).toBe(0);
    expect(fs.existsSync(pidFile)).toBe(false);
  });

  it('an error log that cannot be opened', async () => {
    const r = await runCli(['--error-log', path.join(dir, 'no-dir', 'e.log'), APP]);
    expect(r.code).toBe(1);
    expectOneLine(r.stderr, /cannot open log file .*e\.log: no such directory/);
  });

  it('a Unix socket path taken by a regular file, or by a live server', async () => {
    const file = write('taken.sock', 'not a socket');
    let r = await runCli(['--listen', file, APP]);
    expect(r.code).toBe(1);
    expectOneLine(r.stderr, /taken\.sock exists and is not a socket/);

    const live = path.join(dir, 'live.sock');
    const server = net.createServer((c) => c.destroy());
    await new Promise<void>((res) => server.listen(live, res));
    try {
      r = await runCli(['--listen', live, APP]);
      expect(r.code).toBe(1);
      expectOneLine(r.stderr, /another server is accepting connections on .*live\.sock/);
    } finally {
      server.close();
    }
  });
});
