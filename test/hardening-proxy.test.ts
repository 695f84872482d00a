// PROXY protocol v1 and v2 on a `proxyProtocol: true` listener: the client
// address the app sees comes from the header; a malformed, truncated or
// missing header closes the connection with no HTTP response; the header
// deadline covers waiting for it; a plain listener treats "PROXY ..." as a
// bad request (400).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Feersum, type FeersumRequest } from '../lib/index';
import { openFdCount, parseResponses, rawClient, sleep, waitFor } from './helpers';

interface Seen {
  uri: string;
  addr: string;
  port: number;
  envAddr: string;
  envPort: string;
}

let engine: Feersum;
let proxyPort = 0;
let plainPort = 0;
let baselineFds = 0;
const seen: Seen[] = [];

beforeAll(async () => {
  baselineFds = openFdCount();
  engine = new Feersum({ headerTimeout: 1, keepaliveTimeout: 10 });
  engine.onError(() => {});
  engine.requestHandler((req: FeersumRequest) => {
    const env = req.env();
    seen.push({ uri: req.uri, addr: req.remoteAddress, port: req.remotePort, envAddr: env.REMOTE_ADDR, envPort: env.REMOTE_PORT });
    req.sendResponse(200, ['Content-Type', 'text/plain'], `${env.REMOTE_ADDR} ${env.REMOTE_PORT}`);
  });
  proxyPort = (await engine.listen({ host: '127.0.0.1', port: 0, proxyProtocol: true })).port;
  plainPort = (await engine.listen({ host: '127.0.0.1', port: 0 })).port;
});

let shutDown = false;
afterAll(async () => {
  if (!shutDown) await engine.gracefulShutdown();
});

// ---------------------------------------------------------------- headers

const SIG = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/** A v2 header: version/command byte, family/protocol byte, then the address block and TLVs. */
function v2(verCmd: number, famProto: number, body: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(body.length);
  return Buffer.concat([SIG, Buffer.from([verCmd, famProto]), len, body]);
}

function inet(src: string, dst: string, sport: number, dport: number): Buffer {
  const b = Buffer.alloc(12);
  src.split('.').forEach((o, i) => (b[i] = Number(o)));
  dst.split('.').forEach((o, i) => (b[4 + i] = Number(o)));
  b.writeUInt16BE(sport, 8);
  b.writeUInt16BE(dport, 10);
  return b;
}

function ipv6Bytes(addr: string): Buffer {
  // Enough for the fully written-out addresses used here.
  const [head, tail] = addr.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail ? tail.split(':') : [];
  const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
  return b;
}

function inet6(src: string, dst: string, sport: number, dport: number): Buffer {
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(sport, 0);
  ports.writeUInt16BE(dport, 2);
  return Buffer.concat([ipv6Bytes(src), ipv6Bytes(dst), ports]);
}

function tlv(type: number, value: Buffer | string): Buffer {
  const v = Buffer.from(value);
  const h = Buffer.alloc(3);
  h[0] = type;
  h.writeUInt16BE(v.length, 1);
  return Buffer.concat([h, v]);
}

const GET = (uri: string) => `GET ${uri} HTTP/1.1\r\nHost: x\r\n\r\n`;

/** Sends `pieces` (with `gapMs` between them) on a new connection to the PROXY listener. */
async function send(pieces: Array<string | Buffer>, gapMs = 0, port = proxyPort) {
  const c = rawClient(port);
  await c.connected;
  for (const p of pieces) {
    c.send(p);
    if (gapMs) await sleep(gapMs);
  }
  return c;
}

