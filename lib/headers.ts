// Request headers out of the head string, and response headers into the
// one-string block the addon takes ("name\nvalue\n...", see native/response.h).
import {
  INFO_FIELD_COUNT,
  INFO_FIELDS,
} from './native';

/** Flat [name, value, name, value, ...] list of the request's header fields, in order. */
export function readHeaderFields(head: string, info: Int32Array): string[] {
  const n = info[INFO_FIELD_COUNT];
  const out = new Array<string>(n * 2);
  for (let i = 0, o = INFO_FIELDS; i < n; i++, o += 4) {
    const nameOff = info[o];
    const valueOff = info[o + 2];
    out[2 * i] = head.slice(nameOff, nameOff + info[o + 1]);
    out[2 * i + 1] = head.slice(valueOff, valueOff + info[o + 3]);
  }
  return out;
}

/** Value of a request header; repeated fields joined with ', ' ('; ' for Cookie). */
export function findHeader(fields: string[], name: string): string | undefined {
  const wanted = name.toLowerCase();
  let out: string | undefined;
  for (let i = 0; i < fields.length; i += 2) {
    const k = fields[i];
    if (k.length !== wanted.length || k.toLowerCase() !== wanted) continue;
    out = out === undefined ? fields[i + 1] : out + (wanted === 'cookie' ? '; ' : ', ') + fields[i + 1];
  }
  return out;
}

export type ResponseHeaders = ReadonlyArray<string | number>;

/**
 * Joins a flat [name, value, ...] list into the block the addon validates.
 * Names and values must be strings (values may be numbers); the addon
 * refuses CR, LF and NUL, so a value cannot split the response.
 */
export function headerBlock(headers: ResponseHeaders | undefined | null): string {
  if (headers === undefined || headers === null) return '';
  if (!Array.isArray(headers)) throw new TypeError('response headers must be a flat array [name, value, ...]');
  const n = headers.length;
  if (n & 1) throw new TypeError('response headers must have an even number of items [name, value, ...]');
  let block = '';
  for (let i = 0; i < n; i++) {
    const item = headers[i];
    const t = typeof item;
    let s: string;
    if (t === 'string') s = item as string;
    else if (t === 'number' && i & 1) s = String(item);
    else throw new TypeError(`response header ${i & 1 ? 'value' : 'name'} must be a string, got ${t}`);
    block = i === 0 ? s : block + '\n' + s;
  }
  return block;
}
