// The engine object users hold: listeners, options, the request handler,
// and the JavaScript side of dispatch (one call per request from the addon).
import dns from 'node:dns/promises';
import fs from 'node:fs';
import net from 'node:net';
import type { Writable } from 'node:stream';

import type { EngineCore, ListenerInfo } from './engine-core';
import {
  EV_ABORT,
  EV_BODY_ABORT,
  EV_BODY_DATA,
  EV_BODY_END,
  EV_COMPLETE,
  EV_DRAIN,
  ERR_GONE,
  INFO_FIELDS,
  loadBinding,
  type NativeEngine,
  type NativeListenResult,
} from './native';
import { DEFAULT_OPTIONS, type EngineOptions, mergeOptions, nativeOptions, type ResolvedOptions } from './options';
import { type PsgiApp, psgiHandler } from './psgi/adapter';
import { FeersumRequest } from './request';
import { createTlsContext, type TlsOptions } from './tls';

export type RequestHandler = (req: FeersumRequest) => unknown;
export type ErrorHook = (err: unknown, req?: FeersumRequest) => void;

export interface ListenOptions {
  host?: string;
  port?: number;
  /** Unix socket path; '@name' is an abstract socket (Linux). */
  path?: string;
  backlog?: number;
  /** For an IPv6 host: do not accept IPv4 clients too. */
  ipv6Only?: boolean;
  /** SO_REUSEPORT, so several processes can bind the same port. */
  reusePort?: boolean;
  /** Connections start with a PROXY protocol v1/v2 header (HAProxy, cloud load balancers). */
  proxyProtocol?: boolean;
  /** Serve HTTPS on this listener (see TlsOptions: key/cert as PEM, Buffer or file path). */
  tls?: TlsOptions;
}

export interface AddressInfo {
  address: string;
  port: number;
  family: string;
}

const INTERNAL_ERROR_HEADERS = 'Content-Type\ntext/plain';
const INTERNAL_ERROR_CLOSE_HEADERS = 'Content-Type\ntext/plain\nConnection\nclose';

function defaultErrorHook(err: unknown, req?: FeersumRequest): void {
  const where = req ? ` (${req.method} ${req.uri})` : '';
  const text = err instanceof Error ? err.stack ?? String(err) : String(err);
  process.stderr.write(`feersum-ts: error in request handler${where}: ${text}\n`);
}

function noHandler(req: FeersumRequest): void {
  req.sendResponse(503, ['Content-Type', 'text/plain'], 'No request handler installed\n');
}

export class Feersum implements EngineCore {
  private static instance: Feersum | undefined;

  /** The process-wide engine (Perl Feersum's endjinn). */
  static endjinn(): Feersum {
    if (!Feersum.instance) Feersum.instance = new Feersum();
    return Feersum.instance;
  }

  readonly native: NativeEngine;
  options: ResolvedOptions;
  /** psgi.errors: stderr unless configured. */
  errors: Writable = process.stderr;
  /** psgi.multiprocess: set by the pre-fork runner in its workers. */
  multiprocess = false;
  harakiri?: () => void;

  private info: Int32Array;
  private numbers: Float64Array;
  private handler: RequestHandler = noHandler;
  private errorHook: ErrorHook = defaultErrorHook;
  private readonly listeners: ListenerInfo[] = [];
  private readonly registry = new Map<number, FeersumRequest>();
  private serverNameOverride: string | undefined;
  private serverPortOverride: string | undefined;
  /** Listener infos with the override applied, made once per listener (read per request). */
  private overridden: ListenerInfo[] = [];

  constructor(options?: EngineOptions) {
    this.options = mergeOptions(DEFAULT_OPTIONS, options);
    this.info = new Int32Array(INFO_FIELDS + 4 * this.options.maxHeaderCount);
    this.numbers = new Float64Array(this.info.buffer, 0, 2);
    const binding = loadBinding();
    this.native = new binding.Engine(this.info, this.onRequest, this.onEvent);
    this.native.configure(nativeOptions(this.options), this.info);
  }

  /** Changes engine options (see EngineOptions); affects requests parsed from now on. */
  configure(options: EngineOptions): this {
    const next = mergeOptions(this.options, options);
    let info: Int32Array | undefined;
    if (next.maxHeaderCount !== this.options.maxHeaderCount) {
      info = new Int32Array(INFO_FIELDS + 4 * next.maxHeaderCount);
      this.info = info;
      this.numbers = new Float64Array(info.buffer, 0, 2);
    }
    this.native.configure(nativeOptions(next), info);
    this.options = next;
    return this;
  }

