// Request-smuggling vectors over raw sockets (RFC 9112 sections 2.2, 3, 5,
// 6.1-6.3 and 7.1, plus the known CL.TE / TE.CL / TE.TE shapes).
//
// Each row is sent on its own connection, followed (unless the row says
// otherwise) by a harmless pipelined request, FOLLOW = "GET /smuggled". The
// handler records every request the application sees, keyed by the client's
// port, with its exact method, target and body bytes. For every row one of
// two things must hold:
//   - the server answered an error (400/413/417/431/501/505) with
//     Connection: close and closed, and the application saw nothing from
//     this connection; or
//   - the application saw exactly the framing that was sent (each request's
//     method, target and body bytes), which includes FOLLOW only when the
//     vector legitimately ends before it.
// In no case may the application see /smuggled (or a request hidden in a
// body) as a request of its own when the framing does not put it there.
import net from 'node:net';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { FeersumRequest } from '../lib/index';
import { openFdCount, parseResponses, sleep, startServer, type TestServer, waitFor, wholeBodyHandler } from './helpers';

// ------------------------------------------------------------------ server

interface Seen {
  method: string;
  uri: string;
  body: string; // latin1, byte for byte
}

let server: TestServer;
let baselineFds = 0;
/** What the application saw, by the client's port (one connection per vector). */
const seenByPort = new Map<number, Seen[]>();

function record(req: FeersumRequest, body: Buffer): void {
  const list = seenByPort.get(req.remotePort) ?? [];
  list.push({ method: req.method, uri: req.uri, body: body.toString('latin1') });
  seenByPort.set(req.remotePort, list);
}

const handler = wholeBodyHandler(record);

beforeAll(async () => {
  baselineFds = openFdCount();
  server = await startServer(handler, {
    headerTimeout: 2,
    readTimeout: 1,
    lingerTimeout: 1,
    maxBodySize: 1024 * 1024,
  });
});

afterAll(async () => {
  await server.close();
});

// ------------------------------------------------------------------ client

interface Exchange {
  data: Buffer;
  closed: boolean;
  port: number;
}

/**
 * Sends `bytes` on a fresh connection and collects the answer. Finishes when
 * the server closes, or once `wantResponses` final responses have arrived
 * and nothing more came for `settleMs`, or after `timeoutMs`.
 */
function exchange(
  bytes: Buffer,
  wantResponses: number,
  timeoutMs = 4000,
  settleMs = 200,
  headRequests: number[] = [],
  pieceSize = 0,
): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(server.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let closed = false;
    let port = 0;
    let settle: NodeJS.Timeout | undefined;
    const finish = () => {
      clearTimeout(timer);
      if (settle) clearTimeout(settle);
      sock.destroy();
      resolve({ data: Buffer.concat(chunks), closed, port });
    };
    const timer = setTimeout(finish, timeoutMs);
    sock.on('connect', () => {
      port = sock.localPort ?? 0;
      if (!pieceSize) {
        sock.write(bytes);
        return;
      }
      // In small pieces, each in its own segment and (mostly) its own read.
      sock.setNoDelay(true);
      void (async () => {
        for (let i = 0; i < bytes.length && !sock.destroyed; i += pieceSize) {
          sock.write(bytes.subarray(i, i + pieceSize));
          await sleep(1);
        }
      })();
    });
    sock.on('data', (d) => {
      chunks.push(d);
      if (settle) clearTimeout(settle);
      const n = finals(parseResponses(Buffer.concat(chunks), { headRequests })).length;
      if (wantResponses > 0 && n >= wantResponses) settle = setTimeout(finish, settleMs);
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') return;
      clearTimeout(timer);
      reject(err);
    });
    sock.on('close', () => {
      closed = true;
      finish();
    });
  });
}

const finals = <T extends { status: number }>(rs: T[]) => rs.filter((r) => r.status >= 200);

// ------------------------------------------------------------------ vectors

const FOLLOW = 'GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n';
const HIDDEN = 'GET /smuggled-in-body HTTP/1.1\r\nHost: x\r\n\r\n';

type Expect =
  /** refused with this status, Connection: close, closed; the app saw nothing */
  | { error: number }
  /** the app saw exactly these requests; statuses of the final responses; closed or kept open */
  | { seen: Seen[]; statuses: number[]; closed: boolean }
  /** never reaches the app; closed, with an error status or silently (e.g. the body never completes) */
  | { refusedOrDropped: true };

interface Vector {
  name: string;
  bytes: string | Buffer;
  /** Append FOLLOW after the vector (default true). */
  follow?: boolean;
  expect: Expect;
}

const req = (method: string, uri: string, body = ''): Seen => ({ method, uri, body });
const followSeen = req('GET', '/smuggled');
const err = (status: number): Expect => ({ error: status });
/** The vector is accepted as `seen`, and FOLLOW is then served as the legitimate next request. */
const ok = (...seen: Seen[]): Expect => ({ seen: [...seen, followSeen], statuses: [...seen, followSeen].map(() => 200), closed: false });
/** The vector's requests are served, then what follows them is refused with `status`. */
const okThen = (status: number, ...seen: Seen[]): Expect => ({ seen, statuses: [...seen.map(() => 200), status], closed: true });

