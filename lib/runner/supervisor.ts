// The pre-fork supervisor: keeps N worker processes serving on the
// listeners it bound, and replaces them without ever dropping below N
// accepting workers where it can help it.
//
// Every worker is either *fresh* (current generation, not asked to retire)
// or *replaceable* (an older generation after SIGHUP, or one that asked to
// retire: max requests reached, psgix.harakiri.commit). One rule drives
// everything (reconcile): start fresh workers until there are N, and stop a
// replaceable worker only when a fresh one is ready to take its place. So
// recycling and restarts overlap old and new workers briefly instead of
// leaving a gap, and the listening sockets -- shared by all workers, held
// by the supervisor -- never stop accepting: connections that arrive while
// a worker changes wait in the kernel's queue for the next accept.
//
// Why inherited descriptors rather than SO_REUSEPORT per worker: one
// accept queue survives any worker leaving (with SO_REUSEPORT the
// connections queued on a closing worker's socket are reset), it works the
// same for Unix, abstract, systemd and Server::Starter sockets, and a port
// in use fails once, up front. The price is a less even spread across idle
// workers (see bench/README.md, "Pre-fork runner").
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';

import { StartupError } from './errors';
import { type BoundListener, closeListenerFds, removeSocketFiles } from './listeners';
import type { RunnerLog } from './log';
import { type ListeningAddress, type SupervisorMessage, WORKER_CONFIG_ENV, type WorkerConfig, type WorkerMessage } from './messages';
import type { RunnerConfig } from './options';
import type { TlsConfig } from './tls-config';

const WORKER_MAIN = path.join(__dirname, 'worker-main.js');
/** A worker that dies sooner than this after starting counts towards a crash loop. */
const QUICK_EXIT_MS = 5000;
const MAX_BACKOFF_S = 30;
/** Before any worker was ever ready, this many quick failures in a row mean the server cannot start. */
const STARTUP_ATTEMPTS = 5;

type State = 'starting' | 'ready' | 'stopping';

interface Worker {
  id: number;
  child: ChildProcess;
  pid: number;
  generation: number;
  state: State;
  spawnedAt: number;
  /** Set when the worker asked to be replaced. */
  retire?: { reason: string; at: number };
  /** Why it could not start: the app did not load, or it cannot serve (e.g. broken TLS files). */
  startError?: { stage: 'load' | 'serve'; message: string };
  killTimer?: NodeJS.Timeout;
}

export interface SupervisorHooks {
  log: RunnerLog;
  /** The first worker is accepting. */
  onReady(addresses: ListeningAddress[]): void;
  /** Shutdown finished (all workers gone), or the server could not start (code 1). */
  onExit(code: number): void;
}

/** Node flags for workers: the supervisor's own, minus any debugger port (it would clash). */
function workerExecArgv(): string[] {
  return process.execArgv.filter((a) => !/^--(inspect|debug)/.test(a));
}

/** Spawns a worker that only loads the app, before anything is bound; throws a StartupError if it fails. */
export function checkApp(config: RunnerConfig): Promise<void> {
  const cfg = workerConfig(config, [], undefined, 0, 1, true);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...workerExecArgv(), WORKER_MAIN], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, [WORKER_CONFIG_ENV]: JSON.stringify(cfg) },
    });
    let message: string | undefined;
    child.on('message', (m: WorkerMessage) => {
      if (m.type === 'load-error') message = m.message;
    });
    child.on('error', (err) => reject(new StartupError(`cannot start a worker process: ${err.message}`)));
    child.on('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new StartupError(message ?? `loading the app failed (${signal ? `signal ${signal}` : `exit status ${code}`})`));
    });
  });
}

function workerConfig(
  config: RunnerConfig,
  listeners: BoundListener[],
  tls: TlsConfig | undefined,
  maxRequests: number,
  generation: number,
  checkOnly: boolean,
): WorkerConfig {
  return {
    app: config.app,
    native: config.native,
    checkOnly,
    listeners: listeners.map((l) => ({ display: l.display, tls: l.tls })),
    tls,
    proxyProtocol: config.proxyProtocol,
    engine: config.engine,
    maxRequests,
    shutdownTimeout: config.shutdownTimeout,
    serverHeader: serverHeader(config),
    accessLog: config.accessLog,
    accessLogFormat: config.accessLogFormat,
    errorLog: config.errorLog,
    quiet: config.quiet,
    generation,
  };
}

