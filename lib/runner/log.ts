// Where the runner's own messages go: stderr, or the --error-log file once
// it is open (with a timestamp, as a file has no journal to add one).
// --quiet silences the informational ones; warnings and errors always show.
import { LogFile } from './log-file';

export class RunnerLog {
  private file: LogFile | undefined;

  constructor(
    private readonly quiet: boolean,
    /** 'feersum-ts' for the supervisor or single process, 'feersum-ts worker' in workers. */
    private readonly tag = 'feersum-ts',
  ) {}

  /** Sends messages (and, see redirectStderr, stderr) to the error log from now on. */
  useFile(file: LogFile): void {
    this.file = file;
  }

  get errorFile(): LogFile | undefined {
    return this.file;
  }

  info(message: string): void {
    if (!this.quiet) this.emit(message);
  }

  warn(message: string): void {
    this.emit(message);
  }

  error(message: string): void {
    this.emit(message);
  }

  private emit(message: string): void {
    const line = `${this.tag}[${process.pid}]: ${message}\n`;
    if (this.file) this.file.write(`[${new Date().toISOString()}] ${line}`);
    else process.stderr.write(line);
  }
}

/**
 * With --error-log, everything the process writes to stderr (console.error,
 * warnings, an app's own logging) goes to the log file. Node cannot dup2()
 * the file onto fd 2, and a redirected fd 2 could not be reopened on
 * SIGUSR1 anyway, so the stream's write method is pointed at the file.
 */
export function redirectStderr(file: LogFile): void {
  const stderr = process.stderr;
  const write = (chunk: unknown, encoding?: unknown, cb?: unknown): boolean => {
    if (typeof chunk === 'string') file.write(chunk);
    else if (chunk instanceof Uint8Array) file.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString());
    const done = typeof encoding === 'function' ? encoding : cb;
    if (typeof done === 'function') process.nextTick(done as () => void);
    return true;
  };
  stderr.write = write as typeof stderr.write;
}