/** The request is served and the app saw `addr`:`port` as the client. */
async function expectServedAs(pieces: Array<string | Buffer>, uri: string, addr: string | null, port: number | null, gapMs = 0) {
  const before = seen.length;
  const c = await send(pieces, gapMs);
  const [r] = await c.responses(1);
  expect(r.status).toBe(200);
  expect(seen.length).toBe(before + 1);
  const s = seen[seen.length - 1];
  expect(s.uri).toBe(uri);
  // null: the connection's own address stands (UNKNOWN, LOCAL, UNSPEC).
  const wantAddr = addr ?? '127.0.0.1';
  const wantPort = port ?? c.localPort;
  expect(s).toEqual({ uri, addr: wantAddr, port: wantPort, envAddr: wantAddr, envPort: String(wantPort) });
  expect(r.body.toString()).toBe(`${wantAddr} ${wantPort}`);
  c.sock.destroy();
}

/** The connection is closed with no HTTP response and the app saw nothing. */
async function expectDropped(pieces: Array<string | Buffer>, opts: { gapMs?: number; minMs?: number; maxMs?: number; port?: number } = {}) {
  const before = seen.length;
  const c = await send(pieces, opts.gapMs ?? 0, opts.port ?? proxyPort);
  await c.waitClosed(4000);
  expect(c.data.toString('latin1')).toBe('');
  expect(seen.length).toBe(before);
  const elapsed = c.closedAt - c.connectedAt;
  if (opts.minMs !== undefined) expect(elapsed).toBeGreaterThanOrEqual(opts.minMs);
  expect(elapsed).toBeLessThan(opts.maxMs ?? 600);
}

// ---------------------------------------------------------------- v1

