// Listening sockets: bound once, up front, by the process that starts
// (supervisor or single process), so a port already in use fails before any
// worker starts; or taken over from Server::Starter (SERVER_STARTER_PORT) or
// systemd socket activation (LISTEN_FDS). Workers receive the descriptors.
//
// Unix socket files, handled as Server::Starter (and so Starlet/Stardust
// behind it) does, with one safety check added: an existing *socket* file is
// removed with a warning and bound afresh -- unless a server still accepts
// on it, which is refused like a TCP port in use. A file of any other kind in
// the way is refused. The file is removed on shutdown if it is still the one
// we created. --socket-mode sets its permissions (default: the umask's).
import dns from 'node:dns/promises';
import fs from 'node:fs';
import net from 'node:net';

import { loadBinding } from '../native';
import { StartupError } from './errors';
import type { ListenSpec } from './listen-spec';

export interface BoundListener {
  fd: number;
  /** For messages: the address as given, or as inherited. */
  display: string;
  /** A socket file we created and remove on shutdown. */
  socketFile?: { path: string; dev: number; ino: number };
  /** Passed to us (Server::Starter, systemd): not ours to remove or re-bind. */
  inherited: boolean;
  /** Serves HTTPS. */
  tls: boolean;
}

export interface BindOptions {
  ipv6: boolean;
  backlog: number;
  socketMode: number | undefined;
  /** Where warnings go (a stale socket file removed). */
  warn: (message: string) => void;
}

/** Listeners handed to this process by Server::Starter or systemd (HTTPS with `tls`), or undefined. */
export function inheritedListeners(tls: boolean, env: NodeJS.ProcessEnv = process.env): BoundListener[] | undefined {
  const starter = env.SERVER_STARTER_PORT;
  if (starter !== undefined && starter !== '') {
    // "127.0.0.1:5000=3;/tmp/app.sock=4;8080=5"
    return starter.split(';').filter(Boolean).map((item) => {
      const eq = item.lastIndexOf('=');
      const fd = eq > 0 ? Number(item.slice(eq + 1)) : NaN;
      if (!Number.isInteger(fd) || fd < 0) throw new StartupError(`SERVER_STARTER_PORT: cannot read '${item}' (want ADDRESS=FD)`);
      checkSocketFd(fd, 'SERVER_STARTER_PORT');
      return { fd, display: item.slice(0, eq), inherited: true, tls };
    });
  }
  const count = env.LISTEN_FDS;
  if (count !== undefined && count !== '') {
    // As sd_listen_fds(): the descriptors are for the process whose pid is LISTEN_PID only.
    if (env.LISTEN_PID !== String(process.pid)) return undefined;
    const n = Number(count);
    if (!Number.isInteger(n) || n < 1) throw new StartupError(`LISTEN_FDS: '${count}' is not a number of descriptors`);
    const names = (env.LISTEN_FDNAMES ?? '').split(':');
    const out: BoundListener[] = [];
    for (let i = 0; i < n; i++) {
      const fd = 3 + i; // SD_LISTEN_FDS_START
      checkSocketFd(fd, 'LISTEN_FDS');
      out.push({ fd, display: `systemd fd ${fd}${names[i] ? ` (${names[i]})` : ''}`, inherited: true, tls });
    }
    // As sd_listen_fds(unset_environment=1): the app and its children must not take them again.
    delete env.LISTEN_FDS;
    delete env.LISTEN_PID;
    delete env.LISTEN_FDNAMES;
    return out;
  }
  return undefined;
}

function checkSocketFd(fd: number, source: string): void {
  let isSocket = false;
  try {
    isSocket = fs.fstatSync(fd).isSocket();
  } catch {
    throw new StartupError(`${source}: file descriptor ${fd} is not open`);
  }
  if (!isSocket) throw new StartupError(`${source}: file descriptor ${fd} is not a socket`);
}

/** Binds every listener; on failure closes those already bound and throws a StartupError. */
export async function bindListeners(specs: ListenSpec[], opts: BindOptions): Promise<BoundListener[]> {
  const bound: BoundListener[] = [];
  try {
    for (const spec of specs) bound.push(spec.kind === 'tcp' ? await bindTcp(spec, opts) : await bindUnix(spec.path, spec.text, opts));
  } catch (err) {
    releaseListeners(bound);
    throw err;
  }
  return bound;
}

async function bindTcp(spec: Extract<ListenSpec, { kind: 'tcp' }>, opts: BindOptions): Promise<BoundListener> {
  const host = await resolveHost(spec.host, opts.ipv6, spec.text);
  let fd: number;
  try {
    fd = loadBinding().bindSocket({ host, port: spec.port }, opts.backlog, false, false);
  } catch (err) {
    throw new StartupError(`cannot listen on ${spec.text}${spec.host !== host ? ` (${host})` : ''}: ${bindProblem(err)}`);
  }
  return { fd, display: spec.text, inherited: false, tls: spec.tls };
}

