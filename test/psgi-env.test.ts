// PSGI conformance, part 1: the environment. Every key DESIGN.md lists,
// with its type and meaning, seen by an app over a real socket (undici,
// node:http, raw `net`): request line and headers, server and client
// addresses, psgi.input for every body shape, psgi.errors, Object.keys and
// spread of the env, Expect: 100-continue, psgix.harakiri.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';

import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';

import { Feersum, type PsgiApp, type PsgiEnv } from '../lib/index';
import { parseResponses, rawExchange, sleep, startPsgi, type TestServer, waitFor } from './helpers';

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** Starts an app that keeps the env of each request it answers. */
async function capture(options?: ConstructorParameters<typeof Feersum>[0], reply?: PsgiApp) {
  const envs: PsgiEnv[] = [];
  server = await startPsgi((env) => {
    envs.push(env);
    return reply ? reply(env) : [200, ['Content-Type', 'text/plain'], ['ok']];
  }, options);
  return envs;
}

const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

/** Reads a Readable to the end. */
async function readAll(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of r) parts.push(Buffer.from(chunk));
  return Buffer.concat(parts);
}

// The keys every env has (psgix.harakiri only under the pre-fork runner).
const REQUIRED_KEYS = [
  'REQUEST_METHOD',
  'SCRIPT_NAME',
  'PATH_INFO',
  'REQUEST_URI',
  'QUERY_STRING',
  'SERVER_NAME',
  'SERVER_PORT',
  'SERVER_PROTOCOL',
  'REMOTE_ADDR',
  'REMOTE_PORT',
  'psgi.version',
  'psgi.url_scheme',
  'psgi.input',
  'psgi.errors',
  'psgi.multithread',
  'psgi.multiprocess',
  'psgi.run_once',
  'psgi.nonblocking',
  'psgi.streaming',
  'psgix.input.buffered',
  'psgix.output.buffered',
  'psgix.output.guard',
  'psgix.io',
  'psgix.informational',
  'psgix.cleanup',
  'psgix.cleanup.handlers',
];

