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
import { startServing } from './worker';

const SHUTDOWN_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGQUIT'] as const;

export async function run(config: RunnerConfig, daemonChild: boolean): Promise<void> {
  const log = new RunnerLog(config.quiet);
  // Startup failures go to the terminal even when stderr is redirected to the error log.
  const terminal = process.stderr.write.bind(process.stderr);
  let errorLog: LogFile | undefined;
  let accessLog: LogFile | undefined;
  let listeners: BoundListener[] = [];
  let pidClaimed = false;

  const cleanup = () => {
    removeSocketFiles(listeners);
    if (pidClaimed && config.pidFile) releasePidFile(config.pidFile);
    accessLog?.flush();
    errorLog?.flush();
  };
  const fail = (err: unknown): void => {
    const message = firstLine(err);
    const code = err instanceof StartupError ? err.exitCode : 1;
    terminal(`feersum-ts: ${message}\n`);
    if (errorLog) errorLog.write(`[${new Date().toISOString()}] feersum-ts[${process.pid}]: ${message}\n`);
    if (daemonChild) notifyDaemonParent({ type: 'daemon-failed', message, exitCode: code });
    releaseListeners(listeners);
    listeners = [];
    cleanup();
    // Let the daemon message leave before exiting.
    setImmediate(() => process.exit(code));
  };

  const ready = (addresses: ListeningAddress[], what: string) => {
    const shown = addresses.map((a) => describeAddress(a)).join(', ');
    log.info(`listening on ${shown} ${what}`);
    if (daemonChild) notifyDaemonParent({ type: 'daemon-ready' });
  };

  try {
    if (config.errorLog) {
      errorLog = new LogFile(config.errorLog, 0);
      log.useFile(errorLog);
      redirectStderr(errorLog);
    }
    if (config.accessLog) accessLog = new LogFile(config.accessLog, 1000);
    if (config.pidFile) {
      claimPidFile(config.pidFile);
      pidClaimed = true;
    }
    const inherited = inheritedListeners();
    if (inherited && config.listenGiven) {
      log.warn(`using the inherited listeners (${inherited.map((l) => l.display).join(', ')}); the listeners given on the command line are ignored`);
    }

    if (config.preFork === 0) {
      const app = await loadApp(config.app, config.native);
      listeners = inherited ?? (await bindListeners(config.listen, { ...config, warn: (m) => log.warn(m) }));
      const serving = startServing({
        app,
        native: config.native,
        listeners,
        proxyProtocol: config.proxyProtocol,
        engine: config.engine,
        serverHeader: serverHeader(config),
        accessLog,
        accessLogFormat: config.accessLogFormat,
        log,
      });
      onUncaught(log, cleanup);
      let stopping = false;
      for (const sig of SHUTDOWN_SIGNALS) {
        process.on(sig, () => {
          if (stopping) {
            log.warn(`${sig} again: exiting now`);
            cleanup();
            process.exit(1);
          }
          stopping = true;
          log.info(`${sig}: graceful shutdown`);
          removeSocketFiles(listeners); // new clients are refused from now on
          serving.stop(config.shutdownTimeout).then(() => {
            cleanup();
            process.exit(0);
          });
        });
      }
      process.on('SIGHUP', () => log.warn('SIGHUP ignored: graceful restarts need a supervisor (run with --pre-fork=1 or more)'));
      process.on('SIGUSR1', () => {
        errorLog?.reopen();
        accessLog?.reopen();
      });
      ready(serving.addresses, `(pid ${process.pid})`);
      return;
    }

    await checkApp(config);
    listeners = inherited ?? (await bindListeners(config.listen, { ...config, warn: (m) => log.warn(m) }));
    // The supervisor serves nothing itself; only the workers write the access log.
    accessLog?.close();
    accessLog = undefined;
    const supervisor = new Supervisor(config, listeners, {
      log,
      onReady: (addresses) => ready(addresses, `with ${config.preFork} worker(s) (supervisor pid ${process.pid})`),
      onExit: (code) => {
        if (code !== 0 && daemonChild) {
          notifyDaemonParent({ type: 'daemon-failed', message: 'the workers failed to start', exitCode: code });
        }
        cleanup();
        process.exit(code);
      },
    });
    onUncaught(log, () => {
      releaseListeners(listeners);
      cleanup();
    });
    for (const sig of SHUTDOWN_SIGNALS) process.on(sig, () => supervisor.shutdown(sig));
    process.on('SIGHUP', () => supervisor.restart());
    process.on('SIGUSR1', () => {
      log.info('SIGUSR1: reopening log files');
      errorLog?.reopen();
      supervisor.reopenLogs();
    });
    supervisor.start();
  } catch (err) {
    fail(err);
  }
}

function onUncaught(log: RunnerLog, cleanup: () => void): void {
  process.on('uncaughtException', (err) => {
    log.error(`exiting on an uncaught exception: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    cleanup();
    process.exit(70);
  });
}
