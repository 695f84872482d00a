// Engine options: their defaults, validation, and the form the addon takes.
export interface EngineOptions {
  /** Bytes allowed for the request line plus headers (431 above; 414 for the request line alone). */
  maxHeaderSize?: number;
  /** Bytes allowed for one line of the head, CRLF included: the request line (414 above) or a header line (431 above). */
  maxHeaderLineSize?: number;
  /** Number of header fields allowed (400 above). */
  maxHeaderCount?: number;
  /** Largest request body in bytes, 0 = unlimited (413 above). */
  maxBodySize?: number;
  /** Bodies up to this many bytes are read whole before the handler runs; larger ones stream. */
  bodyBufferSize?: number;
  /** Seconds for the whole request head to arrive, from accept or the first byte (slowloris defence). */
  headerTimeout?: number;
  /** Seconds of silence allowed between request-body reads. */
  readTimeout?: number;
  /** Seconds an idle keep-alive connection is kept open. */
  keepaliveTimeout?: number;
  /** Seconds without write progress before a client that stopped reading is dropped. */
  writeTimeout?: number;
  /** Seconds to drain input after closing our side (lingering close). */
  lingerTimeout?: number;
  /** Requests served per connection before it is closed (0 = unlimited). */
  maxKeepaliveRequests?: number;
  /** Concurrent connections; connections over the limit are accepted and closed at once (0 = unlimited). */
  maxConnections?: number;
  /** Pass header names containing '_' to the env (dropped by default, as nginx does). */
  allowUnderscoreHeaders?: boolean;
  /** Bytes queued for a client before write() returns false. */
  writeHighWaterMark?: number;
  /** Requests on one connection parsed ahead of their responses. */
  maxPipeline?: number;
  /**
   * Bytes of output queued for one connection beyond which a stream that
   * ignores backpressure is stopped: the connection is dropped and the error reported.
   */
  maxWriteBuffer?: number;
  /** Seconds a handler may take to start its response; then the client gets 503 (0 = no limit). */
  handlerTimeout?: number;
  /** A `Server:` header for every response that has none ('' = none, the default). */
  serverHeader?: string;
}

export type ResolvedOptions = Required<EngineOptions>;

// Chosen like nginx's (8 KiB line buffers, 32 KiB of headers in total,
// 75 s keep-alive) so that a cloud load balancer's 60 s idle timeout closes
// first and a slow client cannot hold a connection with a trickle of bytes.
export const DEFAULT_OPTIONS: ResolvedOptions = {
  maxHeaderSize: 32 * 1024,
  maxHeaderLineSize: 8 * 1024,
  maxHeaderCount: 100,
  maxBodySize: 0,
  bodyBufferSize: 64 * 1024,
  headerTimeout: 10,
  readTimeout: 60,
  keepaliveTimeout: 75,
  writeTimeout: 60,
  lingerTimeout: 2,
  maxKeepaliveRequests: 1000,
  maxConnections: 0,
  allowUnderscoreHeaders: false,
  writeHighWaterMark: 64 * 1024,
  maxPipeline: 32,
  maxWriteBuffer: 16 * 1024 * 1024,
  handlerTimeout: 0,
  serverHeader: '',
};

const LIMITS: Record<keyof EngineOptions, [number, number]> = {
  maxHeaderSize: [256, 16 * 1024 * 1024],
  maxHeaderLineSize: [64, 16 * 1024 * 1024],
  maxHeaderCount: [1, 10000],
  maxBodySize: [0, Number.MAX_SAFE_INTEGER],
  bodyBufferSize: [0, 64 * 1024 * 1024],
  headerTimeout: [0, 86400 * 365],
  readTimeout: [0, 86400 * 365],
  keepaliveTimeout: [0, 86400 * 365],
  writeTimeout: [0, 86400 * 365],
  lingerTimeout: [0, 3600],
  maxKeepaliveRequests: [0, 2 ** 32 - 1],
  maxConnections: [0, 2 ** 32 - 1],
  allowUnderscoreHeaders: [0, 1],
  writeHighWaterMark: [1, 2 ** 31 - 1],
  maxPipeline: [1, 1024],
  maxWriteBuffer: [64 * 1024, Number.MAX_SAFE_INTEGER],
  handlerTimeout: [0, 86400 * 365],
  serverHeader: [0, 0],
};

/** Validates `update` and merges it over `base`; throws a TypeError/RangeError naming the option. */
export function mergeOptions(base: ResolvedOptions, update: EngineOptions | undefined): ResolvedOptions {
  const out: ResolvedOptions = { ...base };
  if (update === undefined || update === null) return out;
  if (typeof update !== 'object') throw new TypeError('options must be an object');
  for (const key of Object.keys(update) as (keyof EngineOptions)[]) {
    const value = update[key];
    if (value === undefined) continue;
    if (!(key in LIMITS)) throw new TypeError(`unknown engine option '${key}'`);
    if (key === 'serverHeader') {
      if (typeof value !== 'string' || /[\x00-\x1f\x7f]/.test(value)) {
        throw new TypeError(`option 'serverHeader' must be a string without control characters`);
      }
      out.serverHeader = value;
      continue;
    }
    if (key === 'allowUnderscoreHeaders') {
      if (typeof value !== 'boolean') throw new TypeError(`option '${key}' must be a boolean`);
      out.allowUnderscoreHeaders = value;
      continue;
    }
    const [min, max] = LIMITS[key];
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
      throw new RangeError(`option '${key}' must be a number from ${min} to ${max}, got ${String(value)}`);
    }
    (out as unknown as Record<string, number>)[key] = value;
  }
  return out;
}

/** The numeric form the addon reads (booleans stay in JavaScript). */
export function nativeOptions(o: ResolvedOptions): Record<string, number | string> {
  return {
    maxHeaderSize: o.maxHeaderSize,
    maxHeaderLineSize: o.maxHeaderLineSize,
    maxHeaderCount: o.maxHeaderCount,
    maxBodySize: o.maxBodySize,
    bodyBufferSize: o.bodyBufferSize,
    maxKeepaliveRequests: o.maxKeepaliveRequests,
    maxConnections: o.maxConnections,
    writeHighWaterMark: o.writeHighWaterMark,
    maxPipeline: o.maxPipeline,
    maxWriteBuffer: o.maxWriteBuffer,
    handlerTimeout: o.handlerTimeout,
    serverHeader: o.serverHeader,
    headerTimeout: o.headerTimeout,
    readTimeout: o.readTimeout,
    keepaliveTimeout: o.keepaliveTimeout,
    writeTimeout: o.writeTimeout,
    lingerTimeout: o.lingerTimeout,
  };
}