export function serverHeader(config: RunnerConfig): string | undefined {
  if (config.productName === '') return undefined;
  return config.productVersion === '' ? config.productName : `${config.productName}/${config.productVersion}`;
}

export class Supervisor {
  private readonly workers = new Map<number, Worker>();
  private readonly size: number;
  private generation = 1;
  private nextId = 1;
  /** No worker starts before this time (spawn interval, crash backoff). */
  private nextSpawnAt = 0;
  private spawnTimer: NodeJS.Timeout | undefined;
  private crashStreak = 0;
  private everReady = false;
  private restarting = false;
  private shuttingDown = false;
  private readonly log: RunnerLog;

  constructor(
    private readonly config: RunnerConfig,
    private readonly listeners: BoundListener[],
    /** For the workers' HTTPS listeners (with ticket keys all of them share). */
    private readonly tls: TlsConfig | undefined,
    private readonly hooks: SupervisorHooks,
  ) {
    this.size = config.preFork;
    this.log = hooks.log;
  }

  start(): void {
    this.reconcile();
  }

  /** SIGHUP: new workers load the app afresh; old ones finish their requests and exit as the new ones come up. */
  restart(): void {
    if (this.shuttingDown) return;
    this.generation++;
    this.restarting = true;
    this.log.info(`graceful restart: starting generation ${this.generation}`);
    // Keep-alive clients of the old workers move over after complete
    // responses while the new workers start, instead of meeting a closed
    // idle connection when the old ones stop.
    for (const w of this.workers.values()) if (w.state !== 'stopping') this.send(w, { type: 'wind-down', on: true });
    this.reconcile();
  }

  /** SIGTERM/SIGINT/SIGQUIT: stop accepting, let workers finish (up to --shutdown-timeout), exit. */
  shutdown(signal: string): void {
    if (this.shuttingDown) {
      this.log.warn(`${signal} again: killing the workers now`);
      for (const w of this.workers.values()) w.child.kill('SIGKILL');
      return;
    }
    this.shuttingDown = true;
    if (this.spawnTimer) clearTimeout(this.spawnTimer);
    this.log.info(`${signal}: graceful shutdown of ${this.workers.size} worker(s)`);
    // The workers hold their own copies of the listening sockets; ours go
    // now, and the socket files too, so new clients are refused at once
    // instead of waiting in a queue nobody will serve.
    closeListenerFds(this.listeners);
    removeSocketFiles(this.listeners);
    for (const w of this.workers.values()) this.stopWorker(w);
    if (this.workers.size === 0) this.hooks.onExit(0);
  }

  /** SIGUSR1: workers reopen their log files (the caller reopens the supervisor's). */
  reopenLogs(): void {
    for (const w of this.workers.values()) this.send(w, { type: 'reopen-logs' });
  }

  /** Worker pids, for tests and messages. */
  pids(): number[] {
    return [...this.workers.values()].map((w) => w.pid);
  }

  // ------------------------------------------------------------ the rule

