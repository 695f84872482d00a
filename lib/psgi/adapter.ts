// Runs a PSGI application on the native interface: turns each response form
// ([status, headers, body], delayed responder, Promise of either) into
// sendResponse / startStreaming calls, streaming bodies with backpressure,
// and gives body objects back (close / return / destroy) when done.
import { Readable } from 'node:stream';

import type { FeersumRequest } from '../request';
import type { ResponseHeaders } from '../headers';
import { Writer } from '../writer';
import type { PsgiEnv } from './env';

export type BodyChunk = string | Uint8Array;
export type PsgiBody =
  | ReadonlyArray<BodyChunk>
  | Iterable<BodyChunk>
  | AsyncIterable<BodyChunk>
  | Readable
  | BodyChunk;
export type PsgiResponse = [number | string, ResponseHeaders, PsgiBody];
export type PsgiStreamingResponse = [number | string, ResponseHeaders];
/** The `respond` a delayed response is given. */
export interface Responder {
  /** [status, headers]: a streamed response; returns its writer. */
  (response: PsgiStreamingResponse): Writer;
  /** [status, headers, body]: a complete response (undefined once it is sent; an inert writer if it was refused). */
  (response: PsgiResponse): Writer | undefined;
}
export type DelayedResponse = (respond: Responder) => unknown;
export type PsgiResult = PsgiResponse | DelayedResponse;
export type PsgiApp = (env: PsgiEnv) => PsgiResult | Promise<PsgiResult>;

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v !== null && (typeof v === 'object' || typeof v === 'function') && typeof (v as PromiseLike<unknown>).then === 'function';
}

function toStatus(status: unknown): number {
  const n = typeof status === 'string' ? Number(status) : status;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 100 || n > 999) {
    throw new TypeError(`invalid PSGI status ${String(status)}`);
  }
  return n;
}

function isChunk(chunk: unknown): chunk is BodyChunk {
  return typeof chunk === 'string' || chunk instanceof Uint8Array;
}

export function psgiHandler(app: PsgiApp): (req: FeersumRequest) => unknown {
  return (req) => {
    const env = req.env();
    const result = app(env);
    if (isThenable(result)) return Promise.resolve(result).then((r) => respondWith(req, env, r));
    return respondWith(req, env, result);
  };
}

/** Answers with what the app returned; a Promise while a body is being streamed. */
function respondWith(req: FeersumRequest, env: PsgiEnv, result: PsgiResult): unknown {
  // psgix.io was used (the socket taken, or found gone): the return value is ignored.
  if (req._ioSocket !== undefined) return undefined;
  // Under the pre-fork runner, an app that asked to retire its worker
  // already gets its wish after this response; one still answering is
  // asked again when its response is done (below).
  const harakiri = req._core.harakiri;
  let harakiriWatched = false;
  if (harakiri !== undefined && env['psgix.harakiri.commit'] === true) {
    req.responseGuard(harakiri);
    harakiriWatched = true;
  }
  let outcome: unknown;
  if (Array.isArray(result)) {
    outcome = sendResponse(req, result as PsgiResponse);
  } else if (typeof result === 'function') {
    outcome = runDelayed(req, result);
  } else {
    throw new TypeError(
      'a PSGI app must return [status, headers, body], a function(respond), or a Promise of one' +
        ' (to keep psgix.io for later, return a function that does not respond)',
    );
  }
  if (!req._responseDone) {
    // A response still under way is followed to its end, so that cleanup
    // handlers pushed at any time run after it (or after an abort).
    if (harakiri !== undefined && !harakiriWatched) {
      req.responseGuard(() => {
        if (env['psgix.harakiri.commit'] === true) harakiri();
      });
    }
    req._watch();
  } else if (req._cleanup?.length) {
    req._watch();
  }
  return outcome;
}

/**
 * The responder of a delayed response. It never throws (it may run in a
 * timer, where a throw would take the process down): a bad response, or a
 * second one, is reported, answered with a 500 or a closed connection, and
 * gets an inert writer.
 */
function runDelayed(req: FeersumRequest, delayed: DelayedResponse): unknown {
  let responded = false;
  const respond = ((response: PsgiResponse | PsgiStreamingResponse): Writer | undefined => {
    if (req._ioSocket !== undefined) {
      req._core.reportError(new Error('PSGI respond() after psgix.io took the connection; ignored'), req);
      return inertWriter(req);
    }
    if (responded) {
      // A second response would put two on the wire: close the connection.
      req._core.reportError(new Error('PSGI respond() called more than once; connection closed'), req);
      req._core.native.abort(req.id);
      return inertWriter(req);
    }
    responded = true;
    try {
      if (!Array.isArray(response) || response.length < 2) {
        throw new TypeError('respond() takes [status, headers] or [status, headers, body]');
      }
      if (response.length >= 3 && response[2] !== undefined) {
        const done = sendResponse(req, response as PsgiResponse);
        if (isThenable(done)) done.then(undefined, (err: unknown) => req._core.handlerFailed(req, err));
        return undefined;
      }
      return req.startStreaming(toStatus(response[0]), response[1]);
    } catch (err) {
      req._core.handlerFailed(req, err);
      return inertWriter(req);
    }
  }) as Responder;
  return delayed(respond);
}

/** A writer whose writes go nowhere (returned when respond() could not start one). */
function inertWriter(req: FeersumRequest): Writer {
  const w = new Writer(req);
  w._closed = true;
  return w;
}