describe('PROXY v1', () => {
  it('TCP4: REMOTE_ADDR / REMOTE_PORT come from the header', () =>
    expectServedAs(['PROXY TCP4 1.2.3.4 5.6.7.8 1111 80\r\n' + GET('/v1-tcp4')], '/v1-tcp4', '1.2.3.4', 1111));

  it('TCP6', () =>
    expectServedAs(['PROXY TCP6 2001:db8::1 2001:db8::2 2222 443\r\n' + GET('/v1-tcp6')], '/v1-tcp6', '2001:db8::1', 2222));

  it('TCP6 with an IPv4-mapped address', () =>
    expectServedAs(['PROXY TCP6 ::ffff:10.0.0.1 ::1 3333 80\r\n' + GET('/v1-mapped')], '/v1-mapped', '::ffff:10.0.0.1', 3333));

  it('UNKNOWN: the connection’s own address stands', () => expectServedAs(['PROXY UNKNOWN\r\n' + GET('/v1-unknown')], '/v1-unknown', null, null));

  it('UNKNOWN with addresses after it (ignored, as the spec allows)', () =>
    expectServedAs(['PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n' + GET('/v1-unknown2')], '/v1-unknown2', null, null));

  it('port 0 and 65535 are valid', async () => {
    await expectServedAs(['PROXY TCP4 9.9.9.9 8.8.8.8 65535 0\r\n' + GET('/v1-ports')], '/v1-ports', '9.9.9.9', 65535);
    await expectServedAs(['PROXY TCP4 9.9.9.9 8.8.8.8 0 1\r\n' + GET('/v1-port0')], '/v1-port0', '9.9.9.9', 0);
  });

  it('the header in a separate write from the request', () =>
    expectServedAs(['PROXY TCP4 1.2.3.4 5.6.7.8 1111 80\r\n', GET('/v1-sep')], '/v1-sep', '1.2.3.4', 1111, 30));

  it('the header and request byte by byte', () => {
    const all = 'PROXY TCP4 10.1.2.3 5.6.7.8 4444 80\r\n' + GET('/v1-bytes');
    return expectServedAs([...all], '/v1-bytes', '10.1.2.3', 4444, 2);
  });

  it('keep-alive after the header: every request on the connection has the header’s address', async () => {
    const before = seen.length;
    const c = await send(['PROXY TCP4 1.2.3.4 5.6.7.8 1111 80\r\n' + GET('/ka1')]);
    await c.responses(1);
    c.send(GET('/ka2'));
    await c.responses(2);
    c.send(GET('/ka3') + GET('/ka4')); // pipelined too
    const rs = await c.responses(4);
    expect(rs.map((r) => r.body.toString())).toEqual(Array(4).fill('1.2.3.4 1111'));
    expect(seen.slice(before).map((s) => `${s.uri} ${s.envAddr}:${s.envPort}`)).toEqual([
      '/ka1 1.2.3.4:1111',
      '/ka2 1.2.3.4:1111',
      '/ka3 1.2.3.4:1111',
      '/ka4 1.2.3.4:1111',
    ]);
    expect(c.closed).toBe(false);
    c.sock.destroy();
  });

  it('a second PROXY header on the same connection is HTTP, and bad: 400', async () => {
    const before = seen.length;
    const c = await send(['PROXY TCP4 1.2.3.4 5.6.7.8 1111 80\r\n' + GET('/first') + 'PROXY TCP4 6.6.6.6 5.6.7.8 6666 80\r\n' + GET('/second')]);
    await c.waitClosed();
    expect(parseResponses(c.data).map((r) => r.status)).toEqual([200, 400]);
    expect(seen.slice(before).map((s) => s.uri)).toEqual(['/first']);
  });

  it('a bad HTTP request after a good header gets the usual 400', async () => {
    const c = await send(['PROXY TCP4 1.2.3.4 5.6.7.8 1111 80\r\nGET / HTTP/1.1\r\n\r\n']);
    await c.waitClosed();
    expect(parseResponses(c.data).map((r) => r.status)).toEqual([400]);
  });

  const malformed: Array<[string, string]> = [
    ['lowercase signature', 'proxy TCP4 1.2.3.4 5.6.7.8 1111 80\r\n'],
    ['no space after PROXY', 'PROXYTCP4 1.2.3.4 5.6.7.8 1111 80\r\n'],
    ['two spaces after PROXY', 'PROXY  TCP4 1.2.3.4 5.6.7.8 1111 80\r\n'],
    ['unknown protocol TCP5', 'PROXY TCP5 1.2.3.4 5.6.7.8 1111 80\r\n'],
    ['lowercase protocol', 'PROXY tcp4 1.2.3.4 5.6.7.8 1111 80\r\n'],
    ['invalid IPv4 octet', 'PROXY TCP4 1.2.3.999 5.6.7.8 1111 80\r\n'],
    ['IPv4 with three octets', 'PROXY TCP4 1.2.3 5.6.7.8 1111 80\r\n'],
    ['IPv6 address on TCP4', 'PROXY TCP4 ::1 5.6.7.8 1111 80\r\n'],
    ['IPv4 address on TCP6', 'PROXY TCP6 1.2.3.4 ::1 1111 80\r\n'],
    ['invalid destination address', 'PROXY TCP4 1.2.3.4 nowhere 1111 80\r\n'],
    ['port 65536', 'PROXY TCP4 1.2.3.4 5.6.7.8 65536 80\r\n'],
    ['port with a leading zero', 'PROXY TCP4 1.2.3.4 5.6.7.8 01111 80\r\n'],
    ['negative port', 'PROXY TCP4 1.2.3.4 5.6.7.8 -1 80\r\n'],
    ['non-numeric port', 'PROXY TCP4 1.2.3.4 5.6.7.8 abc 80\r\n'],
    ['missing destination port', 'PROXY TCP4 1.2.3.4 5.6.7.8 1111\r\n'],
    ['extra field', 'PROXY TCP4 1.2.3.4 5.6.7.8 1111 80 extra\r\n'],
    ['trailing space', 'PROXY TCP4 1.2.3.4 5.6.7.8 1111 80 \r\n'],
    ['tab separator', 'PROXY TCP4\t1.2.3.4 5.6.7.8 1111 80\r\n'],
    ['bare LF', 'PROXY TCP4 1.2.3.4 5.6.7.8 1111 80\n'],
    ['bare CR', 'PROXY TCP4 1.2.3.4 5.6.7.8 1111 80\rX'],
    ['NUL in the line', 'PROXY TCP4 1.2.3.4\0 5.6.7.8 1111 80\r\n'],
    ['NUL then garbage inside an address', 'PROXY TCP4 1.2.3.4 5.6.7.8\0garbage 1111 80\r\n'],
    ['empty after PROXY', 'PROXY \r\n'],
    ['longer than 107 bytes', 'PROXY UNKNOWN ' + 'x'.repeat(100) + '\r\n'],
  ];
  for (const [name, header] of malformed) {
    it(`malformed (${name}): closed without a response`, () => expectDropped([header + GET('/bad')]));
  }

  it('longer than 107 bytes without a line end is refused as soon as it is too long, not at the timeout', () =>
    expectDropped(['PROXY TCP4 ' + '1'.repeat(120)]));
});

