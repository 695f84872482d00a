// Entry point of a pre-fork worker process (spawned by supervisor.ts with
// the listeners at fds 3, 4, ... and an IPC channel). Loads the app, serves,
// asks to be replaced when it has served its share, and stops gracefully
// when told to -- or when the supervisor disappears.
import { Feersum } from '../engine';
import { loadApp } from './app-loader';
import { firstLine } from './errors';
import { LogFile } from './log-file';
import { redirectStderr, RunnerLog } from './log';
import { type SupervisorMessage, WORKER_CONFIG_ENV, type WorkerConfig, type WorkerMessage } from './messages';
import { tlsOptions } from './tls-config';
import { startServing, type Serving } from './worker';

function send(msg: WorkerMessage, then?: () => void): void {
  if (!process.send || !process.connected) {
    then?.();
    return;
  }
  process.send(msg, undefined, {}, () => then?.());
}

async function main(): Promise<void> {
  const raw = process.env[WORKER_CONFIG_ENV];
  if (!raw || !process.send) {
    process.stderr.write('feersum-ts: worker-main is started by the feersum-ts supervisor, not by hand\n');
    process.exit(2);
  }
  // The app must not see (or pass on to its own children) the runner's plumbing.
  delete process.env[WORKER_CONFIG_ENV];
  const cfg = JSON.parse(raw) as WorkerConfig;

  const log = new RunnerLog(cfg.quiet, 'feersum-ts worker');
  let errorLog: LogFile | undefined;
  let accessLog: LogFile | undefined;
  try {
    if (cfg.errorLog) {
      errorLog = new LogFile(cfg.errorLog, 0);
      log.useFile(errorLog);
      redirectStderr(errorLog);
    }
    if (cfg.accessLog) accessLog = new LogFile(cfg.accessLog, 1000);
  } catch (err) {
    send({ type: 'load-error', message: firstLine(err) }, () => process.exit(1));
    return;
  }
  const flushLogs = () => {
    accessLog?.flush();
    errorLog?.flush();
  };
  process.on('exit', flushLogs);
  // State is unknown after an uncaught exception: log it where the operator
  // looks, and let the supervisor start a clean worker.
  process.on('uncaughtException', (err) => {
    log.error(`worker exiting on an uncaught exception: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(70);
  });

  let serving: Serving | undefined;
  let stopping = false;
  const stop = (why: string) => {
    if (stopping) return;
    stopping = true;
    if (!serving) process.exit(0);
    log.info(`stopping (${why})`);
    serving.stop(cfg.shutdownTimeout).then(() => {
      flushLogs();
      process.exit(0);
    });
  };

  process.on('message', (msg: SupervisorMessage) => {
    if (msg.type === 'stop') stop('asked by the supervisor');
    else if (msg.type === 'wind-down') serving?.windDown(msg.on);
    else if (msg.type === 'reopen-logs') {
      accessLog?.reopen();
      errorLog?.reopen();
    }
  });
  // No supervisor any more (it was killed): finish what is in flight and go.
  process.on('disconnect', () => stop('the supervisor is gone'));
  // A terminal's Ctrl-C or systemd's KillMode=control-group signal every
  // process of the group: each worker then shuts down gracefully by itself.
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGQUIT'] as const) process.on(sig, () => stop(sig));
  // SIGHUP is the supervisor's (a restart); a worker ignores a stray one.
  process.on('SIGHUP', () => {});
  process.on('SIGUSR1', () => {
    accessLog?.reopen();
    errorLog?.reopen();
  });

  let app;
  try {
    app = await loadApp(cfg.app, cfg.native);
  } catch (err) {
    // The supervisor prints it (once, not once per worker).
    send({ type: 'load-error', message: firstLine(err) }, () => process.exit(1));
    return;
  }
  if (cfg.checkOnly) {
    process.exit(0);
  }

  const listeners = cfg.listeners.map((l, i) => ({ fd: 3 + i, ...l }));
  try {
    serving = startServing({
      app,
      native: cfg.native,
      listeners,
      tls: cfg.tls ? tlsOptions(cfg.tls) : undefined,
      proxyProtocol: cfg.proxyProtocol,
      engine: cfg.engine,
      serverHeader: cfg.serverHeader,
      accessLog,
      accessLogFormat: cfg.accessLogFormat,
      log,
      worker: {
        maxRequests: cfg.maxRequests,
        retire: (reason) => send({ type: 'retire', reason }),
      },
    });
  } catch (err) {
    // Renewed TLS files that are broken, say. Not a crash: reported like an
    // app that does not load, so that a restart is abandoned and the old
    // workers keep serving. Listeners taken before the failure stop
    // accepting now, so nothing lands here while the report is on its way.
    Feersum.endjinn().unlisten();
    send({ type: 'serve-error', message: firstLine(err) }, () => process.exit(1));
    return;
  }
  if (stopping) return; // told to stop while loading
  send({ type: 'ready', addresses: serving.addresses });
}

void main();
