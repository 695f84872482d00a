// PATH_INFO decoding: percent-escapes become bytes, the bytes are read as
// UTF-8, and when they are not valid UTF-8 each byte becomes one character
// (latin1) so nothing is lost.
import { isUtf8 } from 'node:buffer';

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  c |= 0x20;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

export function decodePath(raw: string): string {
  if (raw.indexOf('%') === -1) return raw; // the parser admits only ASCII here
  const bytes = Buffer.allocUnsafe(raw.length);
  let n = 0;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 37 /* % */ && i + 2 < raw.length) {
      const hi = hexValue(raw.charCodeAt(i + 1));
      const lo = hexValue(raw.charCodeAt(i + 2));
      if (hi >= 0 && lo >= 0) {
        bytes[n++] = (hi << 4) | lo;
        i += 2;
        continue;
      }
    }
    bytes[n++] = c; // a '%' not followed by two hex digits stays as it is
  }
  const decoded = bytes.subarray(0, n);
  return isUtf8(decoded) ? decoded.toString('utf8') : decoded.toString('latin1');
}
