// Helpers for the runner tests: start the real CLI (dist/runner/cli.js) as
// a child process, read its output, talk HTTP to it, find its workers, and
// make sure nothing is left running after a test.
import { type ChildProcess, execFile, execFileSync, spawn, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const ROOT = path.join(__dirname, '..');
export const CLI = path.join(ROOT, 'dist', 'runner', 'cli.js');
export const EXAMPLES = path.join(ROOT, 'examples');

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class Runner {
  readonly child: ChildProcess;
  readonly exited: Promise<Exit>;
  private out = '';
  private err = '';
  exit: Exit | undefined;

  constructor(args: string[], opts: SpawnOptions = {}, command: string[] = [process.execPath, CLI]) {
    this.child = spawn(command[0], [...command.slice(1), ...args], {
      cwd: ROOT,
      ...opts,
      stdio: opts.stdio ?? ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...(opts.env ?? {}) },
    });
    this.child.stdout?.setEncoding('utf8').on('data', (d: string) => (this.out += d));
    this.child.stderr?.setEncoding('utf8').on('data', (d: string) => (this.err += d));
    this.exited = new Promise((resolve) =>
      this.child.on('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      }),
    );
    live.add(this);
  }

  get pid(): number {
    return this.child.pid!;
  }

  get stdout(): string {
    return this.out;
  }

  get stderr(): string {
    return this.err;
  }

  /** Waits until stderr (or stdout with from='stdout') matches re. */
  async waitFor(re: RegExp, ms = 20000, from: 'stderr' | 'stdout' = 'stderr'): Promise<RegExpMatchArray> {
    const start = Date.now();
    for (;;) {
      const m = (from === 'stderr' ? this.err : this.out).match(re);
      if (m) return m;
      if (this.exit) throw new Error(`runner exited (${JSON.stringify(this.exit)}) before ${re}; stderr:\n${this.err}`);
      if (Date.now() - start > ms) throw new Error(`timed out waiting for ${re}; stderr:\n${this.err}`);
      await sleep(20);
    }
  }

  /** Waits for the "listening on" line and returns the first TCP port in it. */
  async listeningPort(ms = 20000): Promise<number> {
    const m = await this.waitFor(/listening on .*?http:\/\/[^\s,]*:(\d+)/, ms);
    return Number(m[1]);
  }

  signal(sig: NodeJS.Signals): void {
    this.child.kill(sig);
  }

  /** Waits for the exit; kills after ms. */
  async waitExit(ms = 20000): Promise<Exit> {
    const timer = setTimeout(() => this.child.kill('SIGKILL'), ms);
    const e = await this.exited;
    clearTimeout(timer);
    return e;
  }
}

const live = new Set<Runner>();

/** Kills every runner a test left behind, and its workers (call in afterEach). */
export async function killAll(): Promise<void> {
  for (const r of live) {
    if (!r.exit) {
      for (const pid of childPids(r.pid)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      r.child.kill('SIGKILL');
      await r.exited;
    }
    live.delete(r);
  }
}

/** Runs the CLI to completion (bad-input cases). */
export function runCli(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeout?: number } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...(opts.env ?? {}) }, timeout: opts.timeout ?? 20000 },
      (err, stdout, stderr) => {
        // execFile's error carries the exit status as `code` (a number), or a string for spawn failures.
        const code: unknown = err ? (err as { code?: unknown }).code : 0;
        resolve({ code: typeof code === 'number' ? code : null, stdout, stderr });
      },
    );
  });
}

/** Direct children of pid (from /proc). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return out.sort((a, b) => a - b);
}

let clockTicks: number | undefined;

/**
 * When a process started, in Date.now() milliseconds (to about 10 ms), from
 * /proc: exact however late a polling test notices the process.
 */
export function processStartTime(pid: number): number {
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after "(comm)": state is field 3, starttime field 22 (ticks since boot).
  const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
  const uptime = Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
  const bootedAt = Date.now() - uptime * 1000;
  return bootedAt + (ticks / clockTicks) * 1000;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request on its own connection (Connection: close). */
export function request(
  target: { port: number; host?: string } | { socketPath: string },
  urlPath = '/',
  opts: { method?: string; headers?: http.OutgoingHttpHeaders; body?: string; timeout?: number; agent?: http.Agent } = {},
): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        ...('socketPath' in target ? { socketPath: target.socketPath } : { host: target.host ?? '127.0.0.1', port: target.port }),
        path: urlPath,
        method: opts.method ?? 'GET',
        headers: opts.headers,
        agent: opts.agent ?? false,
        timeout: opts.timeout ?? 15000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`request to ${urlPath} timed out`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Polls until a request succeeds (readiness without sleeping). */
export async function waitForHttp(
  target: { port: number; host?: string } | { socketPath: string },
  urlPath = '/',
  ms = 20000,
): Promise<Response> {
  const start = Date.now();
  for (;;) {
    try {
      return await request(target, urlPath, { timeout: 2000 });
    } catch (err) {
      if (Date.now() - start > ms) throw err;
      await sleep(50);
    }
  }
}

export async function waitUntil(fn: () => boolean | Promise<boolean>, ms = 20000, what = 'condition'): Promise<void> {
  const start = Date.now();
  while (!(await fn())) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** A loopback port nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

const tmpDirs: string[] = [];

export function tmpDir(prefix = 'feersum-runner-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tmpDirs.push(dir);
  return dir;
}

/** Removes the directories tmpDir() made (call in afterAll). */
export function removeTmpDirs(): void {
  for (const dir of tmpDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}

/**
 * Sends requests from `concurrency` loops until stop() is called, one
 * connection per request or (keepAlive) reusing connections; counts
 * successes and failures.
 */
export function loadLoop(
  target: { port: number } | { socketPath: string },
  urlPath = '/',
  concurrency = 4,
  keepAlive = false,
): {
  stop: () => Promise<{ ok: number; failed: number; errors: string[]; errorTimes: number[]; bodies: Map<string, number> }>;
  stats: { ok: number; failed: number };
} {
  let running = true;
  const stats = { ok: 0, failed: 0 };
  const errors: string[] = [];
  const errorTimes: number[] = [];
  const bodies = new Map<string, number>();
  const agent = keepAlive ? new http.Agent({ keepAlive: true, maxSockets: concurrency }) : undefined;
  const loops = Array.from({ length: concurrency }, async () => {
    while (running) {
      try {
        const r = await request(target, urlPath, { timeout: 20000, agent });
        if (r.status === 200) {
          stats.ok++;
          bodies.set(r.body, (bodies.get(r.body) ?? 0) + 1);
        } else {
          stats.failed++;
          errors.push(`status ${r.status}: ${r.body}`);
          errorTimes.push(Date.now());
        }
      } catch (err) {
        stats.failed++;
        errors.push((err as Error).message);
        errorTimes.push(Date.now());
      }
    }
  });
  return {
    stats,
    stop: async () => {
      running = false;
      await Promise.all(loops);
      agent?.destroy();
      return { ...stats, errors, errorTimes, bodies };
    },
  };
}

/** curl, asynchronously (never block the test's event loop: the server may be in this process's test). */
export function curl(args: string[], timeout = 15000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // Not the sanitizer runtime an ASan test run preloads into Node.
    const env = { ...process.env, LD_PRELOAD: '' };
    execFile('curl', ['-sS', '--max-time', String(timeout / 1000), ...args], { timeout: timeout + 2000, env }, (err, stdout, stderr) => {
      const code = err ? Number((err as NodeJS.ErrnoException).code ?? 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}
