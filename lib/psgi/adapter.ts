// Runs a PSGI application on the native interface: turns each response form
// ([status, headers, body], delayed responder, Promise of either) into
// sendResponse / startStreaming calls, streaming bodies with backpressure.
import { Readable } from 'node:stream';

import type { FeersumRequest } from '../request';
import type { ResponseHeaders } from '../headers';
import type { Writer } from '../writer';
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
export type Responder = (response: PsgiResponse | PsgiStreamingResponse) => Writer | undefined;
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

export function psgiHandler(app: PsgiApp): (req: FeersumRequest) => unknown {
  return (req) => {
    const env = req.env();
    const result = app(env);
    if (isThenable(result)) return Promise.resolve(result).then((r) => handled(req, handleResult(req, env, r)));
    return handled(req, handleResult(req, env, result));
  };
}

// Cleanup handlers pushed while the app ran are watched for once it returned.
function handled(req: FeersumRequest, outcome: unknown): unknown {
  req._watchCleanup();
  return outcome;
}

function handleResult(req: FeersumRequest, env: PsgiEnv, result: PsgiResult): unknown {
  if (req._detached) return undefined; // psgix.io was taken: the return value is ignored
  harakiriAfterResponse(req, env);
  if (typeof result === 'function') return runDelayed(req, env, result);
  if (Array.isArray(result)) return sendResponse(req, result as PsgiResponse);
  throw new TypeError('a PSGI app must return [status, headers, body], a function(respond), or a Promise of one');
}

function harakiriAfterResponse(req: FeersumRequest, env: PsgiEnv): void {
  const harakiri = req._core.harakiri;
  if (!harakiri) return;
  req.responseGuard(() => {
    if (env['psgix.harakiri.commit'] === true) harakiri();
  });
}

function runDelayed(req: FeersumRequest, env: PsgiEnv, delayed: DelayedResponse): unknown {
  let responded = false;
  const respond: Responder = (response) => {
    if (responded || req._detached) {
      // A second respond would put a second response on the wire: close the
      // connection instead, and say why.
      req._core.reportError(new Error('PSGI respond() called more than once; connection closed'), req);
      req._core.native.abort(req.id);
      return closedWriter(req);
    }
    responded = true;
    if (!Array.isArray(response) || response.length < 2) {
      throw new TypeError('respond() takes [status, headers] or [status, headers, body]');
    }
    if (response.length >= 3 && response[2] !== undefined) {
      const done = sendResponse(req, response as PsgiResponse);
      if (isThenable(done)) done.then(undefined, (err) => failStream(req, err));
      return undefined;
    }
    return req.startStreaming(toStatus(response[0]), response[1]);
  };
  return delayed(respond);
}

function closedWriter(req: FeersumRequest): Writer {
  const w = req._writer ?? req.startStreaming(200, []);
  w._closed = true;
  return w;
}

function failStream(req: FeersumRequest, err: unknown): void {
  req._core.reportError(err, req);
  req._core.native.abort(req.id);
}

/** Sends [status, headers, body]; returns a Promise while a streamed body is being written. */
function sendResponse(req: FeersumRequest, response: PsgiResponse): unknown {
  const status = toStatus(response[0]);
  const headers = response[1];
  const body = response[2];
  if (body === undefined || body === null) {
    req.sendResponse(status, headers);
    return undefined;
  }
  if (Array.isArray(body)) {
    // A one-part body goes as that part: fewer steps across the N-API boundary.
    req.sendResponse(status, headers, body.length === 1 ? body[0] : body);
    closeBody(body);
    return undefined;
  }
  if (typeof body === 'string' || body instanceof Uint8Array) {
    req.sendResponse(status, headers, body);
    return undefined;
  }
  if (body instanceof Readable) return streamReadable(req, status, headers, body);
  if (typeof (body as AsyncIterable<BodyChunk>)[Symbol.asyncIterator] === 'function') {
    return streamAsyncIterable(req, status, headers, body as AsyncIterable<BodyChunk>);
  }
  if (typeof (body as Iterable<BodyChunk>)[Symbol.iterator] === 'function') {
    return streamIterable(req, status, headers, body as Iterable<BodyChunk>);
  }
  throw new TypeError('PSGI body must be an array, an (async) iterable, or a Readable stream');
}

