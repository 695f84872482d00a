// A log destination that can be reopened (SIGUSR1, logrotate) and that
// batches lines: the access log collects lines in memory and writes them in
// one write(2) per second (or per 64 KiB), as nginx's `access_log ...
// buffer= flush=` does, so no request ever waits on the disk. The write is
// synchronous on purpose: with one write per batch the cost is a page-cache
// copy per second, and unlike fs.write on the thread pool nothing can be
// left in flight when the process exits or the file is reopened.
//
// Several workers append to the same file: it is opened O_APPEND, so each
// batch lands whole. On a pipe (stdout) writes up to PIPE_BUF (4096 bytes)
// are atomic, so batches are cut at line ends below that size.
import fs from 'node:fs';

import { StartupError } from './errors';

const PIPE_BUF = 4096;
const FLUSH_BYTES = 64 * 1024;

export class LogFile {
  private fd: number;
  private pending: string[] = [];
  private pendingLength = 0;
  private timer: NodeJS.Timeout | undefined;
  private failed = false;

  /**
   * target: a file path, or '-' for stdout. flushMs: 0 writes each line at
   * once (error logs: nothing is lost if the process dies next).
   */
  constructor(
    readonly target: string,
    private readonly flushMs: number,
  ) {
    this.fd = target === '-' ? 1 : LogFile.openFile(target);
  }

  private static openFile(file: string): number {
    try {
      return fs.openSync(file, 'a', 0o644);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new StartupError(`cannot open log file ${file}: ${e.code === 'ENOENT' ? 'no such directory' : e.message}`);
    }
  }

  /** Queues text (one or more complete lines). */
  write(text: string): void {
    if (this.flushMs === 0) {
      this.writeOut(text);
      return;
    }
    this.pending.push(text);
    this.pendingLength += text.length;
    if (this.pendingLength >= FLUSH_BYTES) this.flush();
    else if (this.timer === undefined) {
      this.timer = setTimeout(() => this.flush(), this.flushMs);
      this.timer.unref(); // a log line must not keep a finished process alive
    }
  }

  /** Writes everything queued so far. */
  flush(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.pending.length === 0) return;
    const text = this.pending.length === 1 ? this.pending[0] : this.pending.join('');
    this.pending = [];
    this.pendingLength = 0;
    this.writeOut(text);
  }

  /** Closes and opens the file again under its name (after logrotate moved it). */
  reopen(): void {
    this.flush();
    if (this.target === '-') return;
    let fd: number;
    try {
      fd = LogFile.openFile(this.target);
    } catch (err) {
      process.stderr.write(`feersum-ts[${process.pid}]: ${(err as Error).message}; still writing to the old file\n`);
      return;
    }
    const old = this.fd;
    this.fd = fd;
    this.failed = false;
    fs.closeSync(old);
  }

  close(): void {
    this.flush();
    if (this.target !== '-') fs.closeSync(this.fd);
  }

  private writeOut(text: string): void {
    try {
      if (this.target === '-') {
        // Through process.stdout: another process may have made the shared
        // pipe non-blocking, and the stream queues instead of failing with EAGAIN.
        for (const piece of pipeSizedPieces(text)) process.stdout.write(piece);
      } else {
        const buf = Buffer.from(text);
        let off = 0;
        while (off < buf.length) off += fs.writeSync(this.fd, buf, off);
      }
    } catch (err) {
      // A full disk or a closed pipe must not take the server down; say so once.
      if (this.failed) return;
      this.failed = true;
      const e = err as NodeJS.ErrnoException;
      if (this.target !== '-' || e.code !== 'EPIPE') {
        try {
          process.stderr.write(`feersum-ts[${process.pid}]: cannot write to ${this.target}: ${e.message}; lines are dropped\n`);
        } catch {
          // stderr is gone too: nothing left to tell
        }
      }
    }
  }
}

/** Cuts text at line ends into pieces of at most PIPE_BUF bytes where lines allow. */
function pipeSizedPieces(text: string): string[] {
  if (text.length <= PIPE_BUF / 4 || Buffer.byteLength(text) <= PIPE_BUF) return [text];
  const out: string[] = [];
  let start = 0;
  while (start < text.length) {
    let end = start;
    let bytes = 0;
    for (;;) {
      const nl = text.indexOf('\n', end);
      const lineEnd = nl < 0 ? text.length : nl + 1;
      const lineBytes = Buffer.byteLength(text.slice(end, lineEnd));
      if (end > start && bytes + lineBytes > PIPE_BUF) break;
      bytes += lineBytes;
      end = lineEnd;
      if (end >= text.length) break;
    }
    out.push(text.slice(start, end));
    start = end;
  }
  return out;
}