  private reconcile(): void {
    if (this.shuttingDown) return;
    const gen = this.generation;
    const serving = [...this.workers.values()].filter((w) => w.state !== 'stopping');
    const fresh = serving.filter((w) => w.generation === gen && !w.retire);
    const replaceable = serving
      .filter((w) => w.generation !== gen || w.retire)
      .sort((a, b) => a.generation - b.generation || (a.retire?.at ?? 0) - (b.retire?.at ?? 0));

    // Stop replaceable workers whose places fresh ready workers have taken.
    const freshReady = fresh.filter((w) => w.state === 'ready').length;
    let surplus = freshReady + replaceable.length - this.size;
    for (const w of replaceable) {
      if (surplus <= 0) break;
      this.stopWorker(w);
      surplus--;
    }
    // More fresh workers than wanted (a failed restart adopted its old ones): the ones still starting go first.
    if (fresh.length > this.size) {
      const extra = [...fresh].sort((a, b) => (a.state === 'starting' ? 0 : 1) - (b.state === 'starting' ? 0 : 1));
      for (const w of extra.slice(0, fresh.length - this.size)) this.stopWorker(w);
    }

    if (this.restarting && !serving.some((w) => w.generation !== gen) && freshReady >= this.size) {
      this.restarting = false;
      this.log.info(`graceful restart complete: generation ${gen} serving`);
    }

    // How many fresh workers to start now.
    const deficit = this.size - fresh.length;
    if (deficit <= 0) return;
    const stillServing = replaceable.filter((w) => w.state !== 'stopping').length;
    const uncovered = Math.max(0, this.size - fresh.length - stillServing);
    const oldGeneration = replaceable.filter((w) => w.generation !== gen).length;
    const retiring = replaceable.length - oldGeneration;
    let want = uncovered + Math.min(oldGeneration, deficit - uncovered);
    // Retirements go one at a time: the next replacement starts once the previous one is up.
    const freshStarting = fresh.some((w) => w.state === 'starting');
    if (retiring > 0 && !freshStarting && want < deficit) want++;
    if (want === 0) return;

    const now = Date.now();
    if (now < this.nextSpawnAt) {
      this.scheduleReconcile(this.nextSpawnAt - now);
      return;
    }
    const interval = this.config.spawnInterval * 1000;
    // With --spawn-interval, one worker per interval (Starlet's slow restart).
    const n = interval > 0 ? 1 : want;
    for (let i = 0; i < n; i++) this.spawnWorker();
    if (interval > 0) {
      this.nextSpawnAt = Date.now() + interval;
      if (want > 1) this.scheduleReconcile(interval);
    }
  }

  private scheduleReconcile(ms: number): void {
    if (this.spawnTimer) return;
    this.spawnTimer = setTimeout(() => {
      this.spawnTimer = undefined;
      this.reconcile();
    }, ms);
  }

  // ------------------------------------------------------------ workers

  private maxRequests(): number {
    const max = this.config.maxReqsPerChild;
    const min = this.config.minReqsPerChild;
    if (max === 0 || min === undefined) return max;
    // Randomised between the two, so workers started together do not all retire together.
    return min + Math.floor(Math.random() * (max - min + 1));
  }

  private spawnWorker(): void {
    const cfg = workerConfig(this.config, this.listeners, this.tls, this.maxRequests(), this.generation, false);
    const child = spawn(process.execPath, [...workerExecArgv(), WORKER_MAIN], {
      // Listeners become the worker's fds 3, 4, ...; stdout/stderr are shared.
      stdio: ['ignore', 'inherit', 'inherit', ...this.listeners.map((l) => l.fd), 'ipc'],
      env: { ...process.env, [WORKER_CONFIG_ENV]: JSON.stringify(cfg) },
    });
    const w: Worker = {
      id: this.nextId++,
      child,
      pid: child.pid ?? -1,
      generation: this.generation,
      state: 'starting',
      spawnedAt: Date.now(),
    };
    this.workers.set(w.id, w);
    child.on('message', (m: WorkerMessage) => this.onMessage(w, m));
    child.on('error', (err) => {
      // spawn itself failed (no exit event follows when there was no process)
      this.log.error(`cannot start a worker process: ${err.message}`);
      if (w.pid === -1) this.onExit(w, null, null);
    });
    child.on('exit', (code, signal) => this.onExit(w, code, signal));
  }

  private onMessage(w: Worker, m: WorkerMessage): void {
    switch (m.type) {
      case 'ready':
        if (w.state === 'starting') w.state = 'ready';
        this.log.info(`worker ${w.pid} ready (generation ${w.generation})`);
        if (!this.everReady) {
          this.everReady = true;
          this.hooks.onReady(m.addresses);
        }
        this.reconcile();
        break;
      case 'load-error':
        w.startError = { stage: 'load', message: m.message };
        break;
      case 'serve-error':
        w.startError = { stage: 'serve', message: m.message };
        break;
      case 'retire':
        if (w.retire || w.state === 'stopping') return;
        w.retire = { reason: m.reason, at: Date.now() };
        this.log.info(`worker ${w.pid} retiring (${m.reason}); starting its replacement`);
        this.reconcile();
        break;
    }
  }

