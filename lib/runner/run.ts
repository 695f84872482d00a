// Startup, signals and shutdown of the process the user started: with
// --pre-fork=N the supervisor, else the single process that serves itself.
//
// The order matters: logs and pid file, then the app (loaded here, or in a
// check process for pre-fork) before any port is bound, then the listeners,
// then serving. Every failure on the way is one line and exit status 1, and
// undoes what was done (pid file, socket files).
import { loadApp } from './app-loader';
import { notifyDaemonParent } from './daemon';
import { firstLine, StartupError } from './errors';
import { type BoundListener, bindListeners, inheritedListeners, releaseListeners, removeSocketFiles } from './listeners';
import { describeAddress } from './listen-spec';
import { LogFile } from './log-file';
import { redirectStderr, RunnerLog } from './log';
import type { ListeningAddress } from './messages';
import type { RunnerConfig } from './options';
import { claimPidFile, releasePidFile } from './pid-file';
import { checkApp, serverHeader, Supervisor } from './supervisor';
import { checkTls, type TlsConfig, tlsConfig, tlsOptions } from './tls-config';
import { startServing } from './worker';

const SHUTDOWN_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGQUIT'] as const;

/** What startup has set up so far, and how to undo it. */
class Session {
  readonly log: RunnerLog;
  errorLog: LogFile | undefined;
  accessLog: LogFile | undefined;
  listeners: BoundListener[] = [];
  private pidFile: string | undefined;
  // Startup failures go to the terminal even once stderr is redirected to the error log.
  private readonly terminal = process.stderr.write.bind(process.stderr);

  constructor(
    readonly config: RunnerConfig,
    readonly daemonChild: boolean,
  ) {
    this.log = new RunnerLog(config.quiet);
  }

  openLogsAndPidFile(): void {
    const c = this.config;
    if (c.errorLog) {
      this.errorLog = new LogFile(c.errorLog, 0);
      this.log.useFile(this.errorLog);
      redirectStderr(this.errorLog);
    }
    if (c.accessLog) this.accessLog = new LogFile(c.accessLog, 1000);
    if (c.pidFile) {
      claimPidFile(c.pidFile);
      this.pidFile = c.pidFile;
    }
  }

  /** The inherited listeners (systemd, Server::Starter), or the configured ones, bound now. */
  async listen(inherited: BoundListener[] | undefined): Promise<void> {
    this.listeners = inherited ?? (await bindListeners(this.config.listen, { ...this.config, warn: (m) => this.log.warn(m) }));
  }

  ready(addresses: ListeningAddress[], what: string): void {
    this.log.info(`listening on ${addresses.map((a) => describeAddress(a)).join(', ')} ${what}`);
    if (this.daemonChild) notifyDaemonParent({ type: 'daemon-ready' });
  }

  /** Removes socket files and the pid file, flushes logs (the process is about to exit). */
  cleanup(): void {
    removeSocketFiles(this.listeners);
    if (this.pidFile) releasePidFile(this.pidFile);
    this.accessLog?.flush();
    this.errorLog?.flush();
  }

  /** Startup failed: one line, undo everything, exit. */
  fail(err: unknown): void {
    const message = firstLine(err);
    const code = err instanceof StartupError ? err.exitCode : 1;
    this.terminal(`feersum-ts: ${message}\n`);
    this.errorLog?.write(`[${new Date().toISOString()}] feersum-ts[${process.pid}]: ${message}\n`);
    if (this.daemonChild) notifyDaemonParent({ type: 'daemon-failed', message, exitCode: code });
    this.abandonListeners();
    this.cleanup();
    setImmediate(() => process.exit(code)); // lets the daemon message leave first
  }

  abandonListeners(): void {
    releaseListeners(this.listeners);
    this.listeners = [];
  }
}

export async function run(config: RunnerConfig, daemonChild: boolean): Promise<void> {
  const s = new Session(config, daemonChild);
  const startupDone = guardStartup(s);
  try {
    s.openLogsAndPidFile();
    const inherited = inheritedListeners(config.ssl.enabled);
    if (inherited && config.listenGiven) {
      s.log.warn(
        `using the inherited listeners (${inherited.map((l) => l.display).join(', ')}); ` +
          'the listeners given on the command line are ignored',
      );
    }
    // Certificates are checked before the app is loaded or anything bound.
    const tls = tlsConfig(config.ssl, config.preFork > 0);
    if (tls) checkTls(tls);
    if (config.preFork === 0) await runSingle(s, inherited, tls, startupDone);
    else await runSupervisor(s, inherited, tls, startupDone);
  } catch (err) {
    s.fail(err);
  }
}

