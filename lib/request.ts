// The native connection interface: one FeersumRequest per request, with
// cheap accessors over the head string the addon passed, and the response
// methods (sendResponse, startStreaming -> Writer, responseGuard).
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';

import { bufferedBody, StreamedBody } from './body-stream';
import type { EngineCore } from './engine-core';
import { findHeader, headerBlock, readHeaderFields, type ResponseHeaders } from './headers';
import {
  ERR_ALREADY_STARTED,
  ERR_BAD_BODY,
  ERR_BAD_HEADERS,
  ERR_BAD_STATUS,
  ERR_GONE,
  ERR_LENGTH_MISMATCH,
  ERR_NOT_STREAMING,
  FLAG_BODY_STREAMING,
  FLAG_HAS_BODY,
  FLAG_HTTP11,
  FLAG_METHOD_MASK,
  INFO_FLAGS,
  INFO_LISTENER,
  INFO_METHOD_LEN,
  INFO_METHOD_OFF,
  INFO_PATH_LEN,
  INFO_REMOTE_LEN,
  INFO_REMOTE_OFF,
  INFO_REMOTE_PORT,
  INFO_TARGET_LEN,
  INFO_TARGET_OFF,
  INFO_TLS_LEN,
  METHOD_NAMES,
} from './native';
import { decodePath } from './path';
import type { PsgiEnv } from './psgi/env';
import { buildEnv } from './psgi/env';
import { Writer } from './writer';

export type Body = string | Uint8Array | ReadonlyArray<string | Uint8Array>;

/** What the TLS layer knows about a request's connection (HTTPS listeners). */
export interface TlsInfo {
  protocol: string;
  cipher: string;
  /** The SNI name the client asked for, '' without SNI. */
  serverName: string;
  /** 'SUCCESS', 'FAILED:<reason>' or 'NONE' (no client certificate), as nginx reports it. */
  clientVerify: string;
  /** Client certificate subject and issuer (RFC 2253), serial (hex) and PEM; '' without one. */
  clientSubject: string;
  clientIssuer: string;
  clientSerial: string;
  clientCert: string;
}

/** Where a request's streamed input goes: its body stream, or a TLS tunnel (psgix.io). */
interface BodySink {
  _chunk(chunk: Buffer): void;
  _end(): void;
  _abort(reason: string): void;
}

const enum State {
  None = 0,
  Streaming = 1,
  Done = 2,
}

export class FeersumRequest {
  /** Engine-wide id of this request (stale once the response is complete). */
  readonly id: number;
  /** Request method, e.g. 'GET'. */
  readonly method: string;
  /** @internal */ readonly _core: EngineCore;
  /** @internal */ readonly _head: string;
  /** @internal */ readonly _flags: number;
  /** @internal */ readonly _listener: number;
  /** @internal */ readonly _remotePort: number;
  /** @internal */ readonly _contentLength: number;
  /** @internal */ readonly _fields: string[];
  /** @internal */ _body: Buffer | undefined;
  /** @internal */ _input: Readable | undefined;
  /** @internal */ _bodySink: BodySink | undefined;
  /** @internal A TLS tunnel (psgix.io over TLS) waiting for the output to drain. */ _tunnel: { _drained(): void } | undefined = undefined;
  /** @internal */ _state: State = State.None;
  /** @internal */ _writer: Writer | undefined = undefined;
  /** @internal */ _env: PsgiEnv | undefined = undefined;
  /** @internal */ _guards: Array<() => void> | undefined = undefined;
  /** @internal */ _cleanup: Array<(env: PsgiEnv) => void> | undefined = undefined;
  /** @internal The connection was taken from the engine (psgix.io). */ _detached = false;
  /** @internal psgix.io: the socket once taken (or a destroyed one when it could not be). */
  _ioSocket: Socket | undefined = undefined;
  /** @internal */ _watched = false;
  /** @internal The 500 for this request's failure closes the connection. */ _closeAfterError = false;
  /** @internal The connection went away before the response was complete. */ _aborted = false;
  private readonly targetOff: number;
  private readonly targetLen: number;
  private readonly pathLen: number;
  private readonly remoteOff: number;
  private readonly remoteEnd: number;
  private readonly tlsLen: number;
  private pathCache: string | undefined = undefined;

