// The listener forms the command line accepts, parsed into plain records.
// Pure string work: resolving names and binding happen in listeners.ts.
//
//   HOST:PORT   :PORT   PORT   [IPv6]:PORT   *:PORT
//   /path/to.sock   ./rel.sock   unix:PATH   @abstract
//   http://HOST:PORT   https://HOST:PORT   HOST:PORT:ssl   (the last two: TLS)
import { UsageError } from './errors';

export interface TcpSpec {
  kind: 'tcp';
  /** undefined = every address (0.0.0.0, or :: with --ipv6). */
  host: string | undefined;
  port: number;
  tls: boolean;
  /** As the user wrote it, for messages. */
  text: string;
}

export interface UnixSpec {
  kind: 'unix';
  /** A filesystem path, or '@name' for a Linux abstract socket. */
  path: string;
  text: string;
}

export type ListenSpec = TcpSpec | UnixSpec;

const FORMS = 'HOST:PORT, :PORT, [IPv6]:PORT, a Unix socket path or @name';

export function parsePort(text: string, what: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) {
    throw new UsageError(`${what}: '${text}' is not a port number (0-65535)`);
  }
  return Number(text);
}

/** Parses one --listen value. */
export function parseListen(text: string, what = '--listen'): ListenSpec {
  let s = text;
  let tls = false;
  let url = false;
  if (s === '') throw new UsageError(`${what}: empty address; use ${FORMS}`);
  if (/^https:\/\//i.test(s)) {
    tls = true;
    url = true;
    s = s.slice(8);
  } else if (/^http:\/\//i.test(s)) {
    url = true;
    s = s.slice(7);
  }
  if (url) s = s.replace(/\/$/, '');
  if (!url) {
    if (s.startsWith('unix:')) return unixSpec(s.slice(5), text, what);
    if (s.startsWith('@') || s.startsWith('/') || s.startsWith('./') || s.startsWith('../')) {
      return unixSpec(s, text, what);
    }
    if (/:ssl$/i.test(s)) {
      tls = true;
      s = s.slice(0, -4);
    }
  }
  if (/^\d+$/.test(s)) return { kind: 'tcp', host: undefined, port: parsePort(s, what), tls, text };
  const v6 = /^\[([0-9A-Fa-f:.]+(?:%[\w.-]+)?)\]:(\d+)$/.exec(s);
  if (v6) return { kind: 'tcp', host: v6[1], port: parsePort(v6[2], what), tls, text };
  const hp = /^([^:/[\]\s]*):(\d+)$/.exec(s);
  if (hp) {
    const host = hp[1] === '' || hp[1] === '*' ? undefined : hp[1];
    return { kind: 'tcp', host, port: parsePort(hp[2], what), tls, text };
  }
  if (!url && s.includes('/')) return unixSpec(s, text, what);
  if (/^[0-9A-Fa-f:]+:\d+$/.test(s) && s.split(':').length > 2) {
    throw new UsageError(`${what}: '${text}': put an IPv6 address in brackets, as [::1]:PORT`);
  }
  throw new UsageError(`${what}: '${text}' is not ${FORMS}`);
}

function unixSpec(path: string, text: string, what: string): UnixSpec {
  if (path === '' || path === '@') throw new UsageError(`${what}: '${text}': the socket needs a name`);
  // sockaddr_un.sun_path holds 108 bytes, a path's terminating NUL included.
  if (Buffer.byteLength(path) > 107) throw new UsageError(`${what}: '${text}': Unix socket paths are limited to 107 bytes`);
  return { kind: 'unix', path, text };
}

/** How a listener is shown to people: http://127.0.0.1:5000, unix:/run/app.sock, unix:@name. */
export function describeAddress(a: { family: string; address: string; port: number; tls?: boolean }): string {
  if (a.family === 'unix') return `unix:${a.address}`;
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  return `${a.tls ? 'https' : 'http'}://${host}:${a.port}`;
}
