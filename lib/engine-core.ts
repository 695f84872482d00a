// What requests, writers and the PSGI adapter need from their engine; the
// Feersum class implements it (kept apart to avoid an import cycle).
import type { Writable } from 'node:stream';

import type { NativeEngine } from './native';
import type { ResolvedOptions } from './options';
import type { FeersumRequest } from './request';

export interface ListenerInfo {
  address: string;
  port: number;
  family: string;
  /** SERVER_NAME / SERVER_PORT as the env reports them. */
  serverName: string;
  serverPort: string;
  /** 'http' or 'https'. */
  scheme: string;
  /** For HTTPS listeners, the options to rebuild its TLS context from (reloadTls). */
  tlsOptions?: import('./tls').TlsOptions;
}

export interface EngineCore {
  readonly native: NativeEngine;
  readonly options: ResolvedOptions;
  /** psgi.errors */
  readonly errors: Writable;
  /** psgi.multiprocess (true in pre-fork workers). */
  readonly multiprocess: boolean;
  listenerInfo(index: number): ListenerInfo;
  /** Registers req for COMPLETE/ABORT events; false when it has already finished. */
  watch(req: FeersumRequest): boolean;
  /** 1: drained now; 0: a drain event will follow; < 0: gone. */
  watchDrain(req: FeersumRequest): number;
  /** Runs fn, reporting (never throwing) what it throws. */
  safely(fn: () => void, req?: FeersumRequest): void;
  reportError(err: unknown, req?: FeersumRequest): void;
  /** A handler failed: reports err, then a 500 if nothing was sent yet, else closes the connection. */
  handlerFailed(req: FeersumRequest, err: unknown): void;
  /** Called with (env) by psgix.harakiri when set; the runner installs it. */
  harakiri?: () => void;
}