/** A POST head with Host and the given extra header lines, then the body. */
const post = (headers: string, body = '') => `POST / HTTP/1.1\r\nHost: x\r\n${headers}\r\n${body}`;
const te = (value: string, body: string) => post(`Transfer-Encoding: ${value}\r\n`, body);
const chunked = (body: string) => te('chunked', body);
const CHUNKED_HELLO = '5\r\nhello\r\n0\r\n\r\n';

const vectors: Vector[] = [
  // ---------------------------------------------------------- Content-Length (RFC 9112 6.2, 6.3)
  { name: 'CL: plain body, then a pipelined request', bytes: post('Content-Length: 5\r\n', 'hello'), expect: ok(req('POST', '/', 'hello')) },
  { name: 'CL: 0', bytes: post('Content-Length: 0\r\n'), expect: ok(req('POST', '/')) },
  { name: 'CL: leading zeros are decimal (005 = 5)', bytes: post('Content-Length: 005\r\n', 'hello'), expect: ok(req('POST', '/', 'hello')) },
  { name: 'CL: OWS around the value is trimmed', bytes: post('Content-Length: \t 5 \t\r\n', 'hello'), expect: ok(req('POST', '/', 'hello')) },
  { name: 'CL: identical duplicates agree', bytes: post('Content-Length: 5\r\nContent-Length: 5\r\n', 'hello'), expect: ok(req('POST', '/', 'hello')) },
  { name: 'CL: differing duplicates', bytes: post('Content-Length: 5\r\nContent-Length: 6\r\n', 'hello!'), expect: err(400) },
  { name: 'CL: differing duplicates, smaller second', bytes: post('Content-Length: 6\r\nContent-Length: 5\r\n', 'hello!'), expect: err(400) },
  { name: 'CL: duplicates differing only by leading zero agree on the value', bytes: post('Content-Length: 5\r\nContent-Length: 05\r\n', 'hello'), expect: ok(req('POST', '/', 'hello')) },
  { name: 'CL: comma-joined list "5, 5" (never two framings: refused)', bytes: post('Content-Length: 5, 5\r\n', 'hello'), expect: err(400) },
  { name: 'CL: comma-joined list "5,6"', bytes: post('Content-Length: 5,6\r\n', 'hello!'), expect: err(400) },
  { name: 'CL: space-separated "5 5"', bytes: post('Content-Length: 5 5\r\n', 'hello'), expect: err(400) },
  { name: 'CL: signed +5', bytes: post('Content-Length: +5\r\n', 'hello'), expect: err(400) },
  { name: 'CL: negative -1', bytes: post('Content-Length: -1\r\n', 'hello'), expect: err(400) },
  { name: 'CL: negative zero -0', bytes: post('Content-Length: -0\r\n'), expect: err(400) },
  { name: 'CL: hex 0x5', bytes: post('Content-Length: 0x5\r\n', 'hello'), expect: err(400) },
  { name: 'CL: decimal point 5.0', bytes: post('Content-Length: 5.0\r\n', 'hello'), expect: err(400) },
  { name: 'CL: exponent 5e0', bytes: post('Content-Length: 5e0\r\n', 'hello'), expect: err(400) },
  { name: 'CL: trailing garbage 5abc', bytes: post('Content-Length: 5abc\r\n', 'hello'), expect: err(400) },
  { name: 'CL: empty value', bytes: post('Content-Length: \r\n', 'hello'), expect: err(400) },
  { name: 'CL: NUL after the digits', bytes: post('Content-Length: 5\0\r\n', 'hello'), expect: err(400) },
  { name: 'CL: vertical tab before the digits', bytes: post('Content-Length: \x0b5\r\n', 'hello'), expect: err(400) },
  { name: 'CL: 2^53 (beyond exact JS numbers)', bytes: post('Content-Length: 9007199254740992\r\n', 'hello'), expect: err(400) },
  { name: 'CL: 2^64+5 (would wrap to 5 in 64 bits)', bytes: post('Content-Length: 18446744073709551621\r\n', 'hello'), expect: err(400) },
  { name: 'CL: 2^53-1 is a number, but over maxBodySize', bytes: post('Content-Length: 9007199254740991\r\n', 'hello'), expect: err(413) },
  { name: 'CL: space before the colon', bytes: post('Content-Length : 5\r\n', 'hello'), expect: err(400) },
  { name: 'CL: tab before the colon', bytes: post('Content-Length\t: 5\r\n', 'hello'), expect: err(400) },
  {
    name: 'CL: "Content_Length" is not Content-Length: no body, the would-be body is the next request',
    bytes: post(`Content_Length: ${FOLLOW.length}\r\n`, FOLLOW),
    follow: false,
    expect: { seen: [req('POST', '/'), followSeen], statuses: [200, 200], closed: false },
  },
  {
    name: 'CL: body covering a hidden request is body, not a request',
    bytes: post(`Content-Length: ${HIDDEN.length}\r\n`, HIDDEN),
    expect: ok(req('POST', '/', HIDDEN)),
  },
  {
    name: 'CL: length covering the follow-up swallows it as body',
    bytes: post(`Content-Length: ${5 + FOLLOW.length}\r\n`, 'hello' + FOLLOW),
    follow: false,
    expect: { seen: [req('POST', '/', 'hello' + FOLLOW)], statuses: [200], closed: false },
  },
  {
    name: 'CL: longer than what is sent: the follow-up is body; never completes, never a request',
    bytes: post(`Content-Length: ${5 + FOLLOW.length + 10}\r\n`, 'hello'),
    expect: { refusedOrDropped: true },
  },
  {
    name: 'CL: shorter than the body: the excess starts the next request',
    bytes: post('Content-Length: 3\r\n', 'hel'),
    expect: ok(req('POST', '/', 'hel')),
  },
  {
    name: 'CL: shorter than the body: the excess is a malformed next request',
    bytes: post('Content-Length: 3\r\n', 'hello'),
    expect: okThen(501, req('POST', '/', 'hel')), // "loGET" is a token but no method
  },
  {
    name: 'CL on GET frames a body too',
    bytes: `GET / HTTP/1.1\r\nHost: x\r\nContent-Length: ${HIDDEN.length}\r\n\r\n${HIDDEN}`,
    expect: ok(req('GET', '/', HIDDEN)),
  },
  {
    name: 'CL on HEAD frames a body too',
    bytes: `HEAD / HTTP/1.1\r\nHost: x\r\nContent-Length: ${HIDDEN.length}\r\n\r\n${HIDDEN}`,
    expect: ok(req('HEAD', '/', HIDDEN)),
  },

  // ---------------------------------------------------------- CL + TE (RFC 9112 6.1, 6.3)
  { name: 'CL.TE: Content-Length then chunked', bytes: post('Content-Length: 6\r\nTransfer-Encoding: chunked\r\n', '0\r\n\r\nG'), expect: err(400) },
  { name: 'TE.CL: chunked then Content-Length', bytes: post('Transfer-Encoding: chunked\r\nContent-Length: 4\r\n', '5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n'), expect: err(400) },
  { name: 'CL: 0 with chunked', bytes: post('Content-Length: 0\r\nTransfer-Encoding: chunked\r\n', CHUNKED_HELLO), expect: err(400) },
  { name: 'CL.TE with obfuscated TE "xchunked"', bytes: post('Content-Length: 5\r\nTransfer-Encoding: xchunked\r\n', 'hello'), expect: err(400) },
  { name: 'CL.TE with TE "identity"', bytes: post('Content-Length: 5\r\nTransfer-Encoding: identity\r\n', 'hello'), expect: err(400) },
  { name: 'CL.TE with duplicate CL', bytes: post('Content-Length: 5\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n', CHUNKED_HELLO), expect: err(400) },
  { name: 'TE with "Content_Length" (not a CL): chunked framing', bytes: post('Transfer-Encoding: chunked\r\nContent_Length: 3\r\n', CHUNKED_HELLO), expect: ok(req('POST', '/', 'hello')) },

  // ---------------------------------------------------------- Transfer-Encoding (RFC 9112 6.1, 7)
  { name: 'TE: chunked, then a pipelined request', bytes: chunked(CHUNKED_HELLO), expect: ok(req('POST', '/', 'hello')) },
  { name: 'TE: "Chunked" (codings are case-insensitive)', bytes: te('Chunked', CHUNKED_HELLO), expect: ok(req('POST', '/', 'hello')) },
  { name: 'TE: "CHUNKED"', bytes: te('CHUNKED', CHUNKED_HELLO), expect: ok(req('POST', '/', 'hello')) },
  { name: 'TE: "cHuNkEd"', bytes: te('cHuNkEd', CHUNKED_HELLO), expect: ok(req('POST', '/', 'hello')) },
  { name: 'TE: extra spaces before the value', bytes: post('Transfer-Encoding:    chunked\r\n', CHUNKED_HELLO), expect: ok(req('POST', '/', 'hello')) },
  { name: 'TE: tab before the value', bytes: post('Transfer-Encoding:\tchunked\r\n', CHUNKED_HELLO), expect: ok(req('POST', '/', 'hello')) },
  { name: 'TE: no space after the colon', bytes: post('Transfer-Encoding:chunked\r\n', CHUNKED_HELLO), expect: ok(req('POST', '/', 'hello')) },
  { name: 'TE: "chunked " with a trailing space (OWS)', bytes: te('chunked ', CHUNKED_HELLO), expect: ok(req('POST', '/', 'hello')) },
  { name: 'TE: "chunked\\t" with a trailing tab (OWS)', bytes: te('chunked\t', CHUNKED_HELLO), expect: ok(req('POST', '/', 'hello')) },
  { name: 'TE: empty list elements "chunked,"', bytes: te('chunked,', CHUNKED_HELLO), expect: ok(req('POST', '/', 'hello')) },
  { name: 'TE: empty list elements ", chunked"', bytes: te(', chunked', CHUNKED_HELLO), expect: ok(req('POST', '/', 'hello')) },
  { name: 'TE: vertical tab before the value', bytes: te('\x0bchunked', CHUNKED_HELLO), expect: err(400) },
  { name: 'TE: vertical tab after the value', bytes: te('chunked\x0b', CHUNKED_HELLO), expect: err(400) },
  { name: 'TE: form feed before the value', bytes: te('\x0cchunked', CHUNKED_HELLO), expect: err(400) },
  { name: 'TE: NUL after the value', bytes: te('chunked\0', CHUNKED_HELLO), expect: err(400) },
  { name: 'TE: obs-text after the value', bytes: te('chunked\xff', CHUNKED_HELLO), expect: err(400) },
  { name: 'TE: quoted "\\"chunked\\""', bytes: te('"chunked"', CHUNKED_HELLO), expect: err(400) },
  { name: 'TE: "x-chunked"', bytes: te('x-chunked', CHUNKED_HELLO), expect: err(501) },
  { name: 'TE: "xchunked"', bytes: te('xchunked', CHUNKED_HELLO), expect: err(501) },
  { name: 'TE: "chunkedx"', bytes: te('chunkedx', CHUNKED_HELLO), expect: err(501) },
  { name: 'TE: "chunk"', bytes: te('chunk', CHUNKED_HELLO), expect: err(501) },
  { name: 'TE: "chunked;q=1" (chunked takes no parameters)', bytes: te('chunked;q=1', CHUNKED_HELLO), expect: err(400) },
  { name: 'TE: "chunked, identity" (chunked not last)', bytes: te('chunked, identity', CHUNKED_HELLO), expect: err(400) },
  { name: 'TE: "identity, chunked" (identity is no coding any more)', bytes: te('identity, chunked', CHUNKED_HELLO), expect: err(501) },
  { name: 'TE: "gzip, chunked" (unsupported coding)', bytes: te('gzip, chunked', CHUNKED_HELLO), expect: err(501) },
  { name: 'TE: "chunked, chunked"', bytes: te('chunked, chunked', CHUNKED_HELLO), expect: err(400) },
  { name: 'TE: duplicate headers, both chunked', bytes: post('Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n', CHUNKED_HELLO), expect: err(400) },
  { name: 'TE: duplicate headers, chunked then identity', bytes: post('Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n', CHUNKED_HELLO), expect: err(400) },
  { name: 'TE: duplicate headers, identity then chunked', bytes: post('Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n', CHUNKED_HELLO), expect: err(501) },
  { name: 'TE: duplicate headers, chunked then "x"', bytes: post('Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n', CHUNKED_HELLO), expect: err(400) },
  { name: 'TE: empty value', bytes: te('', CHUNKED_HELLO), expect: err(400) },
  { name: 'TE: only a comma', bytes: te(',', CHUNKED_HELLO), expect: err(400) },
  { name: 'TE: space before the colon "Transfer-Encoding : chunked"', bytes: post('Transfer-Encoding : chunked\r\n', CHUNKED_HELLO), expect: err(400) },
  { name: 'TE: NUL in the field name', bytes: post('Transfer-Encoding\0: chunked\r\n', CHUNKED_HELLO), expect: err(400) },
  {
    name: 'TE: "Transfer_Encoding" is not TE: no body, the chunk lines are a bad next request',
    bytes: post('Transfer_Encoding: chunked\r\n', CHUNKED_HELLO),
    expect: okThen(400, req('POST', '/')),
  },
  { name: 'TE: in an obs-fold continuation line', bytes: post('X-Foo: bar\r\n Transfer-Encoding: chunked\r\n', CHUNKED_HELLO), expect: err(400) },
  { name: 'TE: value folded onto the next line', bytes: post('Transfer-Encoding:\r\n chunked\r\n', CHUNKED_HELLO), expect: err(400) },
  { name: 'TE: header line starting with a space (fold of the request line)', bytes: 'POST / HTTP/1.1\r\n Transfer-Encoding: chunked\r\nHost: x\r\n\r\n' + CHUNKED_HELLO, expect: err(400) },
  { name: 'TE: header line starting with a tab', bytes: 'POST / HTTP/1.1\r\nHost: x\r\n\tTransfer-Encoding: chunked\r\n\r\n' + CHUNKED_HELLO, expect: err(400) },
  { name: 'TE on HTTP/1.0', bytes: 'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n' + CHUNKED_HELLO, expect: err(400) },
  { name: 'TE and CL on HTTP/1.0', bytes: 'POST / HTTP/1.0\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n' + CHUNKED_HELLO, expect: err(400) },
  { name: 'TE "identity" alone on HTTP/1.0', bytes: 'POST / HTTP/1.0\r\nTransfer-Encoding: identity\r\n\r\nhello', expect: err(400) },

  // ---------------------------------------------------------- chunked body syntax (RFC 9112 7.1)
  { name: 'chunk: uppercase hex size', bytes: chunked('A\r\n0123456789\r\n0\r\n\r\n'), expect: ok(req('POST', '/', '0123456789')) },
  { name: 'chunk: several chunks', bytes: chunked('2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n'), expect: ok(req('POST', '/', 'hello')) },
  { name: 'chunk: leading zeros beyond 16 digits are still 5', bytes: chunked('0000000000000000005\r\nhello\r\n0\r\n\r\n'), expect: ok(req('POST', '/', 'hello')) },
  { name: 'chunk: last chunk "000"', bytes: chunked('5\r\nhello\r\n000\r\n\r\n'), expect: ok(req('POST', '/', 'hello')) },
  { name: 'chunk: extensions', bytes: chunked('5;name=value;flag\r\nhello\r\n0;last\r\n\r\n'), expect: ok(req('POST', '/', 'hello')) },
  { name: 'chunk: BWS before ";" and a quoted extension', bytes: chunked('5 ;a="b c" ; d = e\r\nhello\r\n0\r\n\r\n'), expect: ok(req('POST', '/', 'hello')) },
  { name: 'chunk: trailer fields are discarded', bytes: chunked('5\r\nhello\r\n0\r\nX-Trailer: 1\r\nContent-Length: 99\r\n\r\n'), expect: ok(req('POST', '/', 'hello')) },
  { name: 'chunk: hidden request inside chunk data is body', bytes: chunked(`${HIDDEN.length.toString(16)}\r\n${HIDDEN}\r\n0\r\n\r\n`), expect: ok(req('POST', '/', HIDDEN)) },
  { name: 'chunk: last-chunk-looking data inside a chunk is body', bytes: chunked('7\r\n0\r\n\r\nGE\r\n0\r\n\r\n'), expect: ok(req('POST', '/', '0\r\n\r\nGE')) },
  { name: 'chunk: size with 17 significant hex digits overflows', bytes: chunked('10000000000000005\r\nhello\r\n0\r\n\r\n'), expect: err(400) },
  { name: 'chunk: size 1ffffffffffffffff overflows', bytes: chunked('1ffffffffffffffff\r\nhello\r\n0\r\n\r\n'), expect: err(400) },
  { name: 'chunk: 16-digit size: everything after it is chunk data, never a request', bytes: chunked('ffffffffffffffff\r\nhello\r\n0\r\n\r\n'), expect: { refusedOrDropped: true } },
  { name: 'chunk: leading space before the size', bytes: chunked(' 5\r\nhello\r\n0\r\n\r\n'), expect: err(400) },
  { name: 'chunk: trailing space after the size', bytes: chunked('5 \r\nhello\r\n0\r\n\r\n'), expect: err(400) },
  { name: 'chunk: trailing tab after the size', bytes: chunked('5\t\r\nhello\r\n0\r\n\r\n'), expect: err(400) },
  { name: 'chunk: "0x" prefix', bytes: chunked('0x5\r\nhello\r\n0\r\n\r\n'), expect: err(400) },
  { name: 'chunk: signed size +5', bytes: chunked('+5\r\nhello\r\n0\r\n\r\n'), expect: err(400) },
  { name: 'chunk: negative size -5', bytes: chunked('-5\r\nhello\r\n0\r\n\r\n'), expect: err(400) },
  { name: 'chunk: empty size line', bytes: chunked('\r\nhello\r\n0\r\n\r\n'), expect: err(400) },
  { name: 'chunk: NUL after the size', bytes: chunked('5\0\r\nhello\r\n0\r\n\r\n'), expect: err(400) },
  { name: 'chunk: ";" without an extension name', bytes: chunked('5;\r\nhello\r\n0\r\n\r\n'), expect: err(400) },
  { name: 'chunk: unterminated quoted extension', bytes: chunked('5;a="b\r\nhello\r\n0\r\n\r\n'), expect: err(400) },
  { name: 'chunk: NUL in an extension', bytes: chunked('5;a=b\0c\r\nhello\r\n0\r\n\r\n'), expect: err(400) },
  { name: 'chunk: bare LF after the size', bytes: chunked('5\nhello\r\n0\r\n\r\n'), expect: err(400) },
  { name: 'chunk: bare CR after the size', bytes: chunked('5\rhello\r\n0\r\n\r\n'), expect: err(400) },
  { name: 'chunk: bare LF in an extension', bytes: chunked('5;a=b\nhello\r\n0\r\n\r\n'), expect: err(400) },
  { name: 'chunk: missing CRLF after chunk data', bytes: chunked('5\r\nhello0\r\n\r\n'), expect: err(400) },
  { name: 'chunk: data longer than its size', bytes: chunked('5\r\nhelloX\r\n0\r\n\r\n'), expect: err(400) },
  { name: 'chunk: data shorter than its size', bytes: chunked('5\r\nhell\r\n0\r\n\r\n'), expect: err(400) },
  { name: 'chunk: bare LF after chunk data', bytes: chunked('5\r\nhello\n0\r\n\r\n'), expect: err(400) },
  { name: 'chunk: bare CR after chunk data', bytes: chunked('5\r\nhello\r0\r\n\r\n'), expect: err(400) },
  { name: 'chunk: all bare LF', bytes: chunked('5\nhello\n0\n\n'), expect: err(400) },
  { name: 'chunk: bare LF ending the body', bytes: chunked('5\r\nhello\r\n0\r\n\n'), expect: err(400) },
  { name: 'chunk: last chunk without the final CRLF swallows the follow-up as a bad trailer', bytes: chunked('5\r\nhello\r\n0\r\n'), expect: err(400) },
  { name: 'chunk: trailer in obs-fold', bytes: chunked('5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n'), expect: err(400) },
  { name: 'chunk: trailer with NUL', bytes: chunked('5\r\nhello\r\n0\r\nX-T: a\0b\r\n\r\n'), expect: err(400) },
  { name: 'chunk: trailer with a space before the colon', bytes: chunked('5\r\nhello\r\n0\r\nX-T : a\r\n\r\n'), expect: err(400) },
  {
    name: 'chunk: extra bytes after the last chunk begin a (bad) next request',
    bytes: chunked('5\r\nhello\r\n0\r\n\r\nXYZ'),
    expect: okThen(501, req('POST', '/', 'hello')),
  },
  {
    name: 'chunk: an empty line after the last chunk is skipped before the next request',
    bytes: chunked('5\r\nhello\r\n0\r\n\r\n\r\n'),
    expect: ok(req('POST', '/', 'hello')),
  },
  {
    name: 'chunk: chunked body that never ends: the follow-up is chunk-size garbage',
    bytes: chunked('5\r\nhello\r\n'),
    expect: err(400),
  },

  // ---------------------------------------------------------- request line and fields (RFC 9112 2-5)
  { name: 'line: bare LF ending the request line', bytes: 'GET / HTTP/1.1\nHost: x\r\n\r\n', expect: err(400) },
  { name: 'line: bare CR ending the request line', bytes: 'GET / HTTP/1.1\rHost: x\r\n\r\n', expect: err(400) },
  { name: 'line: bare CR inside the request line', bytes: 'GET /\r HTTP/1.1\r\nHost: x\r\n\r\n', expect: err(400) },
  { name: 'line: bare LF between fields', bytes: 'GET / HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n', expect: err(400) },
  { name: 'line: bare CR inside a field value', bytes: 'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n', expect: err(400) },
  { name: 'line: bare CR inside a field name', bytes: 'GET / HTTP/1.1\r\nHost: x\r\nX\rA: 1\r\n\r\n', expect: err(400) },
  { name: 'line: bare LF ending the head', bytes: 'GET / HTTP/1.1\r\nHost: x\r\n\n', expect: err(400) },
  { name: 'line: CR CR LF ending the head', bytes: 'GET / HTTP/1.1\r\nHost: x\r\n\r\r\n', expect: err(400) },
  { name: 'line: NUL in the method', bytes: 'G\0ET / HTTP/1.1\r\nHost: x\r\n\r\n', expect: err(400) },
  { name: 'line: NUL in the target', bytes: 'GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n', expect: err(400) },
  { name: 'line: NUL in the version', bytes: 'GET / HTTP/1.1\0\r\nHost: x\r\n\r\n', expect: err(400) },
  { name: 'line: NUL in a field name', bytes: 'GET / HTTP/1.1\r\nHost: x\r\nX-\0A: 1\r\n\r\n', expect: err(400) },
  { name: 'line: NUL in a field value', bytes: 'GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\0\r\n\r\n', expect: err(400) },
  { name: 'line: DEL in a field value', bytes: 'GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\x7f\r\n\r\n', expect: err(400) },
  { name: 'line: obs-fold with a space', bytes: 'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n', expect: err(400) },
  { name: 'line: obs-fold with a tab', bytes: 'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n', expect: err(400) },
  { name: 'line: Host folded onto the next line', bytes: 'GET / HTTP/1.1\r\nHost:\r\n x\r\n\r\n', expect: err(400) },
  { name: 'line: space in the target', bytes: 'GET /a b HTTP/1.1\r\nHost: x\r\n\r\n', expect: err(400) },
  { name: 'line: two spaces after the method', bytes: 'GET  / HTTP/1.1\r\nHost: x\r\n\r\n', expect: err(400) },
  { name: 'line: tab as a separator', bytes: 'GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n', expect: err(400) },
  { name: 'line: trailing space after the version', bytes: 'GET / HTTP/1.1 \r\nHost: x\r\n\r\n', expect: err(400) },
  { name: 'line: lowercase version', bytes: 'GET / http/1.1\r\nHost: x\r\n\r\n', expect: err(400) },
  { name: 'line: version HTTP/1.10', bytes: 'GET / HTTP/1.10\r\nHost: x\r\n\r\n', expect: err(400) },
  { name: 'line: version HTTP/2', bytes: 'GET / HTTP/2\r\nHost: x\r\n\r\n', expect: err(400) },
  { name: 'line: version HTTP/1.2', bytes: 'GET / HTTP/1.2\r\nHost: x\r\n\r\n', expect: err(505) },
  { name: 'line: version HTTP/3.0', bytes: 'GET / HTTP/3.0\r\nHost: x\r\n\r\n', expect: err(505) },
  { name: 'line: HTTP/0.9 request line', bytes: 'GET /\r\n\r\n', expect: err(400) },
  { name: 'line: unknown method', bytes: 'SMUGGLE / HTTP/1.1\r\nHost: x\r\n\r\n', expect: err(501) },
  { name: 'line: lowercase method', bytes: 'post / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello', expect: err(501) },
  { name: 'line: leading empty lines are skipped (RFC 9112 2.2)', bytes: '\r\n\r\nPOST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello', expect: ok(req('POST', '/', 'hello')) },
  { name: 'line: leading bare LF', bytes: '\nGET / HTTP/1.1\r\nHost: x\r\n\r\n', expect: err(400) },
  { name: 'line: no Host on HTTP/1.1', bytes: 'POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello', expect: err(400) },
  { name: 'line: two Host fields', bytes: 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', expect: err(400) },
  { name: 'line: Host with a space', bytes: 'GET / HTTP/1.1\r\nHost: a b\r\n\r\n', expect: err(400) },
  { name: 'line: Host with a slash', bytes: 'GET / HTTP/1.1\r\nHost: a/b\r\n\r\n', expect: err(400) },
  { name: 'line: field without a colon', bytes: 'GET / HTTP/1.1\r\nHost: x\r\nX-A 1\r\n\r\n', expect: err(400) },
  { name: 'line: field with an empty name', bytes: 'GET / HTTP/1.1\r\nHost: x\r\n: 1\r\n\r\n', expect: err(400) },

  // ---------------------------------------------------------- targets (RFC 9112 3.2)
  { name: 'target: absolute-form', bytes: 'GET http://x/abs?q=1 HTTP/1.1\r\nHost: x\r\n\r\n', expect: ok(req('GET', 'http://x/abs?q=1')) },
  { name: 'target: absolute-form with a body', bytes: 'POST http://other.example/p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello', expect: ok(req('POST', 'http://other.example/p', 'hello')) },
  { name: 'target: asterisk-form with OPTIONS', bytes: 'OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n', expect: ok(req('OPTIONS', '*')) },
  { name: 'target: asterisk-form with GET', bytes: 'GET * HTTP/1.1\r\nHost: x\r\n\r\n', expect: err(400) },
  { name: 'target: neither origin- nor absolute-form', bytes: 'GET x/y HTTP/1.1\r\nHost: x\r\n\r\n', expect: err(400) },
  { name: 'target: absolute-form without a scheme', bytes: 'GET ://x/ HTTP/1.1\r\nHost: x\r\n\r\n', expect: err(400) },

  // ---------------------------------------------------------- Expect (RFC 9110 10.1.1)
  { name: 'Expect: 100-continue with the body already sent', bytes: post('Expect: 100-continue\r\nContent-Length: 5\r\n', 'hello'), expect: ok(req('POST', '/', 'hello')) },
  { name: 'Expect: 100-Continue (case-insensitive)', bytes: post('Expect: 100-Continue\r\nContent-Length: 5\r\n', 'hello'), expect: ok(req('POST', '/', 'hello')) },
  { name: 'Expect: 100-continue on HTTP/1.0 is ignored', bytes: 'POST / HTTP/1.0\r\nConnection: keep-alive\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello', expect: ok(req('POST', '/', 'hello')) },
  { name: 'Expect: 100-continue, plus an unknown expectation', bytes: post('Expect: 100-continue, foo\r\nContent-Length: 5\r\n', 'hello'), expect: err(417) },
  { name: 'Expect: unknown expectation', bytes: post('Expect: foo\r\nContent-Length: 5\r\n', 'hello'), expect: err(417) },
  { name: 'Expect: 100-continue with a parameter', bytes: post('Expect: 100-continue;a=b\r\nContent-Length: 5\r\n', 'hello'), expect: err(417) },
  { name: 'Expect: 100-continue with CL.TE', bytes: post('Expect: 100-continue\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n', CHUNKED_HELLO), expect: err(400) },
  { name: 'Expect: 100-continue with an oversized CL', bytes: post('Expect: 100-continue\r\nContent-Length: 2000000\r\n'), expect: err(413) },

  // ---------------------------------------------------------- connection-level framing
  {
    name: 'Connection: close ends the pipeline: what follows is never read',
    bytes: post('Connection: close\r\nContent-Length: 5\r\n', 'hello'),
    expect: { seen: [req('POST', '/', 'hello')], statuses: [200], closed: true },
  },
  {
    name: 'HTTP/1.0 without keep-alive ends the pipeline',
    bytes: 'POST / HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello',
    expect: { seen: [req('POST', '/', 'hello')], statuses: [200], closed: true },
  },
  {
    name: 'Upgrade answered normally: the connection stays HTTP and the next request is read',
    bytes: 'GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
    expect: ok(req('GET', '/ws')),
  },
  {
    name: 'two chunked requests back to back',
    bytes: chunked(CHUNKED_HELLO) + chunked('3\r\nabc\r\n0\r\n\r\n'),
    expect: ok(req('POST', '/', 'hello'), req('POST', '/', 'abc')),
  },
  {
    name: 'a good request, then CL.TE: the first is served, the second refused',
    bytes: post('Content-Length: 5\r\n', 'hello') + post('Content-Length: 6\r\nTransfer-Encoding: chunked\r\n', '0\r\n\r\nG'),
    expect: okThen(400, req('POST', '/', 'hello')),
  },
];

// ------------------------------------------------------------------ the run

async function runVector(v: Vector, pieceSize: number): Promise<void> {
  const bytes = Buffer.concat([
    Buffer.from(typeof v.bytes === 'string' ? v.bytes : v.bytes.toString('latin1'), 'latin1'),
    Buffer.from(v.follow === false ? '' : FOLLOW, 'latin1'),
  ]);
  const e = v.expect;
  const want = 'error' in e ? 1 : 'seen' in e ? e.statuses.length : 0;
  const mustClose = 'error' in e || 'refusedOrDropped' in e || ('seen' in e && e.closed);
  // Responses to HEAD have no body whatever their headers say.
  const headRequests = ('seen' in e ? e.seen : []).flatMap((s, i) => (s.method === 'HEAD' ? [i] : []));
  const res = await exchange(bytes, mustClose ? 0 : want, mustClose ? 6000 : 5000, 200, headRequests, pieceSize);
  await sleep(20); // a late request would be recorded by now
  const seen = seenByPort.get(res.port) ?? [];
  seenByPort.delete(res.port);
  const responses = finals(parseResponses(res.data, { headRequests }));
  const statuses = responses.map((r) => r.status);
  const wire = res.data.toString('latin1');

  // Never a smuggled request the framing does not put there.
  const expectedSeen = 'seen' in e ? e.seen : [];
  const smuggled = (list: Seen[]) => list.filter((s) => s.uri.includes('smuggled')).length;
  expect(smuggled(seen), `app saw /smuggled: ${JSON.stringify(seen)}`).toBe(smuggled(expectedSeen));

  if ('error' in e) {
    expect(statuses, wire).toEqual([e.error]);
    expect(responses[0].headers.connection).toBe('close');
    expect(res.closed).toBe(true);
    expect(seen).toEqual([]);
  } else if ('refusedOrDropped' in e) {
    expect(seen).toEqual([]);
    expect(res.closed).toBe(true);
    for (const s of statuses) expect(s).toBeGreaterThanOrEqual(400);
    expect(statuses.length).toBeLessThanOrEqual(1);
  } else {
    expect(seen).toEqual(e.seen);
    expect(statuses, wire).toEqual(e.statuses);
    expect(res.closed).toBe(e.closed);
    if (e.closed && statuses.length && statuses[statuses.length - 1] >= 400) {
      expect(responses[responses.length - 1].headers.connection).toBe('close');
    }
  }
}

describe('request smuggling vectors', () => {
  it(`has at least 80 vectors (${vectors.length})`, () => {
    expect(vectors.length).toBeGreaterThanOrEqual(80);
    expect(new Set(vectors.map((v) => v.name)).size).toBe(vectors.length);
  });

  for (const v of vectors) it(v.name, () => runVector(v, 0));
});

// The verdict must not depend on how the bytes are split into reads (the
// parser resumes partial heads, the chunked decoder is a state machine).
describe('request smuggling vectors, sent 3 bytes at a time', () => {
  for (const v of vectors) it(v.name, () => runVector(v, 3));
});

describe('after the vectors', () => {
  it('still answers a normal request', async () => {
    const res = await exchange(Buffer.from('GET /alive HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'), 0, 3000);
    expect(finals(parseResponses(res.data)).map((r) => r.status)).toEqual([200]);
    expect(res.closed).toBe(true);
  });

  it('released every connection: descriptors back to baseline', async () => {
    await waitFor(() => server.engine.stats().connections === 0, 5000, 'all connections closed');
    await waitFor(() => server.engine.stats().requests === 0, 5000, 'all requests released');
    await waitFor(() => openFdCount() <= baselineFds + 1, 5000, `fds back to baseline (${openFdCount()} vs ${baselineFds})`);
  });
});
