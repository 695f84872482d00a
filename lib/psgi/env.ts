// The PSGI environment of a request: a plain object (kept in V8's fast
// mode: one literal, then the HTTP_* keys), with every key an own data
// property, so Object.keys, for..in and spreads see them all. The two
// values that are costly or have side effects, psgi.input and psgix.io,
// are stand-ins that make the real object on first use (stand-in.ts).
import { Readable, type Writable } from 'node:stream';

import { FLAG_HTTP11 } from '../native';
import type { FeersumRequest } from '../request';
import { socketStandIn } from './raw-socket';
import { standIn, targetClass } from './stand-in';

export interface PsgiEnv {
  REQUEST_METHOD: string;
  SCRIPT_NAME: string;
  PATH_INFO: string;
  REQUEST_URI: string;
  QUERY_STRING: string;
  SERVER_NAME: string;
  SERVER_PORT: string;
  SERVER_PROTOCOL: string;
  CONTENT_LENGTH?: string;
  CONTENT_TYPE?: string;
  REMOTE_ADDR: string;
  REMOTE_PORT: string;
  'psgi.version': [number, number];
  'psgi.url_scheme': string;
  'psgi.input': Readable;
  'psgi.errors': Writable;
  'psgi.multithread': boolean;
  'psgi.multiprocess': boolean;
  'psgi.run_once': boolean;
  'psgi.nonblocking': boolean;
  'psgi.streaming': boolean;
  'psgix.input.buffered': boolean;
  'psgix.output.buffered': boolean;
  'psgix.output.guard': boolean;
  /** The connection: a net.Socket on plain listeners, a TunnelSocket (a Duplex of the decrypted stream) on HTTPS ones. */
  'psgix.io': import('node:net').Socket | import('./tunnel-socket').TunnelSocket;
  'psgix.informational': (status: number, headers: Array<string | number>) => void;
  'psgix.cleanup': boolean;
  'psgix.cleanup.handlers': Array<(env: PsgiEnv) => void>;
  'psgix.harakiri'?: boolean;
  'psgix.harakiri.commit'?: boolean;
  // HTTPS listeners only, with nginx / mod_ssl names and values.
  HTTPS?: 'on';
  SSL_PROTOCOL?: string;
  SSL_CIPHER?: string;
  /** The SNI name the client asked for; absent without SNI. */
  SSL_SERVER_NAME?: string;
  /** 'SUCCESS', 'FAILED:<reason>' or 'NONE'. */
  SSL_CLIENT_VERIFY?: string;
  /** The client certificate's subject and issuer (RFC 2253), serial (hex) and PEM: only when one was presented. */
  SSL_CLIENT_S_DN?: string;
  SSL_CLIENT_I_DN?: string;
  SSL_CLIENT_SERIAL?: string;
  SSL_CLIENT_CERT?: string;
  [key: string]: unknown;
}

/** The request an env belongs to: a symbol key, so not in Object.keys, but copied by a spread (wsUpgradeRequest works on copies). */
export const REQUEST: unique symbol = Symbol('feersum.request');

// How each request header name goes into the env: its kind and its HTTP_*
// key. Both are cached by the name as received (bounded, so a client
// sending random names cannot grow the cache without limit). Names that
// give the same key ('X-A', 'x-a', X_A) share one KeySlot, whose `stamp`
// tells a repeated header without reading the env: reading a key the env
// does not have yet was the slowest step of building it (measured).
const enum HeaderKind {
  Plain = 0,
  ContentLength = 1,
  ContentType = 2,
  /** Has '_': dropped unless allowUnderscoreHeaders (X_Forwarded_For must not pose as X-Forwarded-For). */
  Underscore = 3,
  /** Content_Length, Content_Type: would pose as CONTENT_*, always dropped. */
  Never = 4,
}

interface KeySlot {
  key: string;
  /** The env build (see envStamp) that last set this key; 0 = none; -1 = not shared, look in the env. */
  stamp: number;
}

interface HeaderName {
  /** The name as received (an internalized copy). */
  name: string;
  kind: HeaderKind;
  slot: KeySlot;
}

const HEADER_CACHE_MAX = 2048;
const byName = new Map<string, HeaderName>();
const byKey = new Map<string, KeySlot>();
let envStamp = 0;

// The string V8 keeps in its string table for s: a copy that shares nothing
// with s. Cached names must not be slices of a request head (a slice keeps
// the whole head alive), and internalized keys are the cheapest to store.
function internalize(s: string): string {
  return Object.keys({ [s]: 0 })[0];
}

// A small direct-mapped cache in front of byName, indexed by length and
// two characters: a hit costs one string comparison, where Map.get first
// hashes the name (a fresh string for every request).
const RECENT_SIZE = 64;
const recentNames: string[] = new Array<string>(RECENT_SIZE).fill('');
const recentEntries: HeaderName[] = new Array<HeaderName>(RECENT_SIZE);

function headerName(name: string): HeaderName {
  const i = (name.length * 7 + name.charCodeAt(0) + name.charCodeAt(name.length - 1)) & (RECENT_SIZE - 1);
  if (recentNames[i] === name) return recentEntries[i];
  let entry = byName.get(name);
  if (entry === undefined) entry = newHeaderName(name);
  recentNames[i] = entry.name;
  recentEntries[i] = entry;
  return entry;
}

