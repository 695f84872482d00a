// Serving: one engine with the loaded application on already-bound
// listeners. The single-process runner uses it directly; each pre-fork
// worker (worker-main.ts) uses it under the supervisor.
import { performance } from 'node:perf_hooks';

import { Feersum, type RequestHandler } from '../engine';
import type { EngineOptions } from '../options';
import type { TlsOptions } from '../tls';
import { type PsgiApp, psgiHandler } from '../psgi/adapter';
import { type AccessRecord, compileAccessLogFormat } from './access-log';
import type { AppFunction } from './app-loader';
import { firstLine, StartupError } from './errors';
import { instrumentHandler } from './handler';
import type { LogFile } from './log-file';
import type { RunnerLog } from './log';
import type { ListeningAddress } from './messages';

export interface ServeOptions {
  app: AppFunction;
  native: boolean;
  /** Listening descriptors (the engine takes them over), with names for messages. */
  listeners: Array<{ fd: number; display: string; tls: boolean }>;
  /** For the listeners with tls: true. */
  tls: TlsOptions | undefined;
  proxyProtocol: boolean;
  engine: EngineOptions;
  serverHeader: string | undefined;
  accessLog: LogFile | undefined;
  accessLogFormat: string;
  log: RunnerLog;
  /** Pre-fork worker: psgi.multiprocess, psgix.harakiri and request counting. */
  worker?: {
    maxRequests: number;
    /** Called once when the worker should be replaced. */
    retire: (reason: string) => void;
  };
}

export interface Serving {
  engine: Feersum;
  addresses: ListeningAddress[];
  /** Stops accepting and resolves when in-flight requests are done (or after timeoutSeconds; 0 = no limit). */
  stop(timeoutSeconds: number): Promise<void>;
  /** Pre-fork workers: about to be replaced (or, false, not after all): responses close their connections. */
  windDown(on: boolean): void;
}

export function startServing(opts: ServeOptions): Serving {
  // The process-wide engine, so an app that calls Feersum.endjinn() (for
  // stats, say) gets the one serving it.
  const engine = Feersum.endjinn();
  engine.configure({ ...opts.engine, serverHeader: opts.serverHeader ?? '' });
  const log = opts.log;
  engine.onError((err, req) => {
    const where = req ? ` (${req.method} ${req.uri})` : '';
    const text = err instanceof Error ? (err.stack ?? String(err)) : String(err);
    log.error(`error in request handler${where}: ${text}`);
  });
  // psgi.errors: process.stderr, which redirectStderr() points at --error-log.
  engine.errors = process.stderr;

  let onRequest: (() => void) | undefined;
  // Pre-fork workers: replaced soon, because the worker asked (retiring) or
  // because the supervisor is restarting (windingDown, which it can take
  // back). Meanwhile every response closes its connection (engine.drain),
  // so keep-alive clients move to other workers after a complete response
  // instead of finding their idle connection closed under them.
  const state = { retiring: false, windingDown: false };
  const w = opts.worker;
  if (w) {
    engine.multiprocess = true;
    const retireOnce = (reason: string) => {
      if (state.retiring) return;
      state.retiring = true;
      engine.drain(true);
      w.retire(reason);
    };
    engine.harakiri = () => retireOnce('psgix.harakiri.commit');
    if (w.maxRequests > 0) {
      let served = 0;
      onRequest = () => {
        if (++served === w.maxRequests) retireOnce(`served ${served} requests`);
      };
    }
  }

  let accessLog: ((record: AccessRecord) => void) | undefined;
  if (opts.accessLog) {
    const format = compileAccessLogFormat(opts.accessLogFormat);
    const sink = opts.accessLog;
    accessLog = (record) => sink.write(format(record, performance.now()));
  }

  // The wrapper works on the native interface, below the PSGI adapter (the
  // handler engine.psgiRequestHandler(app) would install).
  const handler: RequestHandler = opts.native
    ? (opts.app as unknown as RequestHandler)
    : psgiHandler(opts.app as unknown as PsgiApp);
  engine.requestHandler(
    instrumentHandler(handler, { accessLog, onRequest }),
  );

  const addresses = opts.listeners.map(({ fd, display, tls }) => {
    try {
      const a = engine.acceptOnFd(fd, { proxyProtocol: opts.proxyProtocol, tls: tls ? opts.tls : undefined });
      return { ...a, tls };
    } catch (err) {
      throw new StartupError(`cannot accept connections on ${display}: ${firstLine(err)}`);
    }
  });

  let stopping: Promise<void> | undefined;
  const stop = (timeoutSeconds: number): Promise<void> => {
    if (stopping) return stopping;
    stopping = new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      if (timeoutSeconds > 0) {
        timer = setTimeout(() => {
          const { requests, connections } = engine.stats();
          log.warn(`shutdown timeout: giving up on ${requests} request(s) on ${connections} connection(s)`);
          resolve();
        }, timeoutSeconds * 1000);
      }
      // The engine serves connections whose first request is still on its
      // way (with Connection: close) and closes only idle keep-alive ones.
      engine.gracefulShutdown().then(() => {
        if (timer) clearTimeout(timer);
        resolve();
      });
    });
    return stopping;
  };

  const windDown = (on: boolean) => {
    state.windingDown = on;
    engine.drain(state.retiring || on);
  };

  return { engine, addresses, stop, windDown };
}
