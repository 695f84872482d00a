// Loads the C++ addon and describes its surface. Constants here mirror
// native/engine.h, native/connection.h and native/response_writer.h.
import path from 'node:path';

export interface NativeListenResult {
  index: number;
  address: string;
  port: number;
  family: string;
}

export interface NativeListenerOptions {
  proxyProtocol: boolean;
  tls?: object;
}

export interface NativeEngine {
  configure(options: Record<string, number>, info?: Int32Array): void;
  listenTcp(
    host: string,
    port: number,
    backlog: number,
    ipv6Only: boolean,
    reusePort: boolean,
    opts: NativeListenerOptions,
  ): NativeListenResult;
  listenUnix(path: string, backlog: number, opts: NativeListenerOptions): NativeListenResult;
  listenFd(fd: number, backlog: number, duplicate: boolean, opts: NativeListenerOptions): NativeListenResult;
  unlisten(): void;
  shutdown(onDone: () => void): void;
  stats(): { connections: number; requests: number; tlsHandshakes: number; tlsResumed: number };
  setListenerTls(index: number, tls: object): void;

  respond(id: number, status: number, headers: string, count: number, body: unknown): number;
  start(id: number, status: number, headers: string, count: number): number;
  write(id: number, chunk: unknown): number;
  end(id: number): number;
  informational(id: number, status: number, headers: string, count: number): number;
  pollDrain(id: number): number;
  setNotify(id: number): number;
  pauseBody(id: number, pause: boolean): number;
  fileno(id: number): number;
  forceVersion(id: number, version: 10 | 11): number;
  abort(id: number): number;
  detach(id: number): [number, Buffer, Buffer] | number;
  tunnel(id: number): number;
  lastHeadError(): string;
}

export interface NativeBinding {
  Engine: new (
    info: Int32Array,
    onRequest: (head: string, body: Buffer | undefined) => void,
    onEvent: (kind: number, id: number, chunk?: Buffer) => void,
  ) => NativeEngine;
  probeRequests(buf: Buffer, splitEvery?: number, maxHeadSize?: number, maxHeaders?: number): unknown;
  setScalarParser(scalar: boolean): void;
  /** Builds a TLS configuration (throws with OpenSSL's reason); see lib/tls.ts. */
  createTlsContext(opts: Record<string, unknown>): object;
  /** A bound, listening socket that nothing accepts on yet; returns its fd. */
  bindSocket(
    address: { host: string; port: number } | { path: string },
    backlog?: number,
    ipv6Only?: boolean,
    reusePort?: boolean,
  ): number;
}

// Info array layout (native/engine.h InfoIndex / InfoFlag).
export const INFO_FLAGS = 4;
export const INFO_LISTENER = 5;
export const INFO_REMOTE_PORT = 6;
export const INFO_METHOD_OFF = 7;
export const INFO_METHOD_LEN = 8;
export const INFO_TARGET_OFF = 9;
export const INFO_TARGET_LEN = 10;
export const INFO_PATH_LEN = 11;
export const INFO_REMOTE_OFF = 12;
export const INFO_REMOTE_LEN = 13;
export const INFO_FIELD_COUNT = 14;
export const INFO_TLS_LEN = 15;
export const INFO_FIELDS = 16;

export const FLAG_METHOD_MASK = 0xff;
export const FLAG_HTTP11 = 1 << 8;
export const FLAG_KEEP_ALIVE = 1 << 9;
export const FLAG_HAS_BODY = 1 << 10;
export const FLAG_BODY_STREAMING = 1 << 11;
export const FLAG_CHUNKED = 1 << 12;
export const FLAG_EXPECT_CONTINUE = 1 << 13;
export const FLAG_UPGRADE = 1 << 14;

// native/http_parser.h Method, in order.
export const METHOD_NAMES = ['', 'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'CONNECT', 'TRACE'];

// native/connection.h ConnEvent.
export const EV_BODY_DATA = 1;
export const EV_BODY_END = 2;
export const EV_BODY_ABORT = 3;
export const EV_DRAIN = 4;
export const EV_COMPLETE = 5;
export const EV_ABORT = 6;

// native/response_writer.h ResponseResult.
export const ERR_GONE = -1;
export const ERR_ALREADY_STARTED = -2;
export const ERR_BAD_HEADERS = -3;
export const ERR_BAD_STATUS = -4;
export const ERR_LENGTH_MISMATCH = -5;
export const ERR_NOT_STREAMING = -6;
export const ERR_NO_MEMORY = -7;
export const ERR_BAD_BODY = -8;
export const ERR_OVERFLOW = -9;

let binding: NativeBinding | undefined;

export function loadBinding(): NativeBinding {
  if (binding) return binding;
  const root = path.join(__dirname, '..');
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const nodeGypBuild = require('node-gyp-build') as (dir: string) => NativeBinding;
  binding = nodeGypBuild(root);
  return binding;
}