// ---------------------------------------------------------------- v2

describe('PROXY v2', () => {
  it('PROXY, AF_INET', () =>
    expectServedAs([Buffer.concat([v2(0x21, 0x11, inet('192.0.2.7', '198.51.100.1', 5555, 443)), Buffer.from(GET('/v2-inet'))])], '/v2-inet', '192.0.2.7', 5555));

  it('PROXY, AF_INET over UDP (the address is still the client’s)', () =>
    expectServedAs([Buffer.concat([v2(0x21, 0x12, inet('192.0.2.8', '198.51.100.1', 5556, 443)), Buffer.from(GET('/v2-udp'))])], '/v2-udp', '192.0.2.8', 5556));

  it('PROXY, AF_INET6', () =>
    expectServedAs(
      [Buffer.concat([v2(0x21, 0x21, inet6('2001:db8::7', '2001:db8::8', 6666, 443)), Buffer.from(GET('/v2-inet6'))])],
      '/v2-inet6',
      '2001:db8::7',
      6666,
    ));

  it('PROXY, AF_INET with TLVs (skipped)', () => {
    const body = Buffer.concat([
      inet('203.0.113.9', '198.51.100.1', 7777, 443),
      tlv(0x01, 'h2'), // ALPN
      tlv(0x02, 'example.com'), // authority
      tlv(0x04, Buffer.alloc(10)), // NOOP
      tlv(0xea, Buffer.from('vpce-0123456789abcdef0')), // AWS VPC endpoint id
    ]);
    return expectServedAs([Buffer.concat([v2(0x21, 0x11, body), Buffer.from(GET('/v2-tlv'))])], '/v2-tlv', '203.0.113.9', 7777);
  });

  it('PROXY, AF_INET6 with TLVs', () => {
    const body = Buffer.concat([inet6('2001:db8::9', '2001:db8::1', 8888, 443), tlv(0x05, 'unique-id-123')]);
    return expectServedAs([Buffer.concat([v2(0x21, 0x21, body), Buffer.from(GET('/v2-tlv6'))])], '/v2-tlv6', '2001:db8::9', 8888);
  });

  it('LOCAL (a health check from the balancer): own address', () =>
    expectServedAs([Buffer.concat([v2(0x20, 0x00, Buffer.alloc(0)), Buffer.from(GET('/v2-local'))])], '/v2-local', null, null));

  it('LOCAL with an address block: the block is ignored', () =>
    expectServedAs([Buffer.concat([v2(0x20, 0x11, inet('6.6.6.6', '7.7.7.7', 6666, 80)), Buffer.from(GET('/v2-local-addr'))])], '/v2-local-addr', null, null));

  it('PROXY with AF_UNSPEC: own address', () =>
    expectServedAs([Buffer.concat([v2(0x21, 0x00, Buffer.alloc(0)), Buffer.from(GET('/v2-unspec'))])], '/v2-unspec', null, null));

  it('PROXY with AF_UNSPEC and TLVs', () =>
    expectServedAs([Buffer.concat([v2(0x21, 0x00, tlv(0x04, 'pad')), Buffer.from(GET('/v2-unspec-tlv'))])], '/v2-unspec-tlv', null, null));

  it('PROXY with AF_UNIX: own address', () =>
    expectServedAs([Buffer.concat([v2(0x21, 0x31, Buffer.alloc(216)), Buffer.from(GET('/v2-unix'))])], '/v2-unix', null, null));

  it('the header byte by byte', () => {
    const all = Buffer.concat([v2(0x21, 0x11, Buffer.concat([inet('192.0.2.50', '198.51.100.1', 5050, 443), tlv(0x04, 'xx')])), Buffer.from(GET('/v2-bytes'))]);
    return expectServedAs([...all].map((b) => Buffer.from([b])), '/v2-bytes', '192.0.2.50', 5050, 2);
  });

  it('the header split at every boundary (signature, fixed part, addresses, TLVs)', async () => {
    const hdr = v2(0x21, 0x11, Buffer.concat([inet('192.0.2.51', '198.51.100.1', 5151, 443), tlv(0x04, 'abc')]));
    for (const cut of [5, 12, 13, 14, 15, 16, 20, 28, 30, hdr.length - 1]) {
      await expectServedAs([hdr.subarray(0, cut), Buffer.concat([hdr.subarray(cut), Buffer.from(GET(`/v2-cut${cut}`))])], `/v2-cut${cut}`, '192.0.2.51', 5151, 20);
    }
  });

  it('keep-alive after the header', async () => {
    const before = seen.length;
    const c = await send([Buffer.concat([v2(0x21, 0x11, inet('192.0.2.99', '198.51.100.1', 9999, 443)), Buffer.from(GET('/k1') + GET('/k2'))])]);
    await c.responses(2);
    c.send(GET('/k3'));
    await c.responses(3);
    expect(seen.slice(before).map((s) => `${s.uri} ${s.addr}:${s.port}`)).toEqual(['/k1 192.0.2.99:9999', '/k2 192.0.2.99:9999', '/k3 192.0.2.99:9999']);
    c.sock.destroy();
  });

  const bad = (name: string, header: Buffer) =>
    it(`malformed (${name}): closed without a response`, () => expectDropped([Buffer.concat([header, Buffer.from(GET('/bad'))])]));

  const good = v2(0x21, 0x11, inet('192.0.2.7', '198.51.100.1', 5555, 443));
  const flip = (i: number, v: number) => {
    const b = Buffer.from(good);
    b[i] = v;
    return b;
  };
  bad('bad signature, first byte', flip(0, 0x0e));
  bad('bad signature, last byte', flip(11, 0x0b));
  bad('bad signature, QUIT lowercase', flip(8, 0x75));
  bad('version 1 in the binary form', flip(12, 0x11));
  bad('version 3', flip(12, 0x31));
  bad('unknown command 2', flip(12, 0x22));
  bad('unknown command 0xF', flip(12, 0x2f));
  bad('unknown family 4', flip(13, 0x41));
  bad('AF_INET with a 4-byte address block', v2(0x21, 0x11, Buffer.alloc(4)));
  bad('AF_INET6 with an AF_INET-sized block', v2(0x21, 0x21, inet('1.2.3.4', '5.6.7.8', 1, 2)));
  bad('length beyond the 4 KiB cap', v2(0x21, 0x11, Buffer.concat([inet('1.2.3.4', '5.6.7.8', 1, 2), Buffer.alloc(5000)])));

  it('length field larger than the data: waits, then closes silently at headerTimeout', async () => {
    const hdr = Buffer.from(good);
    hdr.writeUInt16BE(200, 14); // claims 200 bytes, 12 follow
    await expectDropped([Buffer.concat([hdr, Buffer.from(GET('/short'))])], { minMs: 900, maxMs: 2500 });
  });
});

