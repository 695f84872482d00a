#!/usr/bin/env node
// Writes the fuzzers' seed corpora, generated from the test suite's own
// vectors so there are no hand-maintained copies:
//   - every request of the llhttp corpus (test/fixtures/llhttp-requests.json,
//     or $LLHTTP_CORPUS, or /work/shared/conformance/), as sent and, for
//     HTTP/1.1 requests without Host, with "Host: example.test" inserted
//     after the request line (so the seed gets past our 400 and into the
//     rest of the parser);
//   - every vector of test/smuggling.test.ts (its `vectors` section is
//     transpiled with the project's TypeScript and evaluated; the harmless
//     follow-up request is appended as the test does);
//   - for fuzz_chunked, the body part (after the first CRLFCRLF) of every
//     such input whose head says chunked;
//   - for fuzz_proxy, PROXY v1/v2 headers built below (v2 with addresses,
//     LOCAL, UNIX, TLVs), each followed by a request.
//
//   node test/fuzz/gen_seeds.js <outdir>     -> <outdir>/{request,chunked,proxy}/<name>
//
// Seed layouts follow the harnesses: fuzz_request takes one control byte
// first (the split position, and small limits when >= 0x80), fuzz_chunked
// two (the piece-size generator's seed).
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const vm = require('vm');

const root = path.resolve(__dirname, '..', '..');
const outDir = process.argv[2];
if (!outDir) {
  console.error('usage: gen_seeds.js <outdir>');
  process.exit(2);
}

// ------------------------------------------------------------------ sources

function llhttpInputs() {
  const candidates = [process.env.LLHTTP_CORPUS, path.join(root, 'test/fixtures/llhttp-requests.json'), '/work/shared/conformance/llhttp-requests.json'];
  const file = candidates.find((p) => p && fs.existsSync(p));
  if (!file) {
    console.warn('gen_seeds: llhttp corpus not found; no llhttp seeds');
    return [];
  }
  const corpus = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (corpus.format !== 'llhttp-request-corpus/1') throw new Error(`unexpected corpus format ${corpus.format}`);
  const out = [];
  for (const r of corpus.records) {
    const raw = Buffer.from(r.raw, 'base64');
    out.push({ name: `llhttp-${r.id}`, bytes: raw });
    // Host after every HTTP/1.1 request line of a head that has none.
    const s = raw.toString('latin1');
    const withHost = s.replace(/([^\r\n]* HTTP\/1\.1\r\n)((?:(?!\r\n\r\n)[\s\S])*)/g, (all, line, rest) =>
      /(^|\n)host[ \t]*:/i.test(rest) ? all : `${line}Host: example.test\r\n${rest}`,
    );
    if (withHost !== s) out.push({ name: `llhttp-${r.id}+host`, bytes: Buffer.from(withHost, 'latin1') });
  }
  return out;
}

// The smuggling suite keeps its vectors in the section between the
// "vectors" and "the run" rulers; that section only uses helpers it defines.
function smugglingInputs() {
  const file = path.join(root, 'test/smuggling.test.ts');
  if (!fs.existsSync(file)) {
    console.warn('gen_seeds: test/smuggling.test.ts not found; no smuggling seeds');
    return [];
  }
  const src = fs.readFileSync(file, 'utf8');
  const start = src.search(/^\/\/ -+ vectors\s*$/m);
  const end = src.search(/^\/\/ -+ the run\s*$/m);
  if (start < 0 || end < start) {
    console.warn('gen_seeds: could not find the vectors section of test/smuggling.test.ts; no smuggling seeds');
    return [];
  }
  let ts;
  try {
    ts = require(path.join(root, 'node_modules/typescript'));
  } catch {
    console.warn('gen_seeds: typescript not installed (npm ci); no smuggling seeds');
    return [];
  }
  const section = src.slice(start, end) + '\n;__out.vectors = vectors; __out.FOLLOW = typeof FOLLOW === "string" ? FOLLOW : "";\n';
  const js = ts.transpileModule(section, { compilerOptions: { target: ts.ScriptTarget.ES2020, module: ts.ModuleKind.None } }).outputText;
  const sandbox = { __out: {}, Buffer };
  vm.runInNewContext(js, sandbox, { filename: 'smuggling-vectors.js' });
  const { vectors, FOLLOW } = sandbox.__out;
  if (!Array.isArray(vectors)) throw new Error('smuggling vectors section did not define an array `vectors`');
  return vectors.map((v) => {
    const bytes = typeof v.bytes === 'string' ? Buffer.from(v.bytes, 'latin1') : Buffer.from(v.bytes);
    return { name: `smuggling-${v.name}`, bytes: Buffer.concat([bytes, Buffer.from(v.follow === false ? '' : FOLLOW, 'latin1')]) };
  });
}

