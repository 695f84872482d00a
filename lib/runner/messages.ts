// What the supervisor and its workers say to each other over the IPC
// channel, and the configuration a worker starts with.
import type { EngineOptions } from '../options';
import type { TlsConfig } from './tls-config';

/** Passed to a worker in the FEERSUM_TS_WORKER environment variable (JSON). */
export interface WorkerConfig {
  app: string;
  native: boolean;
  /** Only load the app and exit (the supervisor's check before binding). */
  checkOnly: boolean;
  /** The listeners are this process's fds 3, 4, ... in this order: their names (for messages) and whether they serve HTTPS. */
  listeners: Array<{ display: string; tls: boolean }>;
  tls: TlsConfig | undefined;
  proxyProtocol: boolean;
  engine: EngineOptions;
  /** Retire after this many requests (0 = never). */
  maxRequests: number;
  shutdownTimeout: number;
  serverHeader: string | undefined;
  accessLog: string | undefined;
  accessLogFormat: string;
  errorLog: string | undefined;
  quiet: boolean;
  /** Generation (1 at start, +1 per SIGHUP), for messages. */
  generation: number;
}

export const WORKER_CONFIG_ENV = 'FEERSUM_TS_WORKER';

export interface ListeningAddress {
  address: string;
  port: number;
  family: string;
  tls: boolean;
}

export type WorkerMessage =
  /** Accepting on every listener. */
  | { type: 'ready'; addresses: ListeningAddress[] }
  /** The app did not load; the worker exits with status 1 after this. */
  | { type: 'load-error'; message: string }
  /** The app loaded but the worker cannot serve it (TLS files, a listener); it exits with status 1 after this. */
  | { type: 'serve-error'; message: string }
  /** Wants to be replaced (max requests reached, or psgix.harakiri.commit); keeps serving until told to stop. */
  | { type: 'retire'; reason: string };

export type SupervisorMessage =
  /** A replacement is on its way (SIGHUP): answer with Connection: close (on), or not after all (off: the restart failed). */
  | { type: 'wind-down'; on: boolean }
  /** Stop accepting, finish in-flight requests, exit. */
  | { type: 'stop' }
  /** Reopen log files (SIGUSR1). */
  | { type: 'reopen-logs' };

/** From a --daemonize child to the parent waiting in the foreground. */
export type DaemonMessage = { type: 'daemon-ready' } | { type: 'daemon-failed'; message: string; exitCode: number };
