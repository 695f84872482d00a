// The runner's pure parts, without processes: listener forms, option
// parsing into a configuration, and access log formatting.
import { describe, expect, it } from 'vitest';

import { type AccessRecord, clfTime, compileAccessLogFormat } from '../lib/runner/access-log';
import { UsageError } from '../lib/runner/errors';
import { describeAddress, parseListen } from '../lib/runner/listen-spec';
import { parseArgs, type RunnerConfig } from '../lib/runner/options';
import type { FeersumRequest } from '../lib/request';

describe('listener forms', () => {
  const cases: Array<[string, object]> = [
    ['127.0.0.1:8080', { kind: 'tcp', host: '127.0.0.1', port: 8080, tls: false }],
    ['localhost:80', { kind: 'tcp', host: 'localhost', port: 80 }],
    [':8080', { kind: 'tcp', host: undefined, port: 8080 }],
    ['*:8080', { kind: 'tcp', host: undefined, port: 8080 }],
    ['8080', { kind: 'tcp', host: undefined, port: 8080 }],
    ['[::1]:8080', { kind: 'tcp', host: '::1', port: 8080 }],
    ['[fe80::1%eth0]:80', { kind: 'tcp', host: 'fe80::1%eth0', port: 80 }],
    ['http://0.0.0.0:80/', { kind: 'tcp', host: '0.0.0.0', port: 80, tls: false }],
    ['https://example.com:443', { kind: 'tcp', host: 'example.com', port: 443, tls: true }],
    ['127.0.0.1:443:ssl', { kind: 'tcp', host: '127.0.0.1', port: 443, tls: true }],
    ['/run/app.sock', { kind: 'unix', path: '/run/app.sock' }],
    ['./app.sock', { kind: 'unix', path: './app.sock' }],
    ['run/app.sock', { kind: 'unix', path: 'run/app.sock' }],
    ['unix:app.sock', { kind: 'unix', path: 'app.sock' }],
    ['@feersum', { kind: 'unix', path: '@feersum' }],
  ];
  for (const [text, want] of cases) {
    it(text, () => expect(parseListen(text)).toMatchObject({ ...want, text }));
  }
  for (const bad of ['', 'localhost', '127.0.0.1:99999', '::1:80', '@', 'unix:', 'https:///x.sock', `/${'x'.repeat(120)}`]) {
    it(`refuses '${bad.length > 20 ? bad.slice(0, 20) + '...' : bad}'`, () => expect(() => parseListen(bad)).toThrow(UsageError));
  }
  it('describes addresses as URLs', () => {
    expect(describeAddress({ family: 'IPv4', address: '127.0.0.1', port: 80 })).toBe('http://127.0.0.1:80');
    expect(describeAddress({ family: 'IPv6', address: '::', port: 80 })).toBe('http://[::]:80');
    expect(describeAddress({ family: 'unix', address: '@x', port: 0 })).toBe('unix:@x');
  });
});