/** Sends [status, headers, body]; returns a Promise while a streamed body is being written. */
function sendResponse(req: FeersumRequest, response: PsgiResponse): unknown {
  if (response.length < 3) throw new TypeError('a PSGI response is [status, headers, body]');
  const status = toStatus(response[0]);
  const headers = response[1];
  const body = response[2];
  if (!Array.isArray(headers)) throw new TypeError('PSGI response headers must be a flat array [name, value, ...]');
  if (Array.isArray(body)) {
    try {
      // A one-part body goes as that part: fewer steps across the N-API boundary.
      req.sendResponse(status, headers, body.length === 1 ? body[0] : body);
    } finally {
      closeBody(body);
    }
    return undefined;
  }
  if (isChunk(body)) {
    req.sendResponse(status, headers, body);
    return undefined;
  }
  if (body instanceof Readable) return streamReadable(req.startStreaming(status, headers), body);
  if (body !== null && typeof body === 'object') {
    if (typeof (body as AsyncIterable<BodyChunk>)[Symbol.asyncIterator] === 'function') {
      return streamAsyncIterable(req.startStreaming(status, headers), body as AsyncIterable<BodyChunk>);
    }
    if (typeof (body as Iterable<BodyChunk>)[Symbol.iterator] === 'function') {
      return streamIterable(req.startStreaming(status, headers), body as Iterable<BodyChunk>);
    }
  }
  throw new TypeError('PSGI body must be an array, a string or Buffer, an (async) iterable, or a Readable stream');
}

function closeBody(body: unknown): void {
  const close = (body as { close?: unknown }).close;
  if (typeof close === 'function') close.call(body);
}

const noop = () => {};

/**
 * Streams a Readable: paused while the client is not keeping up, destroyed
 * if the client goes away. Resolves at its end (or the client's), rejects
 * if it fails or closes before its end.
 */
function streamReadable(writer: Writer, body: Readable): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const settle = (err?: unknown) => {
      if (settled) return;
      settled = true;
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('close', onClose);
      body.off('error', onError);
      body.on('error', noop); // a late error must not become an uncaught one
      writer.pollCb(null);
      if (err !== undefined || !body.readableEnded) body.destroy();
      try {
        closeBody(body);
      } catch (closeErr) {
        err ??= closeErr;
      }
      if (err !== undefined) reject(err);
      else resolve();
    };
    const onData = (chunk: unknown) => {
      if (!isChunk(chunk)) {
        settle(new TypeError('PSGI body stream must produce strings or Buffers'));
        return;
      }
      if (writer.write(chunk) || writer._closed) return;
      body.pause();
      writer.pollCb((w) => {
        w.pollCb(null);
        body.resume();
      });
    };
    const onEnd = () => {
      writer.close();
      settle();
    };
    const onError = (err: unknown) => settle(err);
    const onClose = () => settle(new Error('PSGI body stream closed before its end'));
    if (body.readableEnded) {
      onEnd();
      return;
    }
    if (body.destroyed) {
      settle(body.errored ?? new Error('PSGI body stream was destroyed before its end'));
      return;
    }
    body.on('data', onData);
    body.on('end', onEnd);
    body.on('close', onClose);
    body.on('error', onError);
    // The client went away before the end: stop producing.
    writer.responseGuard(() => settle());
  });
}

/** Calls return() on an iterator the engine abandons; what it throws is reported. */
function abandon(writer: Writer, it: Iterator<unknown> | AsyncIterator<unknown>): unknown {
  if (typeof it.return !== 'function') return undefined;
  try {
    const r = it.return();
    if (isThenable(r)) return Promise.resolve(r).then(undefined, (err: unknown) => writer._report(err));
  } catch (err) {
    writer._report(err);
  }
  return undefined;
}

async function streamAsyncIterable(writer: Writer, body: AsyncIterable<BodyChunk>): Promise<void> {
  const it = body[Symbol.asyncIterator]();
  let wake: (() => void) | undefined;
  // The client went away (or the response ended): stop waiting for a drain.
  writer.responseGuard(() => wake?.());
  let finished = false;
  try {
    for (;;) {
      const step = await it.next();
      if (step.done) {
        finished = true;
        break;
      }
      if (writer._closed) break;
      const chunk = step.value;
      if (!isChunk(chunk)) throw new TypeError('PSGI body iterator must yield strings or Buffers');
      if (writer.write(chunk)) continue;
      if (writer._closed) break;
      await new Promise<void>((resolve) => {
        wake = resolve;
        writer.pollCb((w) => {
          w.pollCb(null);
          resolve();
        });
      });
      wake = undefined;
      writer.pollCb(null);
      if (writer._closed) break;
    }
  } finally {
    if (!finished) await abandon(writer, it);
    closeBody(body);
  }
  writer.close();
}

/**
 * Streams a synchronous iterable: pulls parts while the socket keeps up,
 * and again each time it drains (pollCb).
 */
function streamIterable(writer: Writer, body: Iterable<BodyChunk>): Promise<void> {
  const it = body[Symbol.iterator]();
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const settle = (done: boolean, err?: unknown) => {
      if (settled) return;
      settled = true;
      writer.pollCb(null);
      if (!done) abandon(writer, it);
      try {
        closeBody(body);
      } catch (closeErr) {
        err ??= closeErr;
      }
      if (err !== undefined) reject(err);
      else resolve();
    };
    const pull = (w: Writer): boolean => {
      try {
        for (;;) {
          if (w._closed) {
            settle(false);
            return true;
          }
          const step = it.next();
          if (step.done) {
            w.close();
            settle(true);
            return true;
          }
          if (!isChunk(step.value)) throw new TypeError('PSGI body iterator must yield strings or Buffers');
          if (!w.write(step.value) && !w._closed) return false;
        }
      } catch (err) {
        settle(false, err);
        return true;
      }
    };
    // The first parts go out with the head; the rest as the socket drains.
    if (pull(writer)) return;
    writer.pollCb(pull);
    // The client went away mid-stream: abandon the iterator.
    writer.responseGuard(() => settle(false));
  });
}