/**
 * Until serving starts: a stop signal undoes what startup did and ends the
 * process as the signal would have; SIGHUP (which would end it too) and
 * SIGUSR1 (Node's inspector) are ignored. Returns the function that lifts this.
 */
function guardStartup(s: Session): () => void {
  const stop = (sig: NodeJS.Signals) => {
    s.log.warn(`${sig} during startup: stopping`);
    s.abandonListeners();
    s.cleanup();
    for (const name of SHUTDOWN_SIGNALS) process.removeAllListeners(name);
    process.kill(process.pid, sig);
  };
  const notYet = (sig: NodeJS.Signals) => s.log.warn(`${sig} ignored: still starting`);
  for (const sig of SHUTDOWN_SIGNALS) process.once(sig, stop);
  process.on('SIGHUP', notYet);
  process.on('SIGUSR1', notYet);
  return () => {
    for (const sig of SHUTDOWN_SIGNALS) process.removeListener(sig, stop);
    process.removeListener('SIGHUP', notYet);
    process.removeListener('SIGUSR1', notYet);
  };
}

async function runSingle(
  s: Session,
  inherited: BoundListener[] | undefined,
  tls: TlsConfig | undefined,
  startupDone: () => void,
): Promise<void> {
  const c = s.config;
  const app = await loadApp(c.app, c.native);
  await s.listen(inherited);
  const serving = startServing({
    app,
    native: c.native,
    listeners: s.listeners,
    tls: tls ? tlsOptions(tls) : undefined,
    proxyProtocol: c.proxyProtocol,
    engine: c.engine,
    serverHeader: serverHeader(c),
    accessLog: s.accessLog,
    accessLogFormat: c.accessLogFormat,
    log: s.log,
  });
  onUncaught(s, () => s.cleanup());
  startupDone();

  let stopping = false;
  for (const sig of SHUTDOWN_SIGNALS) {
    process.on(sig, () => {
      if (stopping) {
        s.log.warn(`${sig} again: exiting now`);
        s.cleanup();
        process.exit(1);
      }
      stopping = true;
      s.log.info(`${sig}: graceful shutdown`);
      removeSocketFiles(s.listeners); // new clients are refused from now on
      serving.stop(c.shutdownTimeout).then(() => {
        s.cleanup();
        process.exit(0);
      });
    });
  }
  // No workers to restart; what SIGHUP can do here is pick up renewed certificates.
  process.on('SIGHUP', () => {
    if (!s.listeners.some((l) => l.tls)) {
      s.log.warn('SIGHUP ignored: graceful restarts need a supervisor (run with --pre-fork=1 or more)');
      return;
    }
    try {
      serving.engine.reloadTls();
      s.log.info('SIGHUP: TLS certificates reloaded (restarting the app needs --pre-fork)');
    } catch (err) {
      s.log.error(`SIGHUP: TLS certificates not reloaded, the old ones stay: ${firstLine(err)}`);
    }
  });
  process.on('SIGUSR1', () => {
    s.errorLog?.reopen();
    s.accessLog?.reopen();
  });
  s.ready(serving.addresses, `(pid ${process.pid})`);
}

async function runSupervisor(
  s: Session,
  inherited: BoundListener[] | undefined,
  tls: TlsConfig | undefined,
  startupDone: () => void,
): Promise<void> {
  const c = s.config;
  await checkApp(c);
  await s.listen(inherited);
  // The supervisor serves nothing itself: only the workers write the access log.
  s.accessLog?.close();
  s.accessLog = undefined;
  const supervisor = new Supervisor(c, s.listeners, tls, {
    log: s.log,
    onReady: (addresses) => s.ready(addresses, `with ${c.preFork} worker(s) (supervisor pid ${process.pid})`),
    onExit: (code) => {
      if (code !== 0 && s.daemonChild) {
        notifyDaemonParent({ type: 'daemon-failed', message: 'the workers failed to start', exitCode: code });
      }
      s.cleanup();
      process.exit(code);
    },
  });
  onUncaught(s, () => {
    s.abandonListeners();
    s.cleanup();
  });
  startupDone();
  for (const sig of SHUTDOWN_SIGNALS) process.on(sig, () => supervisor.shutdown(sig));
  process.on('SIGHUP', () => supervisor.restart());
  process.on('SIGUSR1', () => {
    s.log.info('SIGUSR1: reopening log files');
    s.errorLog?.reopen();
    supervisor.reopenLogs();
  });
  supervisor.start();
}

function onUncaught(s: Session, cleanup: () => void): void {
  process.on('uncaughtException', (err) => {
    s.log.error(`exiting on an uncaught exception: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    cleanup();
    process.exit(70);
  });
}