describe('option parsing', () => {
  const run = (args: string[]): RunnerConfig => {
    const r = parseArgs(args, '/srv');
    if (r.kind !== 'run') throw new Error(r.kind);
    return r.config;
  };

  it('has the documented defaults', () => {
    const c = run(['app.js']);
    expect(c).toMatchObject({
      app: '/srv/app.js',
      native: false,
      preFork: 0,
      maxReqsPerChild: 1000,
      minReqsPerChild: undefined,
      spawnInterval: 0,
      shutdownTimeout: 30,
      backlog: 511,
      engine: {},
      accessLogFormat: 'combined',
      productName: 'feersum-ts',
      daemonize: false,
      quiet: false,
      listenGiven: false,
    });
    expect(c.listen).toEqual([{ kind: 'tcp', host: undefined, port: 5000, tls: false, text: '*:5000' }]);
  });

  it('maps the HTTP options to engine options, in seconds', () => {
    const c = run(['--timeout=2.5', '--keepalive-timeout', '5', '--max-keepalive-reqs=1', '--header-timeout=.5', 'app.js']);
    expect(c.engine).toEqual({ readTimeout: 2.5, keepaliveTimeout: 5, maxKeepaliveRequests: 1, headerTimeout: 0.5 });
  });

  it('accepts --workers and --max-workers for --pre-fork, and short options', () => {
    expect(run(['--workers=3', 'a.js']).preFork).toBe(3);
    expect(run(['--max-workers', '4', 'a.js']).preFork).toBe(4);
    const c = run(['-p', '8080', '-o', '127.0.0.1', '-D', '-q', '--error-log', 'e.log', 'a.js']);
    expect(c.listen).toMatchObject([{ host: '127.0.0.1', port: 8080 }]);
    expect(c).toMatchObject({ daemonize: true, quiet: true, errorLog: '/srv/e.log', listenGiven: true });
  });

  it('collects --listen and --socket in order; --socket alone means no TCP listener', () => {
    expect(run(['--listen', ':1', '--listen', '/s', '--socket', 'b.sock', 'a.js']).listen.map((l) => l.text)).toEqual([':1', '/s', './b.sock']);
    expect(run(['--socket', '@x', 'a.js']).listen).toEqual([{ kind: 'unix', path: '@x', text: '@x' }]);
    expect(run(['--socket', '@x', '--port', '81', 'a.js']).listen.map((l) => l.text)).toEqual(['@x', '*:81']);
  });

  it('reads --socket-mode as octal and resolves log and pid paths', () => {
    const c = run(['--socket-mode=660', '--access-log', 'logs/a.log', '--pid-file=/run/x.pid', 'a.js']);
    expect(c.socketMode).toBe(0o660);
    expect(c.accessLog).toBe('/srv/logs/a.log');
    expect(c.pidFile).toBe('/run/x.pid');
    expect(run(['--access-log', '-', 'a.js']).accessLog).toBe('-');
  });

  it('answers --help and --version before anything else', () => {
    expect(parseArgs(['--pre-fork=x', '--help']).kind).toBe('help'); // values are not checked then
    expect(parseArgs(['app.js', '--version']).kind).toBe('version');
  });

  it('reads --ssl-verify-client as none, optional or require; alone it means require', () => {
    const tls = ['--ssl', '--ssl-key-file=k', '--ssl-cert-file=c'];
    const ca = [...tls, '--ssl-ca-file=ca.pem'];
    expect(run([...tls, 'a.js']).ssl.verifyClient).toBe('none');
    expect(run([...ca, 'a.js']).ssl.verifyClient).toBe('optional'); // a CA file alone asks, without insisting
    expect(run([...ca, '--ssl-verify-client=none', 'a.js']).ssl.verifyClient).toBe('none');
    expect(run([...ca, '--ssl-verify-client', 'require', 'a.js']).ssl.verifyClient).toBe('require');
    expect(run([...ca, '--ssl-verify-client', 'optional', 'a.js'])).toMatchObject({ app: '/srv/a.js', ssl: { verifyClient: 'optional' } });
    // Alone, before the app path, before another option, last, or before --: require, and the app is the app.
    expect(run([...ca, '--ssl-verify-client', 'a.js'])).toMatchObject({ app: '/srv/a.js', ssl: { verifyClient: 'require' } });
    expect(run([...ca, '--ssl-verify-client', '--quiet', 'a.js']).ssl.verifyClient).toBe('require');
    expect(run(['a.js', ...ca, '--ssl-verify-client']).ssl.verifyClient).toBe('require');
    expect(run([...ca, '--ssl-verify-client', '--', 'require'])).toMatchObject({ app: '/srv/require', ssl: { verifyClient: 'require' } });
    expect(() => run([...ca, '--ssl-verify-client=sometimes', 'a.js'])).toThrow(/'sometimes' is not none, optional or require/);
  });

  it('takes the app after --', () => {
    expect(run(['--', '--weird-name.js']).app).toBe('/srv/--weird-name.js');
  });
});

describe('access log formatting', () => {
  const req = (over: Partial<Record<string, unknown>> = {}) =>
    ({
      method: 'GET',
      uri: '/a?b=1',
      query: 'b=1',
      protocol: 'HTTP/1.1',
      remoteAddress: '10.0.0.1',
      _env: { REMOTE_USER: 'alice', SERVER_PORT: '80' },
      header: (n: string) => ({ 'user-agent': 'UA "x"\tz', referer: undefined })[n.toLowerCase()],
      ...over,
    }) as unknown as FeersumRequest;
  const record = (r: FeersumRequest, extra: Partial<AccessRecord> = {}): AccessRecord => ({
    req: r,
    startMs: Date.UTC(2026, 10, 21, 10, 0, 0),
    startHr: 1000,
    status: 200,
    bytes: 14,
    responseHeaders: ['Content-Type', 'text/plain'],
    ...extra,
  });

  it('formats combined with Apache escaping', () => {
    const line = compileAccessLogFormat('combined')(record(req()), 1000.5);
    expect(line).toMatch(/^10\.0\.0\.1 - alice \[21\/Nov\/2026:\d\d:00:00 [+-]\d{4}\] "GET \/a\?b=1 HTTP\/1\.1" 200 14 "-" "UA \\"x\\"\\x09z"\n$/);
  });

  it('formats the other directives', () => {
    const f = compileAccessLogFormat('%m|%U|%q|%H|%s|%b|%B|%{content-type}o|%{X}o|%{SERVER_PORT}e|%D|%{ms}T|%T|%%');
    expect(f(record(req(), { bytes: 0 }), 1000 + 1500.4)).toBe('GET|/a|?b=1|HTTP/1.1|200|-|0|text/plain|-|80|1500400|1500|1|%\n');
    expect(f(record(req({ _env: undefined }), { status: 0 }), 1000)).toMatch(/^GET\|\/a\|\?b=1\|HTTP\/1\.1\|-\|/);
  });

  it('refuses unknown directives', () => {
    expect(() => compileAccessLogFormat('%Z')).toThrow(/unknown directive %Z/);
    expect(() => compileAccessLogFormat('%{x')).toThrow(/unterminated/);
    expect(() => compileAccessLogFormat('%i')).toThrow(/needs a header name/);
    expect(() => compileAccessLogFormat('%')).toThrow(/end of the format/);
  });

  it('formats time as [dd/Mon/yyyy:HH:MM:SS +zone], once per second', () => {
    const t = clfTime(Date.UTC(2026, 0, 2, 3, 4, 5, 600));
    expect(t).toMatch(/^\[\d\d\/(Jan|Feb)\/2026:\d\d:\d\d:05 [+-]\d{4}\]$/);
    expect(clfTime(Date.UTC(2026, 0, 2, 3, 4, 5, 900))).toBe(t);
  });
});