// ---------------------------------------------------------------- missing, truncated, slow

describe('missing or slow PROXY header', () => {
  it('a plain HTTP request on a PROXY listener: closed without a response', () => expectDropped([GET('/plain')]));

  it('a plain HTTP request starting with P on a PROXY listener (POST): closed without a response', () =>
    expectDropped(['POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n']));

  it('nothing sent: closed silently at headerTimeout', () => expectDropped([], { minMs: 900, maxMs: 2500 }));

  it('truncated v1 header: closed silently at headerTimeout (no 408)', () =>
    expectDropped(['PROXY TCP4 1.2.3.4 5.6'], { minMs: 900, maxMs: 2500 }));

  it('truncated v2 header (signature only): closed silently at headerTimeout', () =>
    expectDropped([SIG.subarray(0, 12)], { minMs: 900, maxMs: 2500 }));

  it('truncated v2 header (half the address block): closed silently at headerTimeout', () =>
    expectDropped([good2().subarray(0, 20)], { minMs: 900, maxMs: 2500 }));

  it('a v1 header trickled slower than headerTimeout allows: the deadline covers it', () =>
    expectDropped([...'PROXY TCP4 1.2.3.4 5.6.7.8 1111 80\r\n'], { gapMs: 60, minMs: 900, maxMs: 2600 }));

  it('after the header, the HTTP head has the rest of the deadline: a partial head gets 408', async () => {
    const c = await send(['PROXY TCP4 1.2.3.4 5.6.7.8 1111 80\r\nGET / HTTP/1.1\r\nHo']);
    await c.waitClosed(4000);
    expect(parseResponses(c.data).map((r) => r.status)).toEqual([408]);
    expect(c.closedAt - c.connectedAt).toBeLessThan(2500);
  });
});

