// Every program in examples/ (and every deployment recipe in
// examples/deploy/) is run here the way its header comment says, and
// exercised over real sockets -- so the examples the README shows work.
import { execFile, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';

import { loadBinding } from '../lib/native';
import { CLI, ROOT, startProgram, startRunner, stopAll } from './example-helpers';

const execFileP = promisify(execFile);
const EX = path.join(ROOT, 'examples');
const HAS_RUNNER = fs.existsSync(CLI);

let tmp: string;
let certs: string;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'feersum-examples-'));
  certs = path.join(tmp, 'certs');
  await execFileP('sh', [path.join(EX, 'make-certs.sh'), certs]);
}, 30000);

afterEach(stopAll);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/**
 * Raw request/response on a fresh TCP connection: everything the server sends
 * until it closes. (No half-close: a client EOF aborts a pending response.)
 */
function raw(port: number, data: Buffer | string, ms = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1', () => sock.write(data));
    const chunks: Buffer[] = [];
    sock.on('data', (c) => chunks.push(c));
    sock.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' ? undefined : reject(e)));
    sock.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    sock.setTimeout(ms, () => sock.destroy());
  });
}

function httpsGet(port: number, opts: https.RequestOptions): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port, servername: 'localhost', agent: false, ...opts }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      })
      .on('error', reject);
  });
}

async function wsEcho(url: string, opts: WebSocket.ClientOptions = {}): Promise<Array<string | Buffer>> {
  const ws = new WebSocket(url, opts);
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const got: Array<string | Buffer> = [];
  const done = new Promise<void>((resolve) =>
    ws.on('message', (data: Buffer, isBinary) => {
      got.push(isBinary ? data : data.toString());
      if (got.length === 2) resolve();
    }),
  );
  ws.send('hello');
  ws.send(Buffer.from([1, 2, 3, 255]));
  await done;
  ws.close();
  await new Promise((resolve) => ws.once('close', resolve));
  return got;
}

describe('examples/hello.js', () => {
  it('answers with the method and URI', async () => {
    const p = startProgram(path.join(EX, 'hello.js'));
    const [{ port }] = await p.ready();
    const res = await fetch(`http://127.0.0.1:${port}/some/where?x=1`);
    expect(await res.text()).toBe('Hello from feersum-ts: GET /some/where?x=1\n');
    expect(await p.stop()).toBe(0); // SIGTERM: graceful shutdown, exit 0
  });
});

describe('examples/psgi.js', () => {
  it('runs standalone: GET and a POST body', async () => {
    const p = startProgram(path.join(EX, 'psgi.js'));
    const [{ port }] = await p.ready();
    expect(await (await fetch(`http://127.0.0.1:${port}/a%20b`)).text()).toBe('Hello from /a b\n');
    const res = await fetch(`http://127.0.0.1:${port}/upload`, { method: 'POST', body: 'x'.repeat(100000) });
    expect(await res.text()).toBe('POST /upload: got 100000 bytes\n');
  });

  it.skipIf(!HAS_RUNNER)('runs under the runner, with workers', async () => {
    const { port } = await startRunner(['--pre-fork=2', '--listen', '127.0.0.1:0', 'examples/psgi.js']);
    const res = await fetch(`http://127.0.0.1:${port}/w`);
    expect(await res.text()).toBe('Hello from /w\n');
  });
});