  private onExit(w: Worker, code: number | null, signal: NodeJS.Signals | null): void {
    if (!this.workers.delete(w.id)) return;
    if (w.killTimer) clearTimeout(w.killTimer);
    const how = signal ? `was killed by ${signal}` : `exited with status ${code}`;
    if (this.shuttingDown) {
      if (code !== 0) this.log.info(`worker ${w.pid} ${how}`);
      if (this.workers.size === 0) {
        this.log.info('all workers stopped');
        this.hooks.onExit(0);
      }
      return;
    }
    if (w.state === 'stopping') {
      this.log.info(`worker ${w.pid} stopped${code === 0 ? '' : ` (it ${how})`}`);
      this.reconcile();
      return;
    }

    // Unexpected.
    const now = Date.now();
    const failed = w.startError;
    if (failed?.stage === 'load') this.log.error(`worker ${w.pid} could not load the app: ${failed.message}`);
    else if (failed) this.log.error(`worker ${w.pid}: ${failed.message}`); // "cannot accept connections on ...: ..."
    else this.log.warn(`worker ${w.pid} ${how}${w.state === 'starting' ? ' before it was ready' : ''}; replacing it`);
    // New code or new TLS files that do not work: the previous generation
    // keeps serving, instead of a crash loop while it winds down.
    if (failed && w.generation === this.generation && this.restarting) this.abortRestart(failed.stage);

    if (now - w.spawnedAt < QUICK_EXIT_MS) {
      this.crashStreak++;
      if (!this.everReady && this.crashStreak >= STARTUP_ATTEMPTS) {
        this.log.error(`giving up: ${this.crashStreak} workers in a row failed to start`);
        this.shuttingDown = true;
        for (const other of this.workers.values()) this.stopWorker(other);
        closeListenerFds(this.listeners);
        removeSocketFiles(this.listeners);
        this.hooks.onExit(1);
        return;
      }
      // A crash loop backs off (1, 2, 4 ... 30 s) instead of spinning.
      const delay = Math.min(2 ** (this.crashStreak - 1), MAX_BACKOFF_S);
      this.nextSpawnAt = Math.max(this.nextSpawnAt, now + delay * 1000);
      if (this.crashStreak > 1) this.log.warn(`${this.crashStreak} quick worker failures in a row; next start in ${delay}s`);
    } else {
      this.crashStreak = 0;
    }
    this.reconcile();
  }

  /** A new generation cannot load the app, or cannot serve it: keep the old workers rather than end with none. */
  private abortRestart(stage: 'load' | 'serve'): void {
    this.restarting = false;
    const gen = this.generation;
    let kept = 0;
    for (const w of this.workers.values()) {
      if (w.state === 'stopping') continue;
      if (w.generation === gen && w.state === 'starting') this.stopWorker(w);
      else if (w.generation !== gen) {
        w.generation = gen;
        this.send(w, { type: 'wind-down', on: false });
        kept++;
      }
    }
    const why = stage === 'load' ? 'the app does not load' : 'the new workers cannot serve';
    this.log.error(`graceful restart failed: ${why}; ${kept} worker(s) of the previous code keep serving`);
  }

  private stopWorker(w: Worker): void {
    if (w.state === 'stopping') return;
    w.state = 'stopping';
    if (!this.send(w, { type: 'stop' })) w.child.kill('SIGTERM');
    const timeout = this.config.shutdownTimeout;
    if (timeout > 0) {
      // The worker gives up on its own at the timeout; this is the backstop.
      w.killTimer = setTimeout(() => {
        this.log.warn(`worker ${w.pid} still running ${timeout}s after it was told to stop; killing it`);
        w.child.kill('SIGKILL');
      }, (timeout + 2) * 1000);
    }
  }

  private send(w: Worker, msg: SupervisorMessage): boolean {
    if (!w.child.connected) return false;
    try {
      w.child.send(msg);
      return true;
    } catch {
      return false;
    }
  }
}
