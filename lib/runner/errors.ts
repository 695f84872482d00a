// The two ways the runner refuses to go on. Both carry a one-line message;
// cli.ts prints it as `feersum-ts: <message>` and exits with the code, never
// with a stack trace.

/** Bad command line: unknown option, malformed value, conflicting options (exit status 2). */
export class UsageError extends Error {
  readonly exitCode = 2;
}

/** The command line was fine but the server cannot start: app, port, pid file (exit status 1). */
export class StartupError extends Error {
  readonly exitCode = 1;
}

/** The first line of an error's message, for one-line reports. */
export function firstLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  const line = text.split('\n').find((l) => l.trim() !== '') ?? '';
  return line.trim() || (err instanceof Error ? err.name : 'unknown error');
}
