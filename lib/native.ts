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
  configure(options: Record<string, number | string>, info?: Int32Array): void;
  drain(on: boolean): void;
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

type NodeGypBuild = ((dir: string) => unknown) & { resolve(dir: string): string };

/**
 * Loads the addon the way node-gyp-build does -- a from-source build in
 * build/Release (or build/Debug) first, else the prebuilt binary in
 * prebuilds/<platform>-<arch>/ -- and, when none loads, throws one paragraph
 * saying which platform this is, what was looked for and how to build from
 * source (code ERR_FEERSUM_NO_BINDING; the underlying errors are kept, not
 * enumerable, in `causes`). `dir` (the package root) is for tests; the
 * FEERSUM_TS_PREBUILD environment variable, honoured by node-gyp-build,
 * points the search at another directory holding build/ or prebuilds/.
 */
export function loadBinding(dir?: string): NativeBinding {
  if (binding && dir === undefined) return binding;
  const root = dir ?? path.join(__dirname, '..');
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const nodeGypBuild = require('node-gyp-build') as NodeGypBuild;
  let file: string;
  try {
    file = nodeGypBuild.resolve(root);
  } catch (err) {
    throw bindingError(root, undefined, err);
  }
  let loaded: NativeBinding;
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    loaded = require(file) as NativeBinding;
  } catch (err) {
    throw bindingError(root, file, err);
  }
  if (typeof loaded?.Engine !== 'function') {
    throw bindingError(root, file, new Error('it does not export the feersum-ts engine'));
  }
  if (dir === undefined) binding = loaded;
  return loaded;
}

/** "glibc 2.36", "musl" or "unknown libc" (Linux only; '' elsewhere). */
function describeLibc(): string {
  if (process.platform !== 'linux') return '';
  try {
    const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
    const glibc = report?.header?.glibcVersionRuntime;
    if (glibc) return `glibc ${glibc}`;
  } catch {
    // fall through
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const fs = require('node:fs') as typeof import('node:fs');
    if (fs.readdirSync('/lib').some((f) => f.startsWith('ld-musl-'))) return 'musl';
  } catch {
    // fall through
  }
  return 'an unknown libc (not glibc)';
}

/** The architecture an ELF file was built for, in process.arch terms ('' when not ELF / unknown). */
function elfMachine(file: string): string {
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const fs = require('node:fs') as typeof import('node:fs');
    const fd = fs.openSync(file, 'r');
    const head = Buffer.alloc(20);
    try {
      fs.readSync(fd, head, 0, 20, 0);
    } finally {
      fs.closeSync(fd);
    }
    if (head.readUInt32BE(0) !== 0x7f454c46) return '';
    const machines: Record<number, string> = { 0x03: 'ia32', 0x28: 'arm', 0x3e: 'x64', 0xb7: 'arm64', 0xf3: 'riscv64', 0x15: 'ppc64', 0x16: 's390x' };
    const m = head[5] === 2 ? head.readUInt16BE(18) : head.readUInt16LE(18);
    return machines[m] ?? `machine-${m}`;
  } catch {
    return '';
  }
}

function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n').map((l) => l.trim()).filter(Boolean)[0] ?? 'unknown error';
}

function bindingError(root: string, file: string | undefined, cause: unknown): Error {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const fs = require('node:fs') as typeof import('node:fs');
  const override = process.env.FEERSUM_TS_PREBUILD;
  const base = override || root;
  const tuple = `${process.platform}-${process.arch}`;
  const libc = describeLibc();
  let shipped: string[] = [];
  try {
    shipped = fs
      .readdirSync(path.join(base, 'prebuilds'), { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name)
      .sort();
  } catch {
    // no prebuilds directory
  }
  const platform =
    `${tuple}${libc ? ` with ${libc}` : ''} (Node.js ${process.version}, N-API ${process.versions.napi ?? '?'})`;
  const parts: string[] = [];
  if (file) {
    parts.push(`feersum-ts: the native addon ${file} was found but does not load on ${platform}: ${firstLine(cause)}.`);
    const machine = elfMachine(file);
    if (machine && machine !== process.arch) {
      parts.push(`The file is a Linux ${machine} binary, and this machine is ${process.arch}.`);
    } else if (/GLIBC_|GLIBCXX_|CXXABI_/.test(String(cause))) {
      parts.push('The C or C++ runtime library of this system is older than the one the binary was built against (the prebuilt binaries need glibc 2.28 or later, as Node.js 18 does).');
    } else if (libc === 'musl' || /musl|Error relocating|__fprintf_chk|ld-linux/.test(String(cause))) {
      parts.push('The prebuilt binaries are for glibc; musl systems (Alpine) need a build from source.');
    }
  } else {
    parts.push(
      `feersum-ts: no native addon found for ${platform}. Looked for a from-source build in ` +
        `${path.join(base, 'build', 'Release')} and ${path.join(base, 'build', 'Debug')}, then for a prebuilt binary ` +
        `in ${path.join(base, 'prebuilds', tuple)} (prebuilt binaries ship for ` +
        `${shipped.length ? `${shipped.join(', ')}, glibc` : 'no platform: the prebuilds directory is missing'}` +
        `${libc === 'musl' ? '; musl systems need a build from source' : ''}).`,
    );
    if (override) parts.push(`FEERSUM_TS_PREBUILD=${override} redirected this search.`);
    if (process.env.PREBUILDS_ONLY) parts.push('PREBUILDS_ONLY is set, so build/ was not searched.');
  }
  parts.push(
    'To build the addon from source, install python3, make and a C++17 compiler (g++ 8+ or clang++), ' +
      'then run `npm rebuild feersum-ts --build-from-source` in your project ' +
      '(on Debian/Ubuntu: apt-get install -y python3 make g++; on Alpine: apk add python3 make g++).',
  );
  const error = new Error(parts.join(' ')) as Error & { code: string; causes: unknown[] };
  error.code = 'ERR_FEERSUM_NO_BINDING';
  Object.defineProperty(error, 'causes', { value: [cause], enumerable: false });
  // One paragraph, then only the caller's frames: none of the loader's
  // internals, node-gyp-build's or N-API's.
  const frames = (new Error().stack ?? '')
    .split('\n')
    .slice(1)
    .filter((l) => !l.includes(__dirname) && !l.includes('node-gyp-build') && !l.includes('node:internal'));
  error.stack = [`Error [ERR_FEERSUM_NO_BINDING]: ${error.message}`, ...frames].join('\n');
  return error;
}
