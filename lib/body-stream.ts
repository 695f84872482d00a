// Request bodies as Readables: one already complete (buffered before the
// handler ran) and one fed by the addon as the body arrives, with reading
// from the socket paused while the consumer is not keeping up.
import { Readable } from 'node:stream';

const EMPTY = Buffer.alloc(0);

/** A body read whole before dispatch; read() returns all of it at once. */
export function bufferedBody(body: Buffer | undefined): Readable {
  const r = new Readable({ read() {} });
  if (body && body.length) r.push(body);
  r.push(null);
  return r;
}

export interface BodySource {
  /** Stop (true) or restart (false) reading this body from the socket. */
  pause(pause: boolean): void;
}

/** A body streamed from the socket after the handler started. */
export class StreamedBody extends Readable {
  private paused = false;
  private readonly source: BodySource;

  constructor(source: BodySource, highWaterMark: number) {
    super({ highWaterMark });
    this.source = source;
  }

  override _read(): void {
    if (this.paused) {
      this.paused = false;
      this.source.pause(false);
    }
  }

  /** @internal */
  _chunk(chunk: Buffer): void {
    if (!this.push(chunk) && !this.paused) {
      this.paused = true;
      this.source.pause(true);
    }
  }

  /** @internal */
  _end(): void {
    this.push(null);
  }

  /**
   * The body will never complete (client gone, malformed, or the response
   * ended first). Readers see an error only if they listen for one, so an
   * unread body cannot raise an unhandled 'error'.
   */
  _abort(reason: string): void {
    if (this.readableEnded || this.destroyed) return;
    if (this.listenerCount('error') > 0) this.destroy(new Error(reason));
    else this.destroy();
  }
}

export { EMPTY as EMPTY_BODY };
