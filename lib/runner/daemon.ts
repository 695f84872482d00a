// --daemonize. Node cannot fork(), so the foreground process starts a copy
// of the command in a new session (detached: setsid) with no terminal, and
// waits on an IPC channel until that copy is serving -- or has failed, in
// which case its one-line error is printed here and the exit status passed
// on, as if the server had failed in the foreground.
import { spawn } from 'node:child_process';

import type { DaemonMessage } from './messages';

const DAEMON_ENV = 'FEERSUM_TS_DAEMON';

/** True in the background copy started by runDaemonParent (it then clears the marker). */
export function isDaemonChild(): boolean {
  const marked = process.env[DAEMON_ENV] === '1' && typeof process.send === 'function';
  delete process.env[DAEMON_ENV]; // not for the workers or the app
  return marked;
}

/** Tells the waiting foreground process how startup went; after success, lets it go. */
export function notifyDaemonParent(msg: DaemonMessage): void {
  if (!process.send || !process.connected) return;
  process.send(msg, undefined, {}, () => {
    if (process.connected) process.disconnect();
  });
}

/** Starts the background copy and exits with its startup result. */
export function runDaemonParent(cliScript: string, argv: readonly string[], quiet: boolean): void {
  const child = spawn(process.execPath, [...process.execArgv, cliScript, ...argv], {
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
    env: { ...process.env, [DAEMON_ENV]: '1' },
  });
  let settled = false;
  child.on('message', (m: DaemonMessage) => {
    settled = true;
    if (m.type === 'daemon-ready') {
      if (!quiet) process.stderr.write(`feersum-ts: running in the background as pid ${child.pid}\n`);
      child.unref();
      process.exit(0);
    }
    process.stderr.write(`feersum-ts: ${m.message}\n`);
    process.exit(m.exitCode);
  });
  child.on('error', (err) => {
    process.stderr.write(`feersum-ts: cannot start the background process: ${err.message}\n`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => {
    if (settled) return;
    process.stderr.write(
      `feersum-ts: the background process ${signal ? `was killed by ${signal}` : `exited with status ${code}`} before it was ready\n`,
    );
    process.exit(1);
  });
}