function newHeaderName(received: string): HeaderName {
  const name = internalize(received);
  const key = internalize('HTTP_' + name.toUpperCase().replace(/-/g, '_'));
  let slot = byKey.get(key);
  if (slot === undefined) {
    slot = { key, stamp: 0 };
    if (byKey.size < HEADER_CACHE_MAX) byKey.set(key, slot);
    else slot.stamp = -1; // not shared with other spellings: repeats are found in the env
  }
  const lower = name.toLowerCase();
  let kind = HeaderKind.Plain;
  if (lower === 'content-length') kind = HeaderKind.ContentLength;
  else if (lower === 'content-type') kind = HeaderKind.ContentType;
  else if (key === 'HTTP_CONTENT_LENGTH' || key === 'HTTP_CONTENT_TYPE') kind = HeaderKind.Never;
  else if (name.indexOf('_') !== -1) kind = HeaderKind.Underscore;
  const entry: HeaderName = { name, kind, slot };
  if (byName.size < HEADER_CACHE_MAX) byName.set(name, entry);
  return entry;
}

/** A new stamp for one env build (never 0; on wrap-around no entry keeps an old one). */
function nextStamp(): number {
  if (envStamp === 0x3fffffff) {
    for (const slot of byKey.values()) slot.stamp = 0;
    envStamp = 0;
  }
  return ++envStamp;
}

// psgi.input of a request whose body is buffered (or absent): a stand-in
// for the Readable, made only if the app reads it (most never do).
const inputOf = (req: FeersumRequest): Readable => req.input;
const InputTarget = targetClass(Readable.prototype);

// psgi.version, shared (frozen: it is the same for every request).
const PSGI_VERSION = Object.freeze([1, 1]) as unknown as [number, number];

// REMOTE_PORT as a string, for the last port seen: requests on one
// connection (keep-alive, pipelined) come in runs.
let lastPort = -1;
let lastPortString = '';

function portString(port: number): string {
  if (port !== lastPort) {
    lastPort = port;
    lastPortString = String(port);
  }
  return lastPortString;
}

// The TLS keys nginx and Apache's mod_ssl give applications; the client
// certificate ones only when the client presented one.
function addTlsKeys(env: Record<string | symbol, unknown>, req: FeersumRequest): void {
  const t = req.tls!;
  env.HTTPS = 'on';
  env.SSL_PROTOCOL = t.protocol;
  env.SSL_CIPHER = t.cipher;
  if (t.serverName) env.SSL_SERVER_NAME = t.serverName;
  env.SSL_CLIENT_VERIFY = t.clientVerify;
  if (t.clientCert) {
    env.SSL_CLIENT_S_DN = t.clientSubject;
    env.SSL_CLIENT_I_DN = t.clientIssuer;
    env.SSL_CLIENT_SERIAL = t.clientSerial;
    env.SSL_CLIENT_CERT = t.clientCert;
  }
}

export function buildEnv(req: FeersumRequest): PsgiEnv {
  const core = req._core;
  const listener = core.listenerInfo(req._listener);
  const unix = listener.family === 'unix';
  const cleanup: Array<(env: PsgiEnv) => void> = [];
  req._cleanup = cleanup;
  const env: Record<string | symbol, unknown> = {
    REQUEST_METHOD: req.method,
    SCRIPT_NAME: '',
    PATH_INFO: req.path,
    REQUEST_URI: req.uri,
    QUERY_STRING: req.query,
    SERVER_NAME: listener.serverName,
    SERVER_PORT: listener.serverPort,
    SERVER_PROTOCOL: req._flags & FLAG_HTTP11 ? 'HTTP/1.1' : 'HTTP/1.0',
    // A Unix-socket peer has no address; it is local, as loopback is.
    REMOTE_ADDR: unix ? '127.0.0.1' : req.remoteAddress,
    REMOTE_PORT: unix ? '0' : portString(req._remotePort),
    'psgi.version': PSGI_VERSION,
    'psgi.url_scheme': listener.scheme,
    // A streamed body's Readable exists already (it is being fed).
    'psgi.input': req._input ?? standIn(InputTarget, req, inputOf),
    'psgi.errors': core.errors,
    'psgi.multithread': false,
    'psgi.multiprocess': core.multiprocess,
    'psgi.run_once': false,
    'psgi.nonblocking': true,
    'psgi.streaming': true,
    'psgix.input.buffered': req.bodyBuffered,
    'psgix.output.buffered': true,
    'psgix.output.guard': true,
    'psgix.io': socketStandIn(req),
    'psgix.informational': (status: number, headers: Array<string | number>) => req.informational(status, headers),
    'psgix.cleanup': true,
    'psgix.cleanup.handlers': cleanup,
  };
  env[REQUEST] = req;
  if (core.harakiri) env['psgix.harakiri'] = true;
  if (req.secure) addTlsKeys(env, req);
  const allowUnderscore = core.options.allowUnderscoreHeaders;
  const fields = req._fields;
  const stamp = nextStamp();
  let haveType = false;
  for (let i = 0; i < fields.length; i += 2) {
    const h = headerName(fields[i]);
    const value = fields[i + 1];
    if (h.kind !== HeaderKind.Plain) {
      if (h.kind === HeaderKind.ContentLength) {
        env.CONTENT_LENGTH = value;
        continue;
      }
      if (h.kind === HeaderKind.ContentType) {
        if (!haveType) env.CONTENT_TYPE = value;
        haveType = true;
        continue;
      }
      if (h.kind === HeaderKind.Never || !allowUnderscore) continue;
    }
    const slot = h.slot;
    const key = slot.key;
    let repeated: boolean;
    if (slot.stamp >= 0) {
      repeated = slot.stamp === stamp;
      slot.stamp = stamp;
    } else {
      repeated = env[key] !== undefined;
    }
    // Repeated headers are joined as RFC 9110 says, Cookie as RFC 6265 does.
    env[key] = repeated ? env[key] + (key === 'HTTP_COOKIE' ? '; ' : ', ') + value : value;
  }
  return env as unknown as PsgiEnv;
}