async function resolveHost(host: string | undefined, ipv6: boolean, text: string): Promise<string> {
  if (host === undefined) return ipv6 ? '::' : '0.0.0.0';
  if (net.isIP(host) !== 0) return host;
  let addrs: { address: string; family: number }[];
  try {
    addrs = await dns.lookup(host, { all: true });
  } catch {
    throw new StartupError(`cannot listen on ${text}: cannot resolve host name '${host}'`);
  }
  const preferred = ipv6 ? 6 : 4;
  const pick = addrs.find((a) => a.family === preferred) ?? addrs[0];
  if (!pick) throw new StartupError(`cannot listen on ${text}: '${host}' has no address`);
  return pick.address;
}

async function bindUnix(path: string, text: string, opts: BindOptions): Promise<BoundListener> {
  if (path.startsWith('@')) {
    try {
      return { fd: loadBinding().bindSocket({ path }, opts.backlog), display: `unix:${path}`, inherited: false, tls: false };
    } catch (err) {
      throw new StartupError(`cannot listen on ${text}: ${bindProblem(err)}`);
    }
  }
  await clearStaleSocket(path, text, opts.warn);
  // The socket file is created by bind() with the umask's permissions: narrow
  // the umask around it so the file never exists with wider ones than asked.
  const oldMask = opts.socketMode !== undefined ? process.umask(~opts.socketMode & 0o777) : undefined;
  let fd: number;
  try {
    fd = loadBinding().bindSocket({ path }, opts.backlog);
  } catch (err) {
    throw new StartupError(`cannot listen on ${text}: ${bindProblem(err)}`);
  } finally {
    if (oldMask !== undefined) process.umask(oldMask);
  }
  const st = fs.statSync(path);
  if (opts.socketMode !== undefined) fs.chmodSync(path, opts.socketMode); // exact, whatever the umask allowed
  return { fd, display: `unix:${path}`, socketFile: { path, dev: st.dev, ino: st.ino }, inherited: false, tls: false };
}

async function clearStaleSocket(path: string, text: string, warn: (m: string) => void): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(path);
  } catch {
    return; // nothing there (or a missing directory, which bind reports)
  }
  if (!st.isSocket()) throw new StartupError(`cannot listen on ${text}: ${path} exists and is not a socket`);
  const live = await new Promise<boolean | NodeJS.ErrnoException>((resolve) => {
    const s = net.connect({ path });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED' ? false : err));
  });
  if (live === true) throw new StartupError(`cannot listen on ${text}: another server is accepting connections on ${path}`);
  if (live !== false) throw new StartupError(`cannot listen on ${text}: cannot check the existing ${path}: ${live.message}`);
  warn(`removing stale socket file ${path}`);
  try {
    fs.unlinkSync(path);
  } catch (err) {
    throw new StartupError(`cannot listen on ${text}: cannot remove the stale ${path}: ${(err as Error).message}`);
  }
}

function bindProblem(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  switch (code) {
    case 'EADDRINUSE':
      return 'address already in use';
    case 'EACCES':
      return 'permission denied (ports below 1024 need privileges; socket files need a writable directory)';
    case 'EADDRNOTAVAIL':
      return 'address not available on this machine';
    case 'ENOENT':
      return 'no such directory';
    case 'ENAMETOOLONG':
      return 'name too long';
    case 'EAFNOSUPPORT':
      return 'address family not supported (no IPv6 here?)';
    default:
      return (err as Error).message;
  }
}

/** Closes this process's descriptors (the workers keep theirs). */
export function closeListenerFds(listeners: BoundListener[]): void {
  for (const l of listeners) {
    try {
      fs.closeSync(l.fd);
    } catch {
      // already closed (the engine took it in single-process mode)
    }
  }
}

/** Removes the socket files we created, if they are still ours (a newer server may have replaced them). */
export function removeSocketFiles(listeners: BoundListener[]): void {
  for (const l of listeners) {
    const f = l.socketFile;
    if (!f) continue;
    try {
      const st = fs.lstatSync(f.path);
      if (st.dev === f.dev && st.ino === f.ino) fs.unlinkSync(f.path);
    } catch {
      // gone already
    }
  }
}

/** Undoes bindListeners: closes descriptors and removes socket files. */
export function releaseListeners(listeners: BoundListener[]): void {
  closeListenerFds(listeners);
  removeSocketFiles(listeners);
}