  /** @internal Reads the shared info array the addon filled for this request. */
  constructor(core: EngineCore, head: string, body: Buffer | undefined, info: Int32Array, numbers: Float64Array) {
    this._core = core;
    this._head = head;
    this.id = numbers[0];
    this._contentLength = numbers[1];
    const flags = info[INFO_FLAGS];
    this._flags = flags;
    this._listener = info[INFO_LISTENER];
    this._remotePort = info[INFO_REMOTE_PORT];
    const m = flags & FLAG_METHOD_MASK;
    this.method = m ? METHOD_NAMES[m] : head.slice(info[INFO_METHOD_OFF], info[INFO_METHOD_OFF] + info[INFO_METHOD_LEN]);
    this.targetOff = info[INFO_TARGET_OFF];
    this.targetLen = info[INFO_TARGET_LEN];
    this.pathLen = info[INFO_PATH_LEN];
    this.remoteOff = info[INFO_REMOTE_OFF];
    this.remoteEnd = this.remoteOff + info[INFO_REMOTE_LEN];
    this.tlsLen = info[INFO_TLS_LEN];
    this._fields = readHeaderFields(head, info);
    this._body = body;
    this._input = undefined;
    this._bodySink = undefined;
    if (flags & FLAG_BODY_STREAMING) {
      const input = new StreamedBody(
        { pause: (p) => core.native.pauseBody(this.id, p) },
        core.options.bodyBufferSize || 64 * 1024,
      );
      this._input = input;
      this._bodySink = input;
    }
  }

  /** The raw request-target, e.g. '/a%20b?x=1'. */
  get uri(): string {
    return this._head.slice(this.targetOff, this.targetOff + this.targetLen);
  }

  /** The path, percent-decoded (as PSGI's PATH_INFO). */
  get path(): string {
    if (this.pathCache === undefined) {
      this.pathCache = decodePath(this._head.slice(this.targetOff, this.targetOff + this.pathLen));
    }
    return this.pathCache;
  }

  /** The query string without '?', '' when absent. */
  get query(): string {
    if (this.pathLen === this.targetLen) return '';
    const start = this.targetOff + this.pathLen;
    if (this._head.charCodeAt(start) !== 63 /* ? */) return '';
    let end = this.targetOff + this.targetLen;
    const hash = this._head.indexOf('#', start);
    if (hash !== -1 && hash < end) end = hash;
    return this._head.slice(start + 1, end);
  }

  /** 'HTTP/1.1' or 'HTTP/1.0'. */
  get protocol(): string {
    return this._flags & FLAG_HTTP11 ? 'HTTP/1.1' : 'HTTP/1.0';
  }

  /** The client's address ('' for Unix-socket clients). */
  get remoteAddress(): string {
    // The addon appends the peer address (then any TLS values) to the head string.
    return this._head.slice(this.remoteOff, this.remoteEnd);
  }

  /** True on an HTTPS listener. */
  get secure(): boolean {
    return this.tlsLen !== 0;
  }

  /** TLS details of the connection, or undefined for plain HTTP. */
  get tls(): TlsInfo | undefined {
    if (this.tlsLen === 0) return undefined;
    const v = this._head.slice(this.remoteEnd, this.remoteEnd + this.tlsLen).split('\0');
    return {
      protocol: v[0],
      cipher: v[1],
      serverName: v[2],
      clientVerify: v[3],
      clientSubject: v[4],
      clientIssuer: v[5],
      clientSerial: v[6],
      clientCert: v[7],
    };
  }

  get remotePort(): number {
    return this._remotePort;
  }

  /** A request header's value; repeated headers are joined with ', ' ('; ' for Cookie). */
  header(name: string): string | undefined {
    return findHeader(this._fields, name);
  }

  /** All header fields as a flat [name, value, ...] list, in the order received. */
  get headers(): readonly string[] {
    return this._fields;
  }

  /** The request body as a Readable (already ended when there is none). */
  get input(): Readable {
    if (!this._input) this._input = bufferedBody(this._body);
    return this._input;
  }

  /** The whole body when it was read before the handler ran, else undefined. */
  get body(): Buffer | undefined {
    return this._body;
  }

  /** True when the body was read whole before the handler ran (or there is none). */
  get bodyBuffered(): boolean {
    return !(this._flags & FLAG_BODY_STREAMING);
  }

  /** True when the request has a body (Content-Length > 0 or chunked). */
  get hasBody(): boolean {
    return (this._flags & FLAG_HAS_BODY) !== 0;
  }

  /** The PSGI environment for this request (built once, on first call). */
  env(): PsgiEnv {
    if (!this._env) this._env = buildEnv(this);
    return this._env;
  }

  /** The connection's file descriptor, or -1 once it is closed. */
  get fileno(): number {
    return this._core.native.fileno(this.id);
  }

  /** Answer as HTTP/1.0 would: HTTP/1.0 status line, no chunked encoding. */
  forceHttp10(): void {
    this._core.native.forceVersion(this.id, 10);
  }

  /** Frame the response as HTTP/1.1 even for an HTTP/1.0 request (chunked when streaming). */
  forceHttp11(): void {
    this._core.native.forceVersion(this.id, 11);
  }

  /** Sends a complete response. Content-Length is computed from the body. */
  sendResponse(status: number, headers: ResponseHeaders, body?: Body): void {
    checkStatus(status);
    const block = headerBlock(headers);
    // Before the response is handed over: the addon only reports the end of
    // responses it was asked about before they completed.
    this._watchCleanup();
    const rc = this._core.native.respond(this.id, status, block, headers ? headers.length : 0, body);
    if (rc === 0) {
      this._state = State.Done;
      return;
    }
    this.responseError(rc);
  }