function closeBody(body: unknown): void {
  const close = (body as { close?: unknown }).close;
  if (typeof close === 'function') close.call(body);
}

function streamReadable(req: FeersumRequest, status: number, headers: ResponseHeaders, body: Readable): Promise<void> {
  const writer = req.startStreaming(status, headers);
  return new Promise<void>((resolve, reject) => {
    let finished = false;
    const finish = (err?: unknown) => {
      if (finished) return;
      finished = true;
      body.off('data', onData);
      if (err) reject(err);
      else resolve();
    };
    const onData = (chunk: BodyChunk) => {
      if (typeof chunk !== 'string' && !(chunk instanceof Uint8Array)) {
        finish(new TypeError('PSGI body stream must produce strings or Buffers'));
        body.destroy();
        return;
      }
      if (!writer.write(chunk)) {
        if (writer._closed) return; // client gone: the guard below destroys the stream
        body.pause();
        writer.pollCb((w) => {
          w.pollCb(null);
          body.resume();
        });
      }
    };
    body.on('data', onData);
    body.once('end', () => {
      writer.close();
      closeBody(body);
      finish();
    });
    body.once('error', (err) => finish(err));
    // The client went away before the end: stop producing.
    writer.responseGuard(() => {
      if (!body.readableEnded) body.destroy();
      finish();
    });
  });
}

async function streamAsyncIterable(
  req: FeersumRequest,
  status: number,
  headers: ResponseHeaders,
  body: AsyncIterable<BodyChunk>,
): Promise<void> {
  const writer = req.startStreaming(status, headers);
  const it = body[Symbol.asyncIterator]();
  let done = false;
  try {
    for (;;) {
      const step = await it.next();
      if (step.done) {
        done = true;
        break;
      }
      const chunk = step.value;
      if (typeof chunk !== 'string' && !(chunk instanceof Uint8Array)) {
        throw new TypeError('PSGI body iterator must yield strings or Buffers');
      }
      if (!writer.write(chunk)) {
        if (writer._closed) break;
        await new Promise<void>((resolve) =>
          writer.pollCb((w) => {
            w.pollCb(null);
            resolve();
          }),
        );
        if (writer._closed) break;
      }
    }
  } finally {
    if (!done && typeof it.return === 'function') await it.return();
  }
  writer.close();
  closeBody(body);
}

function streamIterable(
  req: FeersumRequest,
  status: number,
  headers: ResponseHeaders,
  body: Iterable<BodyChunk>,
): Promise<void> {
  const writer = req.startStreaming(status, headers);
  const it = body[Symbol.iterator]();
  return new Promise<void>((resolve, reject) => {
    let finished = false;
    const abandon = () => {
      if (finished) return;
      finished = true;
      if (typeof it.return === 'function') it.return();
    };
    // Pull items while the socket keeps up; pollCb resumes when it drains.
    writer.pollCb((w) => {
      try {
        for (;;) {
          const step = it.next();
          if (step.done) {
            finished = true;
            w.close();
            closeBody(body);
            resolve();
            return;
          }
          const chunk = step.value;
          if (typeof chunk !== 'string' && !(chunk instanceof Uint8Array)) {
            throw new TypeError('PSGI body iterator must yield strings or Buffers');
          }
          if (!w.write(chunk)) break;
        }
        if (w._closed) {
          abandon();
          resolve();
        }
      } catch (err) {
        w.pollCb(null);
        abandon();
        reject(err);
      }
    });
    // The client went away mid-stream: abandon the iterator.
    writer.responseGuard(() => {
      abandon();
      resolve();
    });
  });
}
