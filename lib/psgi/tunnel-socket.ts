// psgix.io over TLS: the TLS session lives in the addon and cannot move to
// a Node socket, so the application gets a Duplex carrying the decrypted
// stream instead (the addon's tunnel mode), with the parts of net.Socket's
// surface that WebSocket libraries such as `ws` use.
import { Duplex } from 'node:stream';

import { ERR_GONE } from '../native';
import type { FeersumRequest } from '../request';

export class TunnelSocket extends Duplex {
  /** Always true: this stream is the plaintext side of a TLS connection. */
  readonly encrypted = true;
  private readingPaused = false;
  private waitingWrite: ((err?: Error | null) => void) | undefined;
  private gone = false;
  private readonly req: FeersumRequest;

  constructor(req: FeersumRequest) {
    super({ allowHalfOpen: false });
    this.req = req;
  }

  get remoteAddress(): string {
    return this.req.remoteAddress;
  }
  get remotePort(): number {
    return this.req.remotePort;
  }
  // Node socket options with no meaning for an in-process tunnel.
  setTimeout(_ms: number, cb?: () => void): this {
    if (cb) this.once('timeout', cb);
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }

  override _read(): void {
    if (this.readingPaused && !this.gone) {
      this.readingPaused = false;
      this.req._core.native.pauseBody(this.req.id, false);
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.gone) {
      cb(new Error('connection closed'));
      return;
    }
    const core = this.req._core;
    const rc = core.native.write(this.req.id, chunk);
    if (rc === 1) {
      cb();
    } else if (rc === 0) {
      // Past the high-water mark: the next write waits for the drain.
      const st = core.watchDrain(this.req);
      if (st === 1) setImmediate(cb);
      else if (st === 0) this.waitingWrite = cb;
      else cb(new Error('connection closed'));
    } else {
      this.gone = rc === ERR_GONE || this.gone;
      cb(new Error('connection closed'));
    }
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (!this.gone) this.req._core.native.end(this.req.id);
    cb();
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    if (!this.gone) {
      this.gone = true;
      this.req._core.native.abort(this.req.id);
    }
    cb(err);
  }

  /** @internal Decrypted bytes from the client. */
  _chunk(chunk: Buffer): void {
    if (!this.push(chunk) && !this.readingPaused) {
      this.readingPaused = true;
      this.req._core.native.pauseBody(this.req.id, true);
    }
  }

  /** @internal The client ended its side. */
  _end(): void {
    this.push(null);
  }

  /** @internal The connection is gone. */
  _abort(): void {
    this.gone = true;
    if (!this.destroyed) this.destroy();
  }

  /** @internal The output drained: a waiting write may go on. */
  _drained(): void {
    const cb = this.waitingWrite;
    this.waitingWrite = undefined;
    cb?.();
  }
}
