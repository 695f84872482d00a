// Access log lines in Apache's LogFormat language. The format is compiled
// once into a list of small functions; each request then costs one pass
// over them and a string join. The default is Apache's "combined":
//
//   127.0.0.1 - - [21/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 14 "-" "curl/8.5.0"
import type { FeersumRequest } from '../request';
import type { ResponseHeaders } from '../headers';

/** What the handler wrapper records about one request (see handler.ts). */
export interface AccessRecord {
  req: FeersumRequest;
  /** Date.now() when the request reached JavaScript. */
  startMs: number;
  /** performance.now() at the same moment, for %D / %T. */
  startHr: number;
  /** 0 while no response has started. */
  status: number;
  /** Response body bytes the application produced. */
  bytes: number;
  responseHeaders: ResponseHeaders | undefined;
}

type Part = (r: AccessRecord, endHr: number) => string;

export const NAMED_FORMATS: Record<string, string> = {
  combined: '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"',
  common: '%h %l %u %t "%r" %>s %b',
};

/** Compiles a LogFormat string (or 'combined' / 'common'); throws on an unknown directive. */
export function compileAccessLogFormat(format: string): (r: AccessRecord, endHr: number) => string {
  const spec = NAMED_FORMATS[format] ?? format;
  const parts: Part[] = [];
  let literal = '';
  const flush = () => {
    if (literal === '') return;
    const text = literal;
    parts.push(() => text);
    literal = '';
  };
  for (let i = 0; i < spec.length; i++) {
    const c = spec[i];
    if (c !== '%') {
      literal += c;
      continue;
    }
    if (spec[i + 1] === '%') {
      literal += '%';
      i++;
      continue;
    }
    let j = i + 1;
    // Apache's '<' / '>' (original / final request) mean the same here.
    while (spec[j] === '<' || spec[j] === '>') j++;
    let arg: string | undefined;
    if (spec[j] === '{') {
      const close = spec.indexOf('}', j);
      if (close < 0) throw new Error(`unterminated %{ at position ${i + 1}`);
      arg = spec.slice(j + 1, close);
      j = close + 1;
    }
    const letter = spec[j];
    if (letter === undefined) throw new Error(`'%' at the end of the format`);
    flush();
    parts.push(directive(letter, arg));
    i = j;
  }
  flush();
  return (r, endHr) => {
    let line = '';
    for (let k = 0; k < parts.length; k++) line += parts[k](r, endHr);
    return line + '\n';
  };
}

function directive(letter: string, arg: string | undefined): Part {
  switch (letter) {
    case 'h':
    case 'a':
      // A Unix-socket peer has no address; it is local, and REMOTE_ADDR says 127.0.0.1 too.
      return (r) => r.req.remoteAddress || '127.0.0.1';
    case 'l':
      return () => '-';
    case 'u':
      return (r) => escape(envValue(r, 'REMOTE_USER'));
    case 't':
      if (arg !== undefined) throw new Error('%{...}t is not supported; use %t');
      return (r) => clfTime(r.startMs);
    case 'r':
      return (r) => escape(`${r.req.method} ${r.req.uri} ${r.req.protocol}`);
    case 's':
      return (r) => (r.status ? String(r.status) : '-');
    case 'b':
      return (r) => (r.bytes ? String(r.bytes) : '-');
    case 'B':
      return (r) => String(r.bytes);
    case 'D':
      return (r, end) => String(Math.round((end - r.startHr) * 1000));
    case 'T': {
      const unit = arg ?? 's';
      if (unit === 's') return (r, end) => String(Math.floor((end - r.startHr) / 1000));
      if (unit === 'ms') return (r, end) => String(Math.round(end - r.startHr));
      if (unit === 'us') return (r, end) => String(Math.round((end - r.startHr) * 1000));
      throw new Error(`%{${unit}}T: the unit must be s, ms or us`);
    }
    case 'm':
      return (r) => r.req.method;
    case 'U':
      return (r) => {
        const uri = r.req.uri;
        const q = uri.indexOf('?');
        return escape(q < 0 ? uri : uri.slice(0, q));
      };
    case 'q':
      return (r) => (r.req.query === '' ? '' : escape(`?${r.req.query}`));
    case 'H':
      return (r) => r.req.protocol;
    case 'P':
      return () => String(process.pid);
    case 'i':
      if (!arg) throw new Error('%i needs a header name: %{User-Agent}i');
      return (r) => escape(r.req.header(arg));
    case 'o':
      if (!arg) throw new Error('%o needs a header name: %{Content-Type}o');
      return (r) => escape(responseHeader(r.responseHeaders, arg));
    case 'e':
      if (!arg) throw new Error('%e needs a name: %{REMOTE_USER}e');
      return (r) => escape(envValue(r, arg));
    default:
      throw new Error(`unknown directive %${arg !== undefined ? `{${arg}}` : ''}${letter}`);
  }
}

function envValue(r: AccessRecord, key: string): string | undefined {
  // Only PSGI requests have an env; building one for a native request just
  // to log it would cost more than the request.
  const env = r.req._env as Record<string, unknown> | undefined;
  const v = env?.[key];
  return v === undefined || v === null ? undefined : String(v);
}

function responseHeader(headers: ResponseHeaders | undefined, name: string): string | undefined {
  if (!headers) return undefined;
  const lower = name.toLowerCase();
  for (let i = 0; i + 1 < headers.length; i += 2) {
    const n = headers[i];
    if (typeof n === 'string' && n.length === lower.length && n.toLowerCase() === lower) return String(headers[i + 1]);
  }
  return undefined;
}

/** As Apache does: '-' for missing, and \" \\ \xhh for quotes, backslashes and control bytes. */
function escape(s: string | undefined): string {
  if (s === undefined || s === '') return '-';
  // eslint-disable-next-line no-control-regex
  if (!/["\\\x00-\x1f\x7f]/.test(s)) return s;
  // eslint-disable-next-line no-control-regex
  return s.replace(/["\\\x00-\x1f\x7f]/g, (ch) => {
    if (ch === '"' || ch === '\\') return `\\${ch}`;
    return `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
let cachedSecond = -1;
let cachedTime = '';

/** [21/Nov/2026:10:00:00 +0100] in local time, formatted once per second. */
export function clfTime(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second === cachedSecond) return cachedTime;
  const d = new Date(second * 1000);
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? '+' : '-';
  const abs = Math.abs(off);
  const two = (n: number) => (n < 10 ? `0${n}` : String(n));
  cachedTime =
    `[${two(d.getDate())}/${MONTHS[d.getMonth()]}/${d.getFullYear()}:` +
    `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())} ` +
    `${sign}${two(Math.floor(abs / 60))}${two(abs % 60)}]`;
  cachedSecond = second;
  return cachedTime;
}
