// The runner's wrapper around the application's request handler: records
// what the access log needs and counts requests for --max-reqs-per-child.
// It sits on the native interface (below the PSGI adapter), so PSGI apps and
// --native handlers are treated alike, and it is left out entirely when
// neither is wanted. (The Server header and the Connection: close of a
// worker being replaced are the engine's: options.serverHeader, drain().)
import { performance } from 'node:perf_hooks';

import type { RequestHandler } from '../engine';
import type { ResponseHeaders } from '../headers';
import type { Body, FeersumRequest } from '../request';
import type { Writer } from '../writer';
import type { AccessRecord } from './access-log';

export interface HandlerHooks {
  /** Called with each finished (or aborted) request's record. */
  accessLog: ((record: AccessRecord) => void) | undefined;
  /** Called as each request arrives. */
  onRequest: (() => void) | undefined;
}

export function instrumentHandler(inner: RequestHandler, hooks: HandlerHooks): RequestHandler {
  const { accessLog, onRequest } = hooks;
  if (accessLog === undefined) {
    if (onRequest === undefined) return inner;
    return (req) => {
      onRequest();
      return inner(req);
    };
  }
  return (req) => {
    if (onRequest !== undefined) onRequest();
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
    if (record !== undefined) interceptResponse(req, record);
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
 * write) with versions that note status and body size. The PSGI adapter
 * calls these same methods, so one place covers both interfaces.
 */
function interceptResponse(req: FeersumRequest, rec: AccessRecord): void {
  const send = req.sendResponse;
  const start = req.startStreaming;
  req.sendResponse = (status: number, headers: ResponseHeaders, body?: Body): void => {
    send.call(req, status, headers, body);
    rec.status = status;
    rec.responseHeaders = headers;
    rec.bytes = hasNoBody(req, status) ? 0 : bodyBytes(body);
  };
  req.startStreaming = (status: number, headers: ResponseHeaders): Writer => {
    const w = start.call(req, status, headers);
    rec.status = status;
    rec.responseHeaders = headers;
    if (!hasNoBody(req, status)) {
      const write = w.write;
      w.write = (chunk) => {
        rec.bytes += bodyBytes(chunk);
        return write.call(w, chunk);
      };
    }
    return w;
  };
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