describe('examples/streaming.js', () => {
  it('streams a large count with pollCb, chunked', async () => {
    const p = startProgram(path.join(EX, 'streaming.js'));
    const [{ port }] = await p.ready();
    const res = await fetch(`http://127.0.0.1:${port}/count?to=300000`);
    expect(res.headers.get('transfer-encoding')).toBe('chunked');
    const lines = (await res.text()).split('\n');
    expect(lines.length).toBe(300001);
    expect(lines[0]).toBe('1');
    expect(lines[299999]).toBe('300000');
  });

  it('stops producing when the client goes away', async () => {
    const p = startProgram(path.join(EX, 'streaming.js'));
    const [{ port }] = await p.ready();
    await new Promise<void>((resolve) => {
      const sock = net.connect(port, '127.0.0.1', () => sock.write('GET /count?to=100000000 HTTP/1.1\r\nHost: x\r\n\r\n'));
      let n = 0;
      sock.on('data', (d) => {
        n += d.length;
        if (n > 1 << 20) {
          sock.destroy();
          resolve();
        }
      });
    });
    const deadline = Date.now() + 5000;
    while (!/client left at \d+ of 100000000/.test(p.stdout()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(p.stdout()).toMatch(/client left at \d+ of 100000000/);
  });
});

describe('examples/file-server.js', () => {
  it('serves a file with Content-Length, HEAD, 404 and no way out of its directory', async () => {
    const dir = path.join(tmp, 'www');
    fs.mkdirSync(dir, { recursive: true });
    const data = crypto.randomBytes(3 * 1024 * 1024 + 17);
    fs.writeFileSync(path.join(dir, 'big.bin'), data);
    fs.writeFileSync(path.join(tmp, 'secret.txt'), 'secret');
    const p = startProgram(path.join(EX, 'file-server.js'), [dir]);
    const [{ port }] = await p.ready();

    const res = await fetch(`http://127.0.0.1:${port}/big.bin`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe(String(data.length));
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    expect(Buffer.from(await res.arrayBuffer()).equals(data)).toBe(true);

    const head = await fetch(`http://127.0.0.1:${port}/big.bin`, { method: 'HEAD' });
    expect(head.headers.get('content-length')).toBe(String(data.length));
    expect((await fetch(`http://127.0.0.1:${port}/nope`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(404);

    for (const target of ['/../secret.txt', '/%2e%2e/secret.txt', '/..%2fsecret.txt']) {
      const answer = await raw(port, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      expect(answer, target).toMatch(/^HTTP\/1\.1 (403|404|400)/);
      expect(answer).not.toContain('secret\r\n');
      expect(answer.endsWith('secret')).toBe(false);
    }

    // many slow clients of the same file at once
    const all = await Promise.all(
      Array.from({ length: 8 }, () => fetch(`http://127.0.0.1:${port}/big.bin`).then((r) => r.arrayBuffer())),
    );
    for (const body of all) expect(Buffer.from(body).equals(data)).toBe(true);
  });
});

describe('examples/websocket-echo.js and websocket-echo-tls.js', () => {
  it('echoes text and binary over ws://, and answers plain HTTP', async () => {
    const p = startProgram(path.join(EX, 'websocket-echo.js'));
    const [{ port }] = await p.ready();
    expect(await wsEcho(`ws://127.0.0.1:${port}/echo`)).toEqual(['hello', Buffer.from([1, 2, 3, 255])]);
    expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe('connect a WebSocket client to /echo\n');
  });

  it('echoes over wss:// with the example certificates', async () => {
    const p = startProgram(path.join(EX, 'websocket-echo-tls.js'), [certs]);
    const [{ port }] = await p.ready();
    const ca = fs.readFileSync(path.join(certs, 'ca.pem'));
    expect(await wsEcho(`wss://127.0.0.1:${port}/echo`, { ca, servername: 'localhost' })).toEqual([
      'hello',
      Buffer.from([1, 2, 3, 255]),
    ]);
    expect((await httpsGet(port, { ca, path: '/' })).body).toBe('connect a WebSocket client to /echo\n');
  });
});

describe('examples/https-client-certs.js', () => {
  it('greets a client with a certificate, refuses one without', async () => {
    const p = startProgram(path.join(EX, 'https-client-certs.js'), [certs]);
    const [{ port }] = await p.ready();
    const ca = fs.readFileSync(path.join(certs, 'ca.pem'));
    const withCert = await httpsGet(port, {
      ca,
      cert: fs.readFileSync(path.join(certs, 'client.pem')),
      key: fs.readFileSync(path.join(certs, 'client-key.pem')),
    });
    expect(withCert.status).toBe(200);
    expect(withCert.body).toMatch(/^hello CN=alice,O=Example \(TLSv1\.[23], issued by CN=feersum-ts example CA\)\n$/);
    const without = await httpsGet(port, { ca });
    expect(without).toEqual({ status: 403, body: 'client certificate required (NONE)\n' });
  });
});

describe('examples/proxy-protocol.js', () => {
  it('takes the client address from PROXY v1 and v2 headers, refuses connections without one', async () => {
    const p = startProgram(path.join(EX, 'proxy-protocol.js'));
    const [{ port }] = await p.ready();
    const get = 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
    const v1 = await raw(port, `PROXY TCP4 203.0.113.7 127.0.0.1 51234 8080\r\n${get}`);
    expect(v1).toMatch(/^HTTP\/1\.1 200/);
    expect(v1).toContain('your address: 203.0.113.7:51234\n');

    const sig = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');
    const addr = Buffer.from([198, 51, 100, 9, 127, 0, 0, 1, 0xc3, 0x50, 0x1f, 0x90]); // 198.51.100.9:50000 -> 127.0.0.1:8080
    const v2 = await raw(port, Buffer.concat([sig, Buffer.from([0x21, 0x11, 0, addr.length]), addr, Buffer.from(get)]));
    expect(v2).toContain('your address: 198.51.100.9:50000\n');

    const none = await raw(port, get);
    expect(none).not.toMatch(/^HTTP\/1\.1 200/);
  });
});

describe('examples/deploy', () => {
  const activated = new Set<{ stop(): Promise<number | null> }>();
  afterEach(async () => {
    await Promise.all([...activated].map((p) => p.stop()));
    activated.clear();
  });

  function deployFile(name: string): string {
    return fs.readFileSync(path.join(EX, 'deploy', name), 'utf8');
  }

  /**
   * A directory laid out like an application that installed feersum-ts:
   * node_modules/feersum-ts, and node_modules/.bin/feersum-ts, which execs
   * node on the runner as npm's bin link does (dist/runner/cli.js itself is
   * only made executable by npm when it installs the package).
   */
  function appDir(): string {
    const dir = fs.mkdtempSync(path.join(tmp, 'app-'));
    fs.mkdirSync(path.join(dir, 'node_modules', '.bin'), { recursive: true });
    fs.symlinkSync(ROOT, path.join(dir, 'node_modules', 'feersum-ts'));
    const shim = path.join(dir, 'node_modules', '.bin', 'feersum-ts');
    fs.writeFileSync(shim, `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} "$@"\n`, { mode: 0o755 });
    fs.copyFileSync(path.join(EX, 'psgi.js'), path.join(dir, 'app.js'));
    return dir;
  }

  it.skipIf(!HAS_RUNNER || !fs.existsSync('/usr/bin/systemd-socket-activate'))(
    'myapp.socket + myapp.service: socket activation (systemd-socket-activate), graceful stop',
    async () => {
      const socketUnit = deployFile('myapp.socket');
      const service = deployFile('myapp.service');
      expect(socketUnit).toMatch(/^ListenStream=0\.0\.0\.0:8080$/m);
      const exec = service.match(/^ExecStart=([\s\S]*?[^\\])$/m)![1].replace(/\\\n\s*/g, ' ');
      const workdir = service.match(/^WorkingDirectory=(.*)$/m)![1];
      const dir = appDir();
      const logs = path.join(tmp, 'log');
      fs.mkdirSync(logs, { recursive: true });
      const argv = exec
        .split(/\s+/)
        .filter(Boolean)
        .map((a) => a.replaceAll(workdir, dir).replaceAll('/var/log/myapp', logs));
      // the unit's ExecStart, under systemd's socket-activation protocol, on a free port
      const free = await new Promise<number>((resolve) => {
        const s = net.createServer().listen(0, '127.0.0.1', () => {
          const { port } = s.address() as net.AddressInfo;
          s.close(() => resolve(port));
        });
      });
      const { program } = await startRunnerSocketActivated(free, argv, dir);
      const res = await fetch(`http://127.0.0.1:${free}/activated`);
      expect(await res.text()).toBe('Hello from /activated\n');
      expect(await program.stop()).toBe(0);
      expect(fs.readFileSync(path.join(logs, 'access.log'), 'utf8')).toContain('"GET /activated HTTP/1.1" 200');
    },
    30000,
  );

  async function startRunnerSocketActivated(port: number, argv: string[], cwd: string) {
    // systemd-socket-activate passes on only the environment it is told to (as systemd would)
    const pass = ['PATH', 'HOME', 'LD_PRELOAD', 'LD_LIBRARY_PATH', 'ASAN_OPTIONS', 'UBSAN_OPTIONS', 'PREBUILDS_ONLY', 'FEERSUM_TS_PREBUILD']
      .filter((k) => process.env[k] !== undefined)
      .flatMap((k) => ['-E', k]);
    const child = spawn('/usr/bin/systemd-socket-activate', [...pass, '-l', `127.0.0.1:${port}`, ...argv], {
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const program = {
      stop: async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        return exited;
      },
    };
    activated.add(program);
    // It binds, says so, and starts the command at the first connection (the fetch() that follows).
    const deadline = Date.now() + 15000;
    while (!/Listening on .* as 3/.test(err)) {
      if (child.exitCode !== null) throw new Error(`systemd-socket-activate exited: ${err}`);
      if (Date.now() > deadline) throw new Error(`systemd-socket-activate did not listen: ${err}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return { program, stderr: () => err };
  }

  it.skipIf(!HAS_RUNNER)("Dockerfile: its CMD starts the app (the container itself cannot be built here: no docker)", async () => {
    const dockerfile = deployFile('Dockerfile');
    const from = dockerfile.match(/^FROM node:(\d+)/m);
    expect(Number(from?.[1])).toBeGreaterThanOrEqual(18);
    expect(dockerfile).toMatch(/^RUN npm ci --omit=dev/m);
    const cmd = JSON.parse(dockerfile.match(/^CMD (\[.*\])$/m)![1]) as string[];
    expect(cmd).toContain('--listen');
    const dir = appDir();
    const args = cmd.slice(1).map((a) => (a === ':8080' ? '127.0.0.1:0' : a));
    const { port, program } = await startRunner(args, { cwd: dir, command: [path.join(dir, cmd[0])] });
    const res = await fetch(`http://127.0.0.1:${port}/in-a-container`);
    expect(await res.text()).toBe('Hello from /in-a-container\n');
    expect(await program.stop()).toBe(0);
    expect(program.stdout()).toContain('"GET /in-a-container HTTP/1.1" 200'); // --access-log -
  });

  it.skipIf(!HAS_RUNNER)('server-starter.sh: its runner command serves on the sockets start_server passes (start_server itself is not run)', async () => {
    const script = deployFile('server-starter.sh');
    await execFileP('sh', ['-n', path.join(EX, 'deploy', 'server-starter.sh')]); // valid shell
    const line = script.match(/^exec (start_server [\s\S]*?[^\\])$/m)![1].replace(/\\\n\s*/g, ' ');
    const [starterArgs, command] = line.split(' -- ');
    expect(starterArgs).toMatch(/--port 0\.0\.0\.0:8080 --path \/run\/myapp\/app\.sock --interval \d+/);
    const argv = command.split(/\s+/).filter(Boolean);
    expect(argv[0]).toBe('node_modules/.bin/feersum-ts');
    expect(argv).not.toContain('--pid-file'); // the old generation would still hold it
    expect(argv.some((a) => a.startsWith('--listen'))).toBe(false); // the sockets come from start_server
    // What start_server does: bind the --port and --path sockets, and start
    // the command with them as fds 3 and 4, named in SERVER_STARTER_PORT.
    const dir = appDir();
    const logs = path.join(dir, 'log');
    fs.mkdirSync(logs);
    const free = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = s.address() as net.AddressInfo;
        s.close(() => resolve(port));
      });
    });
    const sockPath = path.join(dir, 'app.sock');
    const tcpFd = loadBinding().bindSocket({ host: '127.0.0.1', port: free }, 128);
    const unixFd = loadBinding().bindSocket({ path: sockPath }, 128);
    try {
      const args = argv.slice(1).map((a) => a.replace('/var/log/myapp', logs).replace(/^--pre-fork=\d+$/, '--pre-fork=2'));
      const child = spawn(path.join(dir, argv[0]), args, {
        cwd: dir,
        stdio: ['ignore', 'ignore', 'ignore', tcpFd, unixFd],
        env: { ...process.env, SERVER_STARTER_PORT: `127.0.0.1:${free}=3;${sockPath}=4`, SERVER_STARTER_GENERATION: '1' },
      });
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      const program = {
        stop: async () => {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
          return exited;
        },
      };
      activated.add(program);
      // Its messages go to --error-log: ready once that says so.
      const errorLog = path.join(logs, 'error.log');
      const deadline = Date.now() + 20000;
      while (!(fs.existsSync(errorLog) && /listening on /.test(fs.readFileSync(errorLog, 'utf8')))) {
        if (child.exitCode !== null || Date.now() > deadline) {
          throw new Error(`the runner did not start (${child.exitCode}): ${fs.existsSync(errorLog) ? fs.readFileSync(errorLog, 'utf8') : ''}`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(fs.readFileSync(errorLog, 'utf8')).toContain(`listening on http://127.0.0.1:${free}, unix:${sockPath} with 2 worker(s)`);
      expect(await (await fetch(`http://127.0.0.1:${free}/hot-deploy`)).text()).toBe('Hello from /hot-deploy\n');
      const viaUnix = await new Promise<string>((resolve, reject) => {
        const c = net.connect(sockPath, () => c.end('GET /over-unix HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
        let got = '';
        c.setEncoding('utf8').on('data', (d: string) => (got += d));
        c.on('end', () => resolve(got));
        c.on('error', reject);
      });
      expect(viaUnix).toMatch(/^HTTP\/1\.1 200[\s\S]*Hello from \/over-unix/);
      // start_server's SIGTERM (the next generation is up): a graceful exit.
      expect(await program.stop()).toBe(0);
      activated.delete(program);
      expect(fs.existsSync(sockPath)).toBe(true); // start_server's socket file, not the runner's to remove
      expect(fs.readFileSync(path.join(logs, 'access.log'), 'utf8')).toContain('"GET /hot-deploy HTTP/1.1" 200');
    } finally {
      fs.closeSync(tcpFd);
      fs.closeSync(unixFd);
    }
  }, 30000);

  it.skipIf(!HAS_RUNNER)('haproxy.cfg / nginx.conf: the runner command they name accepts their PROXY headers', async () => {
    const haproxy = deployFile('haproxy.cfg');
    const nginx = deployFile('nginx.conf');
    expect(haproxy).toMatch(/^\s+server app1 127\.0\.0\.1:8080 send-proxy-v2/m);
    expect(nginx).toMatch(/^\s+proxy_protocol on;$/m);
    const cmd = haproxy.match(/^#\s+(feersum-ts .*)$/m)![1];
    expect(nginx).toContain(cmd);
    const dir = appDir();
    const args = cmd
      .split(/\s+/)
      .slice(1)
      .map((a) => (a === '127.0.0.1:8080' ? '127.0.0.1:0' : a.replace(/^--pre-fork=\d+$/, '--pre-fork=1')));
    const { port } = await startRunner(args, { cwd: dir });
    const get = 'GET /behind-a-proxy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
    const v1 = await raw(port, `PROXY TCP4 203.0.113.7 127.0.0.1 51234 80\r\n${get}`); // nginx
    expect(v1).toMatch(/^HTTP\/1\.1 200/);
    expect(v1).toContain('Hello from /behind-a-proxy');
  });
});

describe('examples/tsconfig.json', () => {
  it('type-checks every example against the published declarations (dist/index.d.ts)', async () => {
    const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    await execFileP(process.execPath, [tsc, '-p', path.join(EX, 'tsconfig.json')], { cwd: ROOT }).catch(
      (e: { stdout: string; stderr: string }) => {
        throw new Error(`tsc -p examples/tsconfig.json:\n${e.stdout}${e.stderr}`);
      },
    );
  }, 60000);
});
