// The PSGI environment of a request. Plain keys are set when the env is
// built; keys whose values are costly (streams, the raw socket, closures)
// are enumerable getters that build their value on first read, so they
// show up in Object.keys and spreads like any other key.
import type { Readable, Writable } from 'node:stream';

import { FLAG_HTTP11 } from '../native';
import type { FeersumRequest } from '../request';
import { takeOverSocket } from './raw-socket';

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
  'psgix.io': import('node:net').Socket;
  'psgix.informational': (status: number, headers: Array<string | number>) => void;
  'psgix.cleanup': boolean;
  'psgix.cleanup.handlers': Array<(env: PsgiEnv) => void>;
  'psgix.harakiri'?: boolean;
  'psgix.harakiri.commit'?: boolean;
  [key: string]: unknown;
}

/** The request an env belongs to (hidden from enumeration). */
export const REQUEST: unique symbol = Symbol('feersum.request');

// HTTP_* names for header names seen before; bounded so a client sending
// random names cannot grow it without limit.
const envNames = new Map<string, string>();
const ENV_NAME_CACHE_MAX = 2048;

function envName(name: string): string {
  let key = envNames.get(name);
  if (key !== undefined) return key;
  key = 'HTTP_' + name.toUpperCase().replace(/-/g, '_');
  if (envNames.size < ENV_NAME_CACHE_MAX) envNames.set(name, key);
  return key;
}

function isContentHeader(name: string): 0 | 1 | 2 {
  // 1: Content-Length, 2: Content-Type (they become CONTENT_LENGTH/TYPE, not HTTP_*).
  if (name.length === 14 && name.toLowerCase() === 'content-length') return 1;
  if (name.length === 12 && name.toLowerCase() === 'content-type') return 2;
  return 0;
}

// Replaces an accessor with the value it produced (or one the app assigned).
function settle(env: object, key: string, value: unknown): void {
  Object.defineProperty(env, key, { value, writable: true, enumerable: true, configurable: true });
}

function requestOf(env: object): FeersumRequest {
  return (env as Record<symbol, FeersumRequest>)[REQUEST];
}

// The two keys whose values are costly or have side effects are accessors
// that replace themselves with their value on first read. The descriptors
// are shared and added as new properties, which keeps the env a fast-mode
// object (an accessor in the literal, or a closure per request, would not).
const INPUT_ACCESSOR: PropertyDescriptor = {
  get(this: object) {
    const value = requestOf(this).input;
    settle(this, 'psgi.input', value);
    return value;
  },
  set(this: object, value: unknown) {
    settle(this, 'psgi.input', value);
  },
  enumerable: true,
  configurable: true,
};

const IO_ACCESSOR: PropertyDescriptor = {
  // Reading it detaches the connection (see raw-socket.ts).
  get(this: object) {
    const value = takeOverSocket(requestOf(this));
    settle(this, 'psgix.io', value);
    return value;
  },
  set(this: object, value: unknown) {
    settle(this, 'psgix.io', value);
  },
  enumerable: true,
  configurable: true,
};

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
    REMOTE_PORT: unix ? '0' : String(req._remotePort),
    'psgi.version': [1, 1],
    'psgi.url_scheme': listener.scheme,
    'psgi.errors': core.errors,
    'psgi.multithread': false,
    'psgi.multiprocess': core.multiprocess,
    'psgi.run_once': false,
    'psgi.nonblocking': true,
    'psgi.streaming': true,
    'psgix.input.buffered': req.bodyBuffered,
    'psgix.output.buffered': true,
    'psgix.output.guard': true,
    'psgix.informational': (status: number, headers: Array<string | number>) => req.informational(status, headers),
    'psgix.cleanup': true,
    'psgix.cleanup.handlers': cleanup,
  };
  env[REQUEST] = req;
  Object.defineProperty(env, 'psgi.input', INPUT_ACCESSOR);
  Object.defineProperty(env, 'psgix.io', IO_ACCESSOR);
  if (core.harakiri) env['psgix.harakiri'] = true;
  const allowUnderscore = core.options.allowUnderscoreHeaders;
  const fields = req._fields;
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i];
    const value = fields[i + 1];
    const content = isContentHeader(name);
    if (content === 1) {
      env.CONTENT_LENGTH = value;
      continue;
    }
    if (content === 2) {
      if (env.CONTENT_TYPE === undefined) env.CONTENT_TYPE = value;
      continue;
    }
    // X_Forwarded_For must not pose as X-Forwarded-For (nginx drops these too).
    if (!allowUnderscore && name.indexOf('_') !== -1) continue;
    const key = envName(name);
    const prev = env[key];
    if (prev === undefined) env[key] = value;
    else env[key] = prev + (key === 'HTTP_COOKIE' ? '; ' : ', ') + value;
  }
  return env as unknown as PsgiEnv;
}
