// The runner's wrapper around the application's request handler: adds the
// Server header, records what the access log needs, counts requests for
// --max-reqs-per-child, and while the worker is about to be replaced answers
// with `Connection: close`. It sits on the native interface (below the PSGI
// adapter), so PSGI apps and --native handlers are treated alike, and it is
// left out entirely when none of this is wanted.
import { performance } from 'node:perf_hooks';

import type { RequestHandler } from '../engine';
import type { ResponseHeaders } from '../headers';
import type { Body, FeersumRequest } from '../request';
import type { Writer } from '../writer';
import type { AccessRecord } from './access-log';

export interface HandlerHooks {
  /** Server header value, e.g. 'feersum-ts/0.1.0'; undefined = none. */
  serverHeader: string | undefined;
  /** Called with each finished (or aborted) request's record. */
  accessLog: ((record: AccessRecord) => void) | undefined;
  /** Called as each request arrives. */
  onRequest: (() => void) | undefined;
  /**
   * Pre-fork workers: `closing` is true while the worker is about to be
   * replaced (it asked to retire, or a restart is under way). Its responses
   * then close their connections, so keep-alive clients move to other
   * workers after a complete response instead of finding their idle
   * connection closed under them when the worker stops.
   */
  worker: { closing: boolean } | undefined;
}

export function instrumentHandler(inner: RequestHandler, hooks: HandlerHooks): RequestHandler {
  const { serverHeader, accessLog, onRequest, worker } = hooks;
  if (serverHeader === undefined && accessLog === undefined && worker === undefined) {
    if (onRequest === undefined) return inner;
    return (req) => {
      onRequest();
      return inner(req);
    };
  }
  return (req) => {
    if (onRequest !== undefined) onRequest();
    const close = worker !== undefined && worker.closing;
    let record: AccessRecord | undefined;
    if (accessLog !== undefined) {
      const rec: AccessRecord = {
        req,
        startMs: Date.now(),
        startHr: performance.now(),
        status: 0,
        bytes: 0,
        responseHeaders: undefined,
      };
      record = rec;
      req.responseGuard(() => accessLog(rec));
    }
    if (record !== undefined || serverHeader !== undefined || close) interceptResponse(req, serverHeader, close, record);
    let result: unknown;
    try {
      result = inner(req);
    } catch (err) {
      // The engine answers 500 when nothing was sent; log it as such.
      if (record && record.status === 0) record.status = 500;
      throw err;
    }
    if (record && isThenable(result)) {
      const rec = record;
      return result.then(undefined, (err: unknown) => {
        if (rec.status === 0) rec.status = 500;
        throw err;
      });
    }
    return result;
  };
}

/**
 * Overrides this request's sendResponse / startStreaming (and the writer's
 * write) with versions that add headers and note status and body size. The
 * PSGI adapter calls these same methods, so one place covers both
 * interfaces.
 */
function interceptResponse(
  req: FeersumRequest,
  serverHeader: string | undefined,
  close: boolean,
  rec: AccessRecord | undefined,
): void {
  const send = req.sendResponse;
  const start = req.startStreaming;
  const edit = (headers: ResponseHeaders) => addHeaders(headers, serverHeader, close);
  req.sendResponse = (status: number, headers: ResponseHeaders, body?: Body): void => {
    send.call(req, status, edit(headers), body);
    if (rec) {
      rec.status = status;
      rec.responseHeaders = headers;
      rec.bytes = hasNoBody(req, status) ? 0 : bodyBytes(body);
    }
  };
  req.startStreaming = (status: number, headers: ResponseHeaders): Writer => {
    const w = start.call(req, status, edit(headers));
    if (rec) {
      rec.status = status;
      rec.responseHeaders = headers;
      if (!hasNoBody(req, status)) {
        const write = w.write;
        w.write = (chunk) => {
          rec.bytes += bodyBytes(chunk);
          return write.call(w, chunk);
        };
      }
    }
    return w;
  };
}

/** headers plus Server (unless the application named its own) and Connection: close when asked (ditto). */
function addHeaders(headers: ResponseHeaders, server: string | undefined, close: boolean): ResponseHeaders {
  if (server === undefined && !close) return headers;
  if (headers === undefined || headers === null) headers = [];
  // Anything malformed goes through untouched, for the engine to refuse with its own message.
  if (!Array.isArray(headers)) return headers;
  let addServer = server !== undefined;
  let addClose = close;
  for (let i = 0; i < headers.length; i += 2) {
    const n = headers[i];
    if (typeof n !== 'string') continue;
    if (n.length === 6 && n.toLowerCase() === 'server') addServer = false;
    else if (n.length === 10 && n.toLowerCase() === 'connection') addClose = false;
  }
  if (!addServer && !addClose) return headers;
  const out: Array<string | number> = addServer ? ['Server', server!, ...headers] : [...headers];
  if (addClose) out.push('Connection', 'close');
  return out;
}

function hasNoBody(req: FeersumRequest, status: number): boolean {
  return req.method === 'HEAD' || status === 204 || status === 304 || status < 200;
}

function bodyBytes(body: unknown): number {
  if (body === undefined || body === null) return 0;
  if (typeof body === 'string') return Buffer.byteLength(body);
  if (body instanceof Uint8Array) return body.length;
  if (Array.isArray(body)) {
    let n = 0;
    for (const part of body) n += bodyBytes(part);
    return n;
  }
  return 0;
}

function isThenable(v: unknown): v is Promise<unknown> {
  return v !== null && typeof v === 'object' && typeof (v as Promise<unknown>).then === 'function';
}