function proxyInputs() {
  const req = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n', 'latin1');
  const v2sig = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
  const v2 = (verCmd, famProto, body) => {
    const len = Buffer.alloc(2);
    len.writeUInt16BE(body.length);
    return Buffer.concat([v2sig, Buffer.from([verCmd, famProto]), len, body]);
  };
  const port = (p) => {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(p);
    return b;
  };
  const ip4 = (s) => Buffer.from(s.split('.').map(Number));
  const ip6 = (words) => Buffer.concat(words.map(port));
  const tlv = (type, value) => Buffer.concat([Buffer.from([type]), port(value.length), value]);
  const inet = Buffer.concat([ip4('192.0.2.1'), ip4('198.51.100.2'), port(56324), port(443)]);
  const inet6 = Buffer.concat([ip6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]), ip6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 2]), port(4242), port(80)]);
  const unix = Buffer.alloc(216);
  unix.write('/run/src.sock', 0, 'latin1');
  unix.write('/run/dst.sock', 108, 'latin1');
  const tlvs = Buffer.concat([
    tlv(0x01, Buffer.from('h2')), // ALPN
    tlv(0x02, Buffer.from('example.test')), // authority
    tlv(0x05, Buffer.from('unique-id')), // UNIQUE_ID
    tlv(0xea, Buffer.from([0x01, ...Buffer.from('vpce-0123456789abcdef')])), // AWS VPC endpoint id
    tlv(0x04, Buffer.alloc(4)), // NOOP
  ]);
  const v1 = (line) => Buffer.from(line, 'latin1');
  const seeds = {
    'v1-tcp4': v1('PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n'),
    'v1-tcp6': v1('PROXY TCP6 2001:db8::1 2001:db8::2 4242 80\r\n'),
    'v1-tcp6-max': v1('PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n'),
    'v1-unknown': v1('PROXY UNKNOWN\r\n'),
    'v1-unknown-addresses': v1('PROXY UNKNOWN ffff:f::1 ffff:f::2 1 2\r\n'),
    'v1-bad-port': v1('PROXY TCP4 192.0.2.1 198.51.100.2 056324 443\r\n'),
    'v2-tcp4': v2(0x21, 0x11, inet),
    'v2-udp4': v2(0x21, 0x12, inet),
    'v2-tcp6': v2(0x21, 0x21, inet6),
    'v2-tcp4-tlvs': v2(0x21, 0x11, Buffer.concat([inet, tlvs])),
    'v2-tcp6-tlvs': v2(0x21, 0x21, Buffer.concat([inet6, tlvs])),
    'v2-unix': v2(0x21, 0x31, unix),
    'v2-local': v2(0x20, 0x00, Buffer.alloc(0)),
    'v2-local-tlvs': v2(0x20, 0x00, tlvs),
    'v2-unspec': v2(0x21, 0x00, Buffer.alloc(0)),
    'v2-short-address': v2(0x21, 0x11, inet.subarray(0, 8)),
  };
  return Object.entries(seeds).map(([name, h]) => ({ name: `proxy-${name}`, bytes: Buffer.concat([h, req]) }));
}

// ------------------------------------------------------------------ output

const MAX_LEN = 8192;
function safeName(s) {
  const base = s.replace(/[^A-Za-z0-9._+-]+/g, '_').slice(0, 80);
  return `${base}-${crypto.createHash('sha1').update(s).digest('hex').slice(0, 8)}`;
}
function writeSeeds(dir, seeds) {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const seen = new Set();
  let n = 0;
  for (const { name, bytes } of seeds) {
    if (bytes.length > MAX_LEN) continue;
    const key = bytes.toString('latin1');
    if (seen.has(key)) continue;
    seen.add(key);
    fs.writeFileSync(path.join(dir, safeName(name)), bytes);
    n++;
  }
  return n;
}

const http = [...llhttpInputs(), ...smugglingInputs()];

// fuzz_request: control byte + input. Each input twice: cut inside the head
// with default limits (control < 0x80), and small limits (control >= 0x80).
const requestSeeds = [];
for (const { name, bytes } of http) {
  const head = bytes.indexOf('\r\n\r\n');
  const cut = head > 0 ? Math.min(0x7f, Math.max(1, head >> 1)) : 0x20;
  requestSeeds.push({ name, bytes: Buffer.concat([Buffer.from([cut]), bytes]) });
  requestSeeds.push({ name: `${name}+small-limits`, bytes: Buffer.concat([Buffer.from([0x80 | cut]), bytes]) });
}

// fuzz_chunked: two seed bytes + the body after a chunked head.
const chunkedSeeds = [];
for (const { name, bytes } of http) {
  const head = bytes.indexOf('\r\n\r\n');
  if (head < 0 || !/chunked/i.test(bytes.subarray(0, head).toString('latin1'))) continue;
  const body = bytes.subarray(head + 4);
  chunkedSeeds.push({ name, bytes: Buffer.concat([Buffer.from([0x00, body.length & 0xff]), body]) });
}
for (const [name, body] of Object.entries({
  simple: '5\r\nhello\r\n0\r\n\r\n',
  'two-chunks-trailers': '3\r\nabc\r\nA;ext=1;q="a\\"b"\r\n0123456789\r\n0\r\nX-Trailer: v\r\nY: \r\n\r\n',
  'max-size': 'fffffffffffffff\r\n',
  'leading-zeros': '00000000000000000000005\r\nhello\r\n000\r\n\r\nGET / HTTP/1.1\r\n',
})) {
  chunkedSeeds.push({ name: `chunked-${name}`, bytes: Buffer.concat([Buffer.from([0x01, 0x07]), Buffer.from(body, 'latin1')]) });
}

const counts = {
  request: writeSeeds(path.join(outDir, 'request'), requestSeeds),
  chunked: writeSeeds(path.join(outDir, 'chunked'), chunkedSeeds),
  proxy: writeSeeds(path.join(outDir, 'proxy'), proxyInputs()),
};
console.log(`gen_seeds: ${http.length} HTTP inputs -> request ${counts.request}, chunked ${counts.chunked}, proxy ${counts.proxy} seeds in ${outDir}`);