  /** Sends the head of a streamed response and returns its writer. */
  startStreaming(status: number, headers: ResponseHeaders): Writer {
    checkStatus(status);
    const block = headerBlock(headers);
    const rc = this._core.native.start(this.id, status, block, headers ? headers.length : 0);
    const writer = new Writer(this);
    this._writer = writer;
    if (rc === 0) {
      this._state = State.Streaming;
      return writer;
    }
    if (rc === ERR_GONE && this._state === State.None) {
      // The client has gone: the writer exists but writes go nowhere.
      this._state = State.Done;
      writer._closed = true;
      return writer;
    }
    this.responseError(rc);
    return writer;
  }

  /** Sends a 1xx informational response (e.g. 103 Early Hints) before the final one. */
  informational(status: number, headers: ResponseHeaders): void {
    checkStatus(status);
    const rc = this._core.native.informational(this.id, status, headerBlock(headers), headers ? headers.length : 0);
    if (rc !== 0 && rc !== ERR_GONE) this.responseError(rc);
  }

  /** Calls fn once, when the response has been fully written or the connection aborted. */
  responseGuard(fn: () => void): void {
    if (typeof fn !== 'function') throw new TypeError('responseGuard(fn) needs a function');
    (this._guards ??= []).push(fn);
    this._watch();
  }

  /** @internal Runs the cleanup handlers once the response is done, if there are any. */
  _watchCleanup(): void {
    if (this._cleanup !== undefined && this._cleanup.length !== 0) this._watch();
  }

  /** @internal Asks the addon for COMPLETE/ABORT events for this request. */
  _watch(): void {
    if (this._watched) return;
    this._watched = true;
    // The addon reports the end of a response only if asked before it was
    // handed over in full (a streamed request body has it asked already).
    const followed = this._state !== State.Done || (this._flags & FLAG_BODY_STREAMING) !== 0;
    if (followed && this._core.watch(this)) return;
    // Already finished (written or aborted): run the guards soon.
    process.nextTick(() => this._finished(false));
  }

  /** @internal The response went out completely (aborted = false) or never will. */
  _finished(aborted: boolean): void {
    this._state = State.Done;
    if (aborted) this._aborted = true;
    if (this._writer) this._writer._closed = true;
    if (aborted) this._bodySink?._abort('connection closed before the request body was read');
    const guards = this._guards;
    this._guards = undefined;
    if (guards) for (const fn of guards) this._core.safely(fn, this);
    const cleanup = this._cleanup;
    this._cleanup = undefined;
    if (cleanup) {
      const env = this.env();
      for (const fn of cleanup) this._core.safely(() => fn(env), this);
    }
  }

  /** @internal */
  _bodyEvent(kind: 'data' | 'end' | 'abort', chunk?: Buffer): void {
    const sink = this._bodySink;
    if (!sink) return;
    if (kind === 'data') sink._chunk(chunk!);
    else if (kind === 'end') sink._end();
    else sink._abort('request body was not completed');
  }

  /** @internal The connection's output drained (pollCb, tunnel writes). */
  _drained(): void {
    this._writer?._drained();
    this._tunnel?._drained();
  }

  /** @internal True once a response (complete or streamed) has started. */
  get _responseStarted(): boolean {
    return this._state !== State.None;
  }

  /** @internal True once the whole response has been handed to the addon (or can no longer be). */
  get _responseDone(): boolean {
    return this._state === State.Done;
  }

  /** @internal */
  _markDone(): void {
    this._state = State.Done;
  }

  private responseError(rc: number): void {
    switch (rc) {
      case ERR_GONE:
        // The client went away (or the response is already complete).
        if (this._state !== State.None && !this._aborted) throw new Error('response already sent');
        this._state = State.Done;
        return;
      case ERR_ALREADY_STARTED:
        throw new Error('response already started');
      case ERR_BAD_HEADERS:
        throw new TypeError(`invalid response headers: ${this._core.native.lastHeadError()}`);
      case ERR_BAD_STATUS:
        throw new RangeError('invalid status code (100-199 only through informational(), 200-999 otherwise)');
      case ERR_LENGTH_MISMATCH:
        // The 500 that replaces it closes the connection (DESIGN: a length
        // mismatch never leaves the connection open), though nothing was sent.
        this._closeAfterError = true;
        throw new Error('Content-Length header does not match the body length');
      case ERR_BAD_BODY:
        throw new TypeError('body must be a string, Buffer, Uint8Array or an array of them');
      case ERR_NOT_STREAMING:
        throw new Error('response is not streaming');
      default:
        throw new Error(`response failed (${rc})`);
    }
  }
}

function checkStatus(status: number): void {
  if (!Number.isInteger(status)) throw new TypeError(`status must be an integer, got ${String(status)}`);
}
