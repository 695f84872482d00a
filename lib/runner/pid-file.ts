// --pid-file: written at startup, refused when a live process already holds
// it (a second copy of the server would fight the first for its sockets and
// signals), replaced when the process it names is gone, removed on exit.
import fs from 'node:fs';
import path from 'node:path';

import { StartupError } from './errors';

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, it just is not ours to signal.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Writes our pid to file; throws a StartupError when a live process holds it. */
export function claimPidFile(file: string): void {
  let existing: string | undefined;
  try {
    existing = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new StartupError(`cannot read pid file ${file}: ${(err as Error).message}`);
    }
  }
  if (existing !== undefined) {
    const pid = Number(existing.trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
      throw new StartupError(`pid file ${file} belongs to running process ${pid}; is the server already running?`);
    }
  }
  // Written aside and renamed into place, so a reader never sees it half written.
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    fs.writeFileSync(tmp, `${process.pid}\n`);
    fs.renameSync(tmp, file);
  } catch (err) {
    try {
      fs.unlinkSync(tmp);
    } catch {
      // never created
    }
    throw new StartupError(`cannot write pid file ${file}: ${(err as Error).message}`);
  }
}

/** Removes file if it still names this process. */
export function releasePidFile(file: string): void {
  try {
    if (Number(fs.readFileSync(file, 'utf8').trim()) === process.pid) fs.unlinkSync(file);
  } catch {
    // already gone
  }
}