function good2(): Buffer {
  return v2(0x21, 0x11, inet('192.0.2.7', '198.51.100.1', 5555, 443));
}

// ---------------------------------------------------------------- plain listener

describe('a plain listener', () => {
  it('answers "PROXY TCP4 ..." with 400 and a close', async () => {
    const before = seen.length;
    const c = await send(['PROXY TCP4 1.2.3.4 5.6.7.8 1111 80\r\n' + GET('/after-proxy')], 0, plainPort);
    await c.waitClosed();
    const rs = parseResponses(c.data);
    expect(rs.map((r) => r.status)).toEqual([400]);
    expect(rs[0].headers.connection).toBe('close');
    expect(seen.length).toBe(before);
  });

  it('answers a v2 signature with 400 and a close', async () => {
    const before = seen.length;
    const c = await send([Buffer.concat([good2(), Buffer.from(GET('/after-v2'))])], 0, plainPort);
    await c.waitClosed();
    expect(parseResponses(c.data).map((r) => r.status)).toEqual([400]);
    expect(seen.length).toBe(before);
  });

  it('serves plain requests with the real peer address', async () => {
    const c = await send([GET('/plain-ok')], 0, plainPort);
    const [r] = await c.responses(1);
    expect(r.body.toString()).toBe(`127.0.0.1 ${c.localPort}`);
    c.sock.destroy();
  });
});

// ---------------------------------------------------------------- afterwards

describe('afterwards', () => {
  it('still answers on both listeners', async () => {
    await expectServedAs(['PROXY TCP4 1.2.3.4 5.6.7.8 1111 80\r\n' + GET('/alive')], '/alive', '1.2.3.4', 1111);
    const c = await send([GET('/alive-plain')], 0, plainPort);
    expect((await c.responses(1))[0].status).toBe(200);
    c.sock.destroy();
  });

  it('every connection released: descriptors back to baseline (plus the two listeners)', async () => {
    await waitFor(() => engine.stats().connections === 0, 5000, 'all connections closed');
    await waitFor(() => openFdCount() <= baselineFds + 2, 5000, `fds back to baseline (${openFdCount()} vs ${baselineFds} + 2)`);
    await engine.gracefulShutdown();
    shutDown = true;
    await waitFor(() => openFdCount() <= baselineFds, 5000, `fds back to baseline after shutdown (${openFdCount()} vs ${baselineFds})`);
  });
});
