// Helpers for test/examples.test.ts and test/docs.test.ts: run an example
// program (or a README code block) as a child process with
// test/fixtures/listen-harness.js preloaded, so its listen() takes an
// ephemeral port and reports it; stop it afterwards.
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';

export const ROOT = path.join(__dirname, '..');
export const HARNESS = path.join(__dirname, 'fixtures', 'listen-harness.js');
export const CLI = path.join(ROOT, 'dist', 'runner', 'cli.js');

export interface Listening {
  address: string;
  port: number;
  family: string;
}

export interface Program {
  child: ChildProcess;
  /** Every listen() the program made, in order. */
  listening: Listening[];
  stdout(): string;
  stderr(): string;
  /** Resolves once the program has listened `count` times. */
  ready(count?: number, ms?: number): Promise<Listening[]>;
  /** SIGTERM, then SIGKILL after 5 s; resolves with the exit code (null when killed by a signal). */
  stop(): Promise<number | null>;
  exited: Promise<number | null>;
}

const live = new Set<Program>();

/** Runs `node -r listen-harness FILE ARGS` in `cwd` (default: the repository). */
export function startProgram(file: string, args: string[] = [], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Program {
  const child = spawn(process.execPath, ['-r', HARNESS, file, ...args], {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const listening: Listening[] = [];
  const waiters: Array<() => void> = [];
  child.on('message', (msg: { listening?: Listening }) => {
    if (msg.listening) {
      listening.push(msg.listening);
      waiters.splice(0).forEach((w) => w());
    }
  });
  const exited = new Promise<number | null>((resolve) => {
    child.on('exit', (code) => {
      waiters.splice(0).forEach((w) => w());
      resolve(code);
    });
    child.on('error', (e) => {
      err += `spawn failed: ${e.message}\n`;
      waiters.splice(0).forEach((w) => w());
      resolve(null);
    });
  });
  const program: Program = {
    child,
    listening,
    exited,
    stdout: () => out,
    stderr: () => err,
    async ready(count = 1, ms = 15000) {
      const deadline = Date.now() + ms;
      while (listening.length < count) {
        if (child.exitCode !== null || child.signalCode !== null) {
          throw new Error(`${file} exited (${child.exitCode ?? child.signalCode}) before listening; stderr:\n${err}`);
        }
        if (Date.now() > deadline) throw new Error(`${file} did not listen within ${ms} ms; stderr:\n${err}`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 100);
          waiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
      return listening;
    },
    async stop() {
      live.delete(program);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
      return exited;
    },
  };
  live.add(program);
  return program;
}

/** Stops every program still running (afterEach). */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((p) => p.stop()));
}

/** Starts the runner (dist/runner/cli.js) and waits for its "listening on http(s)://HOST:PORT" line. */
export async function startRunner(
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; command?: string[]; stdio?: Array<'ignore' | 'pipe' | number> } = {},
): Promise<{ port: number; program: Program }> {
  const command = opts.command ?? [process.execPath, CLI];
  const child = spawn(command[0], [...command.slice(1), ...args], {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, ...opts.env },
    stdio: (opts.stdio ?? ['ignore', 'pipe', 'pipe']) as never,
  });
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((resolve) => {
    child.on('exit', (code) => resolve(code));
    child.on('error', (e) => {
      err += `spawn failed: ${e.message}\n`;
      resolve(null);
    });
  });
  const program: Program = {
    child,
    listening: [],
    exited,
    stdout: () => out,
    stderr: () => err,
    ready: async () => [],
    async stop() {
      live.delete(program);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 10000);
        await exited;
        clearTimeout(t);
      }
      return exited;
    },
  };
  live.add(program);
  const deadline = Date.now() + 20000;
  for (;;) {
    const m = err.match(/listening on .*?https?:\/\/[^\s,]*:(\d+)/);
    if (m) return { port: Number(m[1]), program };
    if (child.exitCode !== null || /^spawn failed/m.test(err)) {
      throw new Error(`runner exited ${child.exitCode}; stderr:\n${err}`);
    }
    if (Date.now() > deadline) throw new Error(`runner did not listen; stderr:\n${err}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