describe('env keys and types', () => {
  it('has every PSGI key with its type and meaning', async () => {
    const envs = await capture();
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: server!.port, path: '/hello/world?a=1&b=%20', agent: false }, resolve).on('error', reject);
    });
    res.resume();
    await new Promise((r) => res.on('end', r));
    expect(res.statusCode).toBe(200);
    const env = envs[0];
    for (const key of REQUIRED_KEYS) expect(Object.keys(env), key).toContain(key);

    expect(env.REQUEST_METHOD).toBe('GET');
    expect(env.SCRIPT_NAME).toBe('');
    expect(env.PATH_INFO).toBe('/hello/world');
    expect(env.REQUEST_URI).toBe('/hello/world?a=1&b=%20');
    expect(env.QUERY_STRING).toBe('a=1&b=%20');
    expect(env.SERVER_NAME).toBe('127.0.0.1');
    expect(env.SERVER_PORT).toBe(String(server!.port));
    expect(env.SERVER_PROTOCOL).toBe('HTTP/1.1');
    expect(env.REMOTE_ADDR).toBe('127.0.0.1');
    expect(typeof env.REMOTE_PORT).toBe('string');
    expect(env.REMOTE_PORT).toMatch(/^[1-9][0-9]*$/);
    expect(env.CONTENT_LENGTH).toBeUndefined();
    expect(env.CONTENT_TYPE).toBeUndefined();
    expect('CONTENT_LENGTH' in env).toBe(false);
    expect(env.HTTP_HOST).toBe(`127.0.0.1:${server!.port}`);

    expect(env['psgi.version']).toEqual([1, 1]);
    expect(env['psgi.url_scheme']).toBe('http');
    expect(env['psgi.input']).toBeInstanceOf(Readable);
    expect(env['psgi.errors']).toBe(process.stderr);
    expect(env['psgi.multithread']).toBe(false);
    expect(env['psgi.multiprocess']).toBe(false);
    expect(env['psgi.run_once']).toBe(false);
    expect(env['psgi.nonblocking']).toBe(true);
    expect(env['psgi.streaming']).toBe(true);
    expect(env['psgix.input.buffered']).toBe(true);
    expect(env['psgix.output.buffered']).toBe(true);
    expect(env['psgix.output.guard']).toBe(true);
    expect(typeof env['psgix.informational']).toBe('function');
    expect(env['psgix.cleanup']).toBe(true);
    expect(Array.isArray(env['psgix.cleanup.handlers'])).toBe(true);
    expect('psgix.harakiri' in env).toBe(false); // only under the pre-fork runner
  });

  it('REMOTE_PORT is the client socket port, as a string', async () => {
    const envs = await capture();
    const sock = net.connect(server!.port, '127.0.0.1');
    await new Promise((r) => sock.on('connect', r));
    const localPort = sock.localPort!;
    sock.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    sock.resume();
    await new Promise((r) => sock.on('close', r));
    expect(envs[0].REMOTE_PORT).toBe(String(localPort));
  });

  it('QUERY_STRING is empty when there is no query, and never includes "?"', async () => {
    const envs = await capture();
    await rawExchange(
      server!.port,
      'GET /a HTTP/1.1\r\nHost: x\r\n\r\n' +
        'GET /b? HTTP/1.1\r\nHost: x\r\n\r\n' +
        'GET /c?x=%41&y HTTP/1.1\r\nHost: x\r\n\r\n' +
        'GET /d?q=1?2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    expect(envs.map((e) => [e.PATH_INFO, e.QUERY_STRING, e.REQUEST_URI])).toEqual([
      ['/a', '', '/a'],
      ['/b', '', '/b?'],
      ['/c', 'x=%41&y', '/c?x=%41&y'],
      ['/d', 'q=1?2', '/d?q=1?2'],
    ]);
  });

  it('SERVER_PROTOCOL follows the request; HTTP/1.0 requests work', async () => {
    const envs = await capture();
    const { data } = await rawExchange(server!.port, 'GET / HTTP/1.0\r\n\r\n');
    expect(envs[0].SERVER_PROTOCOL).toBe('HTTP/1.0');
    expect(envs[0].HTTP_HOST).toBeUndefined();
    expect(data.toString()).toMatch(/^HTTP\/1\.[01] 200 /);
  });

  it('other methods are passed as sent', async () => {
    const envs = await capture();
    for (const method of ['PUT', 'DELETE', 'OPTIONS', 'PATCH', 'PROPFIND']) {
      const r = await request(`http://127.0.0.1:${server!.port}/m`, { method });
      await r.body.dump();
    }
    expect(envs.map((e) => e.REQUEST_METHOD)).toEqual(['PUT', 'DELETE', 'OPTIONS', 'PATCH', 'PROPFIND']);
  });
});