  /** Gets, or sets (seconds), the request-body read timeout. */
  readTimeout(seconds?: number): number {
    if (seconds !== undefined) this.configure({ readTimeout: seconds });
    return this.options.readTimeout;
  }

  /** Starts accepting on a TCP address or a Unix socket path. */
  async listen(opts: ListenOptions = {}): Promise<AddressInfo> {
    const backlog = opts.backlog ?? 511;
    // Certificates are checked here, before anything is bound.
    const tlsContext = opts.tls ? createTlsContext(opts.tls) : undefined;
    const lopts = { proxyProtocol: !!opts.proxyProtocol, tls: tlsContext };
    const record = (r: NativeListenResult) => this.addListener(r, opts.tls);
    if (opts.path !== undefined) return record(this.native.listenUnix(opts.path, backlog, lopts));
    const port = opts.port ?? 0;
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`invalid port ${String(opts.port)}`);
    let host = opts.host;
    if (host === undefined || host === '') {
      // As node:http does: every address, IPv6 and IPv4, when IPv6 exists.
      try {
        return record(this.native.listenTcp('::', port, backlog, false, !!opts.reusePort, lopts));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAFNOSUPPORT') throw err;
        host = '0.0.0.0';
      }
    } else if (host.startsWith('[') && host.endsWith(']')) {
      host = host.slice(1, -1);
    }
    if (net.isIP(host) === 0) host = (await dns.lookup(host)).address;
    return record(this.native.listenTcp(host, port, backlog, !!opts.ipv6Only, !!opts.reusePort, lopts));
  }

  /**
   * Accepts on an already-listening net.Server's socket instead of Node.
   * The server stops accepting itself (its handle is closed; a Unix socket
   * file stays in place).
   */
  useSocket(server: net.Server, opts: { proxyProtocol?: boolean } = {}): AddressInfo {
    const handle = (server as unknown as { _handle?: { fd?: number } })._handle;
    const fd = handle?.fd;
    if (typeof fd !== 'number' || fd < 0) throw new TypeError('useSocket() needs a listening net.Server');
    const result = this.addListener(this.native.listenFd(fd, 511, true, { proxyProtocol: !!opts.proxyProtocol }));
    const addr = server.address();
    if (typeof addr === 'string' && addr !== '' && !addr.startsWith('\0') && !addr.startsWith('@')) {
      // Closing a Unix-socket server unlinks its path; keep the file for our
      // listener by moving a hard link back over it.
      const keep = `${addr}.feersum-${process.pid}`;
      fs.linkSync(addr, keep);
      server.close();
      fs.renameSync(keep, addr);
    } else {
      server.close();
    }
    return result;
  }

  /** Accepts on an inherited listening socket (the engine owns the fd from now on). */
  acceptOnFd(fd: number, opts: { proxyProtocol?: boolean; tls?: TlsOptions } = {}): AddressInfo {
    if (!Number.isInteger(fd) || fd < 0) throw new TypeError(`invalid file descriptor ${String(fd)}`);
    const tlsContext = opts.tls ? createTlsContext(opts.tls) : undefined;
    const r = this.native.listenFd(fd, 511, false, { proxyProtocol: !!opts.proxyProtocol, tls: tlsContext });
    return this.addListener(r, opts.tls);
  }

  /**
   * Reads every TLS listener's certificates and keys again (files are
   * re-read) and uses them for new connections; open connections keep
   * theirs. On any error nothing changes and the error is thrown.
   */
  reloadTls(): void {
    const fresh = this.listeners.map((l) => (l?.tlsOptions ? createTlsContext(l.tlsOptions) : undefined));
    fresh.forEach((ctx, index) => {
      if (ctx) this.native.setListenerTls(index, ctx);
    });
  }

  /** Stops accepting; open connections go on. */
  unlisten(): void {
    this.native.unlisten();
  }

  /**
   * From now on every response closes its connection (Connection: close),
   * until drain(false); nothing else changes. A pre-fork worker about to be
   * replaced calls this, so keep-alive clients move to the new worker
   * without a failed request.
   */
  drain(on = true): void {
    this.native.drain(on);
  }

  /**
   * Stops accepting, lets in-flight requests finish (and serves, with
   * Connection: close, connections still sending their first request),
   * closes idle keep-alive connections, and resolves when all are closed.
   */
  gracefulShutdown(): Promise<void> {
    return new Promise((resolve) => this.native.shutdown(resolve));
  }

  /** Installs a native-interface handler: fn(req) for each request. */
  requestHandler(fn: RequestHandler): this {
    if (typeof fn !== 'function') throw new TypeError('requestHandler(fn) needs a function');
    this.handler = fn;
    return this;
  }

  /** Installs a PSGI application. */
  psgiRequestHandler(app: PsgiApp): this {
    if (typeof app !== 'function') throw new TypeError('psgiRequestHandler(app) needs a function');
    this.handler = psgiHandler(app);
    return this;
  }

  /** Overrides SERVER_NAME / SERVER_PORT for every listener. */
  setServerNameAndPort(name: string, port: number | string): void {
    this.serverNameOverride = String(name);
    this.serverPortOverride = String(port);
    this.overridden = [];
  }

  /**
   * Where errors thrown by handlers (and other application errors) are
   * reported. The default writes them to stderr.
   */
  onError(hook: ErrorHook): this {
    if (typeof hook !== 'function') throw new TypeError('onError(hook) needs a function');
    this.errorHook = hook;
    return this;
  }

  /**
   * Open connections, requests in flight, and TLS handshakes so far (full,
   * and resumed from a session cache or ticket).
   */
  stats(): { connections: number; requests: number; tlsHandshakes: number; tlsResumed: number } {
    return this.native.stats();
  }

  // ------------------------------------------------------------ EngineCore

  listenerInfo(index: number): ListenerInfo {
    const l = this.listeners[index];
    if (this.serverNameOverride === undefined) return l;
    return (this.overridden[index] ??= { ...l, serverName: this.serverNameOverride, serverPort: this.serverPortOverride! });
  }

  watch(req: FeersumRequest): boolean {
    if (this.native.setNotify(req.id) < 0) return false;
    this.registry.set(req.id, req);
    return true;
  }

  watchDrain(req: FeersumRequest): number {
    const st = this.native.pollDrain(req.id);
    if (st === 0) this.registry.set(req.id, req);
    return st;
  }

  safely(fn: () => void, req?: FeersumRequest): void {
    try {
      fn();
    } catch (err) {
      this.reportError(err, req);
    }
  }

  reportError(err: unknown, req?: FeersumRequest): void {
    try {
      this.errorHook(err, req);
    } catch (hookErr) {
      defaultErrorHook(hookErr, req);
    }
  }

  // ------------------------------------------------------------ dispatch

  private addListener(r: NativeListenResult, tlsOptions?: TlsOptions): AddressInfo {
    const unix = r.family === 'unix';
    this.overridden = [];
    this.listeners[r.index] = {
      address: r.address,
      port: r.port,
      family: r.family,
      serverName: unix ? 'localhost' : r.address,
      serverPort: String(r.port),
      scheme: tlsOptions ? 'https' : 'http',
      tlsOptions,
    };
    return { address: r.address, port: r.port, family: r.family };
  }

  private readonly onRequest = (head: string, body: Buffer | undefined): void => {
    const req = new FeersumRequest(this, head, body, this.info, this.numbers);
    if (req._input !== undefined) this.registry.set(req.id, req); // streamed body: events follow
    let result: unknown;
    try {
      result = this.handler(req);
    } catch (err) {
      this.handlerFailed(req, err);
      return;
    }
    if (result !== undefined && result !== null && typeof (result as Promise<unknown>).then === 'function') {
      (result as Promise<unknown>).then(undefined, (err: unknown) => this.handlerFailed(req, err));
    }
  };

  /**
   * A handler threw or rejected: 500 if nothing was sent yet, the connection
   * closed if a response is half sent; a complete response stays as it is.
   */
  handlerFailed(req: FeersumRequest, err: unknown): void {
    this.reportError(err, req);
    req._watchCleanup();
    if (req._detached || req._responseDone) return;
    if (!req._responseStarted) {
      const rc = req._closeAfterError
        ? this.native.respond(req.id, 500, INTERNAL_ERROR_CLOSE_HEADERS, 4, 'Internal Server Error\n')
        : this.native.respond(req.id, 500, INTERNAL_ERROR_HEADERS, 2, 'Internal Server Error\n');
      if (rc === 0 || rc === ERR_GONE) {
        req._markDone();
        return;
      }
    }
    this.native.abort(req.id);
  }

  private readonly onEvent = (kind: number, id: number, chunk?: Buffer): void => {
    const req = this.registry.get(id);
    if (!req) return;
    switch (kind) {
      case EV_BODY_DATA:
        req._bodyEvent('data', chunk);
        break;
      case EV_BODY_END:
        req._bodyEvent('end');
        break;
      case EV_BODY_ABORT:
        req._bodyEvent('abort');
        break;
      case EV_DRAIN:
        req._drained();
        break;
      case EV_COMPLETE:
        this.registry.delete(id);
        req._finished(false);
        break;
      case EV_ABORT:
        this.registry.delete(id);
        req._finished(true);
        break;
    }
  };
}
