// The streaming writer shared by the native interface (startStreaming) and
// PSGI delayed responses: write/close/pollCb/responseGuard with Node-style
// backpressure (write returns false past the high-water mark) and a poll
// callback that runs each time the output has drained.
import { ERR_GONE, ERR_LENGTH_MISMATCH } from './native';
import type { FeersumRequest } from './request';

export type PollCallback = (writer: Writer) => void;

export class Writer {
  /** @internal */ _closed = false;
  private poll: PollCallback | null = null;
  private pollScheduled = false;
  private readonly req: FeersumRequest;

  /** @internal */
  constructor(req: FeersumRequest) {
    this.req = req;
  }

  /**
   * Queues a chunk (string, Buffer, Uint8Array, or an array of them). Never
   * blocks; returns false once the queue is past its high-water mark, or
   * when the response can no longer be written (closed, client gone).
   */
  write(chunk: string | Uint8Array | ReadonlyArray<string | Uint8Array>): boolean {
    if (this._closed) return false;
    const core = this.req._core;
    const rc = core.native.write(this.req.id, chunk);
    if (rc >= 0) return rc === 1;
    this._closed = true;
    if (rc === ERR_LENGTH_MISMATCH) {
      core.reportError(new Error('response body longer than its Content-Length; connection closed'), this.req);
    } else if (rc !== ERR_GONE) {
      core.reportError(new TypeError('write() takes a string, Buffer, Uint8Array or an array of them'), this.req);
      core.native.abort(this.req.id);
    }
    return false;
  }

  /** Ends the response. */
  close(): void {
    if (this._closed) return;
    this._closed = true;
    this.poll = null;
    const core = this.req._core;
    this.req._watchCleanup(); // before the end is handed over (see FeersumRequest.sendResponse)
    const rc = core.native.end(this.req.id);
    this.req._markDone();
    if (rc === ERR_LENGTH_MISMATCH) {
      core.reportError(new Error('response body shorter than its Content-Length; connection closed'), this.req);
    }
  }

  /** Alias of close(), as Node streams spell it. */
  end(): void {
    this.close();
  }

  /**
   * Calls cb(writer) each time everything written so far has reached the
   * socket, until pollCb(null) or close(). The way to stream a large body
   * without buffering it.
   */
  pollCb(cb: PollCallback | null): void {
    if (cb !== null && typeof cb !== 'function') throw new TypeError('pollCb(cb) needs a function or null');
    this.poll = cb;
    if (cb) this.schedulePoll();
  }

  /** Calls fn once, when the response has been fully written or the connection aborted. */
  responseGuard(fn: () => void): void {
    this.req.responseGuard(fn);
  }

  /** @internal Reports an error about this response through the engine's error hook. */
  _report(err: unknown): void {
    this.req._core.reportError(err, this.req);
  }

  /** @internal The addon reported the queue drained. */
  _drained(): void {
    if (!this.pollScheduled) return;
    this.runPoll();
  }

  private schedulePoll(): void {
    if (this.pollScheduled || !this.poll || this._closed) return;
    this.pollScheduled = true;
    const st = this.req._core.watchDrain(this.req);
    if (st === 1) setImmediate(this.runPoll);
    else if (st < 0) {
      this.pollScheduled = false;
      this._closed = true;
    }
  }

  private readonly runPoll = (): void => {
    this.pollScheduled = false;
    const cb = this.poll;
    if (!cb || this._closed) return;
    try {
      cb(this);
    } catch (err) {
      // As a throw from a handler: a half-sent response closes the connection.
      this._closed = true;
      this.req._core.handlerFailed(this.req, err);
      return;
    }
    this.schedulePoll();
  };
}