describe('SERVER_NAME and SERVER_PORT', () => {
  it('come from the listening socket, never from the Host header', async () => {
    const envs = await capture();
    await rawExchange(server!.port, 'GET / HTTP/1.1\r\nHost: evil.example:9999\r\nConnection: close\r\n\r\n');
    expect(envs[0].SERVER_NAME).toBe('127.0.0.1');
    expect(envs[0].SERVER_PORT).toBe(String(server!.port));
    expect(envs[0].HTTP_HOST).toBe('evil.example:9999');
  });

  it('setServerNameAndPort overrides them (as strings)', async () => {
    const envs = await capture();
    server!.engine.setServerNameAndPort('www.example.com', 8080);
    await rawExchange(server!.port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(envs[0].SERVER_NAME).toBe('www.example.com');
    expect(envs[0].SERVER_PORT).toBe('8080');
  });

  it('over a Unix socket: SERVER_NAME localhost, REMOTE_ADDR 127.0.0.1, REMOTE_PORT "0"', async () => {
    const envs: PsgiEnv[] = [];
    const engine = new Feersum();
    engine.onError(() => {});
    engine.psgiRequestHandler((env) => {
      envs.push(env);
      return [200, [], ['unix']];
    });
    const sockPath = path.join(os.tmpdir(), `feersum-psgi-${process.pid}-${Date.now()}.sock`);
    await engine.listen({ path: sockPath });
    try {
      const body = await new Promise<string>((resolve, reject) => {
        http
          .get({ socketPath: sockPath, path: '/u', agent: false }, (res) => {
            let t = '';
            res.on('data', (d) => (t += d));
            res.on('end', () => resolve(t));
          })
          .on('error', reject);
      });
      expect(body).toBe('unix');
      const env = envs[0];
      expect(env.SERVER_NAME).toBe('localhost');
      expect(typeof env.SERVER_PORT).toBe('string');
      expect(env.REMOTE_ADDR).toBe('127.0.0.1');
      expect(env.REMOTE_PORT).toBe('0');
    } finally {
      await engine.gracefulShutdown();
      fs.rmSync(sockPath, { force: true });
    }
  });
});

describe('PATH_INFO and REQUEST_URI', () => {
  const cases: Array<[string, string]> = [
    ['/plain/path', '/plain/path'],
    ['/a%20b', '/a b'],
    ['/caf%C3%A9', '/café'],
    ['/caf%c3%a9', '/café'], // lower-case hex
    ['/a%2Fb', '/a/b'], // an encoded slash is decoded like any byte (Plack does the same)
    ['/a%252Fb', '/a%2Fb'], // double encoding is decoded once only
    ['/%FF%FE', '\xff\xfe'], // not UTF-8: one character per byte (latin1)
    ['/%C3', '\xc3'], // truncated UTF-8 sequence
    ['/%E2%82%AC', '/€'.slice(1)], // filled in below
    ['//a///b//', '//a///b//'], // repeated slashes are kept
    ['/100%', '/100%'], // a '%' without two hex digits stays as it is
    ['/a%zzb', '/a%zzb'],
    ['/a%2', '/a%2'],
    ['/+plus+', '/+plus+'], // '+' is not a space in a path
    ['/a/./b/../c', '/a/./b/../c'], // dot segments are the app's business
  ];
  cases[6][1] = '/' + cases[6][1];
  cases[7][1] = '/' + cases[7][1];
  cases[8][1] = '/€';

  it('percent-decodes PATH_INFO (UTF-8, else latin1 per byte) and keeps REQUEST_URI raw', async () => {
    const envs = await capture();
    const reqs = cases.map(([raw]) => `GET ${raw}?q=%2F HTTP/1.1\r\nHost: x\r\n\r\n`).join('');
    const { data } = await rawExchange(server!.port, reqs + 'GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(parseResponses(data).map((r) => r.status)).toEqual([...cases.map(() => 200), 200]);
    cases.forEach(([raw, decoded], i) => {
      expect(envs[i].PATH_INFO, raw).toBe(decoded);
      expect(envs[i].REQUEST_URI, raw).toBe(`${raw}?q=%2F`);
      expect(envs[i].QUERY_STRING, raw).toBe('q=%2F'); // the query is never decoded
    });
  });

  it('absolute-form targets: REQUEST_URI as sent', async () => {
    const envs = await capture();
    const { data } = await rawExchange(
      server!.port,
      'GET http://example.com/abs/p%20q?z=1 HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n',
    );
    expect(parseResponses(data)[0].status).toBe(200);
    expect(envs[0].REQUEST_URI).toBe('http://example.com/abs/p%20q?z=1');
    expect(envs[0].QUERY_STRING).toBe('z=1');
  });
});

describe('request headers', () => {
  it('HTTP_* for every header: upper-cased, "-" to "_", repeats joined with ", ", Cookie with "; "', async () => {
    const envs = await capture();
    await rawExchange(
      server!.port,
      'GET / HTTP/1.1\r\nHost: x\r\n' +
        'X-Multi: a\r\nAccept: text/html\r\nx-multi: b\r\nX-MULTI: c\r\n' +
        'Cookie: a=1\r\nCookie: b=2; c=3\r\n' +
        'Authorization: Basic dXNlcjpwYXNz\r\n' +
        'X-Empty:\r\nUser-Agent: test/1.0\r\nX-Spaces:   padded value   \r\n' +
        'Connection: close\r\n\r\n',
    );
    const env = envs[0];
    expect(env.HTTP_X_MULTI).toBe('a, b, c');
    expect(env.HTTP_ACCEPT).toBe('text/html');
    expect(env.HTTP_COOKIE).toBe('a=1; b=2; c=3');
    expect(env.HTTP_AUTHORIZATION).toBe('Basic dXNlcjpwYXNz');
    expect(env.HTTP_X_EMPTY).toBe('');
    expect(env.HTTP_USER_AGENT).toBe('test/1.0');
    expect(env.HTTP_X_SPACES).toBe('padded value');
    expect(env.HTTP_CONNECTION).toBe('close');
    expect(env.HTTP_HOST).toBe('x');
  });

  it('multi-valued headers from undici arrive joined', async () => {
    const envs = await capture();
    const r = await request(`http://127.0.0.1:${server!.port}/`, {
      headers: { 'x-list': ['one', 'two'], cookie: ['k1=v1', 'k2=v2'], authorization: 'Bearer abc.def' },
    });
    await r.body.dump();
    expect(envs[0].HTTP_X_LIST).toBe('one, two');
    expect(envs[0].HTTP_COOKIE).toBe('k1=v1; k2=v2');
    expect(envs[0].HTTP_AUTHORIZATION).toBe('Bearer abc.def');
  });

  it('Content-Length and Content-Type are CONTENT_*, never HTTP_CONTENT_*', async () => {
    const envs = await capture();
    const r = await request(`http://127.0.0.1:${server!.port}/p`, {
      method: 'POST',
      headers: { 'content-type': 'application/json; charset=utf-8', 'content-md5': 'x' },
      body: '{"a":1}',
    });
    await r.body.dump();
    const env = envs[0];
    expect(env.CONTENT_LENGTH).toBe('7');
    expect(typeof env.CONTENT_LENGTH).toBe('string');
    expect(env.CONTENT_TYPE).toBe('application/json; charset=utf-8');
    expect(env.HTTP_CONTENT_LENGTH).toBeUndefined();
    expect(env.HTTP_CONTENT_TYPE).toBeUndefined();
    expect(env.HTTP_CONTENT_MD5).toBe('x'); // other Content-* headers are ordinary
    expect(Object.keys(env).filter((k) => k.startsWith('HTTP_CONTENT_'))).toEqual(['HTTP_CONTENT_MD5']);
  });

  it('a chunked request has no CONTENT_LENGTH', async () => {
    const envs = await capture(undefined, (env) => {
      return readAll(env['psgi.input']).then((b) => [200, [], [b.toString()]]);
    });
    const { data } = await rawExchange(
      server!.port,
      'POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n' +
        '5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n',
    );
    expect(parseResponses(data)[0].body.toString()).toBe('hello world');
    expect(envs[0].CONTENT_LENGTH).toBeUndefined();
    expect(envs[0].CONTENT_TYPE).toBe('text/plain');
    expect(envs[0].HTTP_TRANSFER_ENCODING).toBe('chunked');
  });

  it('header names with "_" are dropped by default', async () => {
    const envs = await capture();
    await rawExchange(
      server!.port,
      'GET / HTTP/1.1\r\nHost: x\r\nX_Forwarded_For: 6.6.6.6\r\nX-Forwarded-For: 1.2.3.4\r\nConnection: close\r\n\r\n',
    );
    expect(envs[0].HTTP_X_FORWARDED_FOR).toBe('1.2.3.4');
  });

  it('allowUnderscoreHeaders passes them through', async () => {
    const envs = await capture({ allowUnderscoreHeaders: true });
    await rawExchange(server!.port, 'GET / HTTP/1.1\r\nHost: x\r\nX_Custom_Thing: yes\r\nConnection: close\r\n\r\n');
    expect(envs[0].HTTP_X_CUSTOM_THING).toBe('yes');
  });
});

describe('request headers: spellings, special names, many names', () => {
  it('different spellings of one header are joined as repeats', async () => {
    const envs = await capture();
    await rawExchange(
      server!.port,
      'GET / HTTP/1.1\r\nHost: x\r\nX-Spell: 1\r\nx-spell: 2\r\nX-SPELL: 3\r\n\r\n' +
        'GET / HTTP/1.1\r\nHost: x\r\nx-spell: only\r\nConnection: close\r\n\r\n',
    );
    expect(envs[0].HTTP_X_SPELL).toBe('1, 2, 3');
    expect(envs[1].HTTP_X_SPELL).toBe('only'); // nothing carried over from the request before
  });

  it('with allowUnderscoreHeaders, X_A and X-A are the same key; Content_Length never poses as CONTENT_LENGTH', async () => {
    const envs = await capture({ allowUnderscoreHeaders: true });
    await rawExchange(
      server!.port,
      'POST / HTTP/1.1\r\nHost: x\r\nX-A: dash\r\nX_A: under\r\nContent_Length: 999\r\nContent_Type: evil\r\n' +
        'Content-Length: 2\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nok',
    );
    const env = envs[0];
    expect(env.HTTP_X_A).toBe('dash, under');
    expect(env.CONTENT_LENGTH).toBe('2');
    expect(env.CONTENT_TYPE).toBe('text/plain');
    expect(env.HTTP_CONTENT_LENGTH).toBeUndefined();
    expect(env.HTTP_CONTENT_TYPE).toBeUndefined();
  });

  it('an underscore name seen after its dash spelling is still dropped by default', async () => {
    const envs = await capture();
    await rawExchange(
      server!.port,
      'GET / HTTP/1.1\r\nHost: x\r\nX-Real-IP: 1.1.1.1\r\n\r\n' +
        'GET / HTTP/1.1\r\nHost: x\r\nX_Real_IP: 6.6.6.6\r\nConnection: close\r\n\r\n',
    );
    expect(envs[0].HTTP_X_REAL_IP).toBe('1.1.1.1');
    expect(envs[1].HTTP_X_REAL_IP).toBeUndefined();
  });

  it('thousands of distinct header names: repeats are still joined once the name cache is full', async () => {
    const envs = await capture({ maxHeaderCount: 200 });
    for (let r = 0; r < 15; r++) {
      const lines = Array.from({ length: 190 }, (_, i) => `X-Many-${r}-${i}: v\r\n`).join('');
      await rawExchange(server!.port, `GET /${r} HTTP/1.1\r\nHost: x\r\n${lines}Connection: close\r\n\r\n`);
    }
    await rawExchange(
      server!.port,
      'GET /last HTTP/1.1\r\nHost: x\r\nX-Fresh: a\r\nx-fresh: b\r\nX-Fresh: c\r\nConnection: close\r\n\r\n',
    );
    expect(envs).toHaveLength(16);
    expect(envs[3]['HTTP_X_MANY_3_189']).toBe('v');
    expect(Object.keys(envs[3]).filter((k) => k.startsWith('HTTP_X_MANY_'))).toHaveLength(190);
    expect(envs[15].HTTP_X_FRESH).toBe('a, b, c');
  });
});

describe('Object.keys and spread', () => {
  it('every key is present through Object.keys, for..in and a spread copy', async () => {
    const envs = await capture(undefined, (env) => {
      const copy = { ...env };
      for (const key of REQUIRED_KEYS) {
        if (!(key in copy)) return [500, [], [`spread lacks ${key}`]];
      }
      const forIn: string[] = [];
      for (const k in env) forIn.push(k);
      for (const key of REQUIRED_KEYS) {
        if (!forIn.includes(key)) return [500, [], [`for..in lacks ${key}`]];
      }
      return [200, [], ['ok']];
    });
    const r = await request(`http://127.0.0.1:${server!.port}/`);
    expect(await r.body.text()).toBe('ok');
    for (const key of REQUIRED_KEYS) expect(Object.keys(envs[0])).toContain(key);
  });

  it('a middleware spreading the env does not take the connection: responses and keep-alive go on', async () => {
    let spreadIo: unknown;
    server = await startPsgi((env) => {
      const copy = { ...env, 'myapp.extra': 1 };
      spreadIo = copy['psgix.io'];
      // The inner app sees the copy and answers normally, streaming even.
      return (respond) => {
        const w = respond([200, ['Content-Type', 'text/plain']])!;
        w.write(`path=${copy.PATH_INFO} `);
        w.write(`input=${copy['psgi.input'] === env['psgi.input']}`);
        w.close();
      };
    });
    const { data, closed } = await rawExchange(
      server.port,
      'GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\nGET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    const rs = parseResponses(data);
    expect(rs.map((r) => r.body.toString())).toEqual(['path=/one input=true', 'path=/two input=true', 'path=/three input=true']);
    expect(closed).toBe(true);
    expect(spreadIo).toBeInstanceOf(net.Socket); // the stand-in is a socket by type
    await waitFor(() => server!.engine.stats().connections === 0, 3000, 'connections to close');
  });

  it('JSON.stringify and util.inspect of the env do not take the connection', async () => {
    server = await startPsgi(async (env) => {
      const { inspect } = await import('node:util');
      const text = inspect(env, { depth: 0 });
      const json = JSON.stringify({ ...env, 'psgi.input': undefined, 'psgi.errors': undefined });
      return [200, [], [`${text.includes('psgix.io') ? 'inspect-ok' : 'inspect-missing'} ${json.length > 0}`]];
    });
    const { data } = await rawExchange(
      server.port,
      'GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    const rs = parseResponses(data);
    expect(rs.map((r) => r.body.toString())).toEqual(['inspect-ok true', 'inspect-ok true']);
  });

  it('keys the app assigns are kept, and psgi.input / psgix.io can be replaced', async () => {
    server = await startPsgi((env) => {
      env['myapp.user'] = 'u';
      env['psgi.input'] = Readable.from([Buffer.from('replaced')]);
      env['psgix.io'] = 'mine' as never;
      return readAll(env['psgi.input']).then((b) => [200, [], [`${b} ${env['myapp.user']} ${String(env['psgix.io'])}`]]);
    });
    const r = await request(`http://127.0.0.1:${server.port}/`);
    expect(await r.body.text()).toBe('replaced u mine');
  });
});

describe('psgi.input', () => {
  it('with no body: present, already ended, read() returns null', async () => {
    const results: unknown[] = [];
    server = await startPsgi((env) => {
      const input = env['psgi.input'];
      results.push(env['psgix.input.buffered'], input.read(), input.readableEnded || input.readableLength === 0);
      return readAll(input).then((b) => [200, [], [`len=${b.length}`]]);
    });
    const r = await request(`http://127.0.0.1:${server.port}/`);
    expect(await r.body.text()).toBe('len=0');
    expect(results).toEqual([true, null, true]);
  });

  it('a small body is buffered: psgix.input.buffered and a synchronous read() returns all of it', async () => {
    server = await startPsgi((env) => {
      const input = env['psgi.input'];
      const whole = input.read() as Buffer | null;
      return [200, [], [`${env['psgix.input.buffered']} ${whole?.toString()} ${input.read()}`]];
    });
    const r = await request(`http://127.0.0.1:${server.port}/`, { method: 'POST', body: 'name=value&x=y' });
    expect(await r.body.text()).toBe('true name=value&x=y null');
  });

  it('a buffered chunked body is read whole too', async () => {
    server = await startPsgi((env) => {
      const whole = env['psgi.input'].read() as Buffer | null;
      return [200, [], [`${env['psgix.input.buffered']} ${whole?.toString()}`]];
    });
    const { data } = await rawExchange(
      server.port,
      'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n',
    );
    expect(parseResponses(data)[0].body.toString()).toBe('true abcde');
  });

  it('a buffered psgi.input works with events, setEncoding, pipeline, toWeb, and stays the same object', async () => {
    const { pipeline } = await import('node:stream/promises');
    const { PassThrough } = await import('node:stream');
    server = await startPsgi(async (env) => {
      const input = env['psgi.input'];
      const same = input === env['psgi.input'] && input === { ...env }['psgi.input'];
      let out = '';
      if (env.PATH_INFO === '/events') {
        input.setEncoding('utf8');
        out = await new Promise<string>((resolve) => {
          let t = '';
          input.on('data', (d: string) => (t += d));
          input.once('end', () => resolve(t));
        });
      } else if (env.PATH_INFO === '/pipeline') {
        const sink = new PassThrough();
        const parts: Buffer[] = [];
        sink.on('data', (d: Buffer) => parts.push(d));
        await pipeline(input, sink);
        out = Buffer.concat(parts).toString();
      } else {
        const web = Readable.toWeb(input);
        out = await new Response(web as never).text();
      }
      return [200, [], [`${same} ${input instanceof Readable} ${out}`]];
    });
    for (const p of ['/events', '/pipeline', '/web']) {
      const r = await request(`http://127.0.0.1:${server.port}${p}`, { method: 'POST', body: `body for ${p}` });
      expect(await r.body.text()).toBe(`true true body for ${p}`);
    }
  });

  for (const [label, size] of [
    ['1 MB', 1024 * 1024],
    ['50 MB', 50 * 1024 * 1024],
  ] as const) {
    for (const chunked of [false, true]) {
      it(`a ${label} body ${chunked ? '(chunked) ' : ''}is streamed with the exact bytes`, async () => {
        const body = crypto.randomBytes(size);
        server = await startPsgi(async (env) => {
          const buffered = env['psgix.input.buffered'];
          const hash = crypto.createHash('sha256');
          let n = 0;
          for await (const chunk of env['psgi.input']) {
            hash.update(chunk);
            n += chunk.length;
          }
          return [200, ['Content-Type', 'text/plain'], [`${hash.digest('hex')} ${n} ${buffered}`]];
        });
        const text = await new Promise<string>((resolve, reject) => {
          const headers: Record<string, string | number> = { 'Content-Type': 'application/octet-stream' };
          if (!chunked) headers['Content-Length'] = body.length;
          const req = http.request(
            { host: '127.0.0.1', port: server!.port, method: 'POST', path: '/up', headers, agent: false },
            (res) => {
              let t = '';
              res.on('data', (d) => (t += d));
              res.on('end', () => resolve(t));
            },
          );
          req.on('error', reject);
          for (let i = 0; i < body.length; i += 256 * 1024) req.write(body.subarray(i, i + 256 * 1024));
          req.end();
        });
        expect(text).toBe(`${sha256(body)} ${size} false`);
      }, 30000);
    }
  }

  it('a streamed body is read with backpressure: a slow reader does not make the server buffer it all', async () => {
    const size = 32 * 1024 * 1024;
    let rssGrowth = 0;
    server = await startPsgi(async (env) => {
      const before = process.memoryUsage().rss;
      const input = env['psgi.input'];
      let n = 0;
      // Read nothing for a while: the client must stall, not the server fill up.
      await sleep(300);
      rssGrowth = process.memoryUsage().rss - before;
      for await (const chunk of input) n += chunk.length;
      return [200, [], [String(n)]];
    });
    const sock = net.connect(server.port, '127.0.0.1');
    await new Promise((r) => sock.on('connect', r));
    sock.write(`POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\nConnection: close\r\n\r\n`);
    const piece = Buffer.alloc(1024 * 1024, 120);
    let sent = 0;
    let stalled = false;
    const pump = () => {
      while (sent < size) {
        sent += piece.length;
        if (!sock.write(piece)) {
          stalled = true;
          sock.once('drain', pump);
          return;
        }
      }
    };
    pump();
    const chunks: Buffer[] = [];
    sock.on('data', (d) => chunks.push(d));
    await new Promise((r) => sock.on('close', r));
    expect(stalled).toBe(true);
    expect(rssGrowth).toBeLessThan(24 * 1024 * 1024);
    expect(parseResponses(Buffer.concat(chunks))[0].body.toString()).toBe(String(size));
  }, 20000);

  it('Expect: 100-continue gets "100 Continue" before the body is sent; a refused request never does', async () => {
    server = await startPsgi((env) => readAll(env['psgi.input']).then((b) => [200, [], [`got ${b.length}`]]), {
      maxBodySize: 1000,
    });
    const sock = net.connect(server.port, '127.0.0.1');
    const received: Buffer[] = [];
    sock.on('data', (d) => received.push(d));
    await new Promise((r) => sock.on('connect', r));
    sock.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
    await waitFor(() => Buffer.concat(received).toString().includes('\r\n\r\n'), 2000, '100 Continue');
    expect(Buffer.concat(received).toString()).toBe('HTTP/1.1 100 Continue\r\n\r\n');
    sock.write('hello');
    await waitFor(() => Buffer.concat(received).toString().includes('got 5'), 2000, 'the response');
    sock.destroy();

    const refused = await rawExchange(
      server.port,
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n',
    );
    const text = refused.data.toString();
    expect(text).toMatch(/^HTTP\/1\.1 413 /);
    expect(text).not.toContain('100 Continue');
  });
});

describe('psgi.errors and pre-fork keys', () => {
  it('psgi.errors is a Writable (stderr by default, or the engine.errors stream)', async () => {
    const written: string[] = [];
    server = await startPsgi((env) => {
      const ok = env['psgi.errors'] instanceof Writable || env['psgi.errors'] === process.stderr;
      env['psgi.errors'].write(`log line from ${env.PATH_INFO}\n`);
      return [200, [], [String(ok)]];
    });
    server.engine.errors = new Writable({
      write(chunk, _enc, cb) {
        written.push(String(chunk));
        cb();
      },
    });
    const r = await request(`http://127.0.0.1:${server.port}/e`);
    expect(await r.body.text()).toBe('true');
    expect(written).toEqual(['log line from /e\n']);
  });

  it('psgix.harakiri is set under a runner, and psgix.harakiri.commit calls it after the response', async () => {
    let calls = 0;
    let seen: PsgiEnv | undefined;
    server = await startPsgi((env) => {
      seen = env;
      if (env.PATH_INFO === '/die') env['psgix.harakiri.commit'] = true;
      return [200, [], ['bye']];
    });
    server.engine.harakiri = () => calls++;
    server.engine.multiprocess = true;
    let r = await request(`http://127.0.0.1:${server.port}/live`);
    expect(await r.body.text()).toBe('bye');
    expect(seen!['psgix.harakiri']).toBe(true);
    expect(seen!['psgi.multiprocess']).toBe(true);
    await sleep(50);
    expect(calls).toBe(0);
    r = await request(`http://127.0.0.1:${server.port}/die`);
    expect(await r.body.text()).toBe('bye');
    await waitFor(() => calls === 1, 2000, 'harakiri');
  });

  it('psgix.harakiri.commit set inside a delayed response is honoured after it', async () => {
    let calls = 0;
    server = await startPsgi((env) => (respond) => {
      env['psgix.harakiri.commit'] = true; // set after the app returned
      const w = respond([200, []])!;
      setTimeout(() => {
        w.write('bye');
        w.close();
      }, 10);
    });
    server.engine.harakiri = () => calls++;
    const r = await request(`http://127.0.0.1:${server.port}/`);
    expect(await r.body.text()).toBe('bye');
    await waitFor(() => calls === 1, 2000, 'harakiri after the streamed response');
  });
});
