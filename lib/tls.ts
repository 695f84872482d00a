// TLS listener options: reads certificates and keys (PEM strings, Buffers
// or file paths) and builds the addon's TLS context, so any problem with
// them is an error from listen() — never from the first handshake.
import fs from 'node:fs';
import tls from 'node:tls';

import { loadBinding } from './native';

type PemSource = string | Buffer;

export interface TlsIdentity {
  /** PEM certificate (leaf first, then its chain), as a string, Buffer or file path. */
  cert: PemSource;
  /** PEM private key, as a string, Buffer or file path. */
  key: PemSource;
  /** Passphrase of an encrypted key. */
  passphrase?: string;
}

export interface TlsOptions extends TlsIdentity {
  /** CA certificates for client certificates (PEM string, Buffer, path, or an array of them). */
  ca?: PemSource | PemSource[];
  /** Ask clients for a certificate. */
  requestCert?: boolean;
  /** With requestCert: refuse clients without a valid certificate (default true). */
  rejectUnauthorized?: boolean;
  /** Cipher list (OpenSSL syntax; TLS 1.3 suite names are recognised); default Node's. */
  ciphers?: string;
  /** Oldest protocol accepted: 'TLSv1.2' (default) or 'TLSv1.3'. */
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** Certificates per server name (SNI); '*.example.com' matches one label. */
  sni?: Record<string, TlsIdentity>;
  /** 80 bytes shared by every process of a server, so session tickets resume across workers. */
  ticketKeys?: Buffer;
}

/** The addon's handle for a TLS configuration. */
export type TlsContextHandle = object & { readonly __tls: unique symbol };

function readPem(value: PemSource, what: string): string {
  if (Buffer.isBuffer(value)) return value.toString('latin1');
  if (typeof value !== 'string' || value === '') throw new TypeError(`tls.${what} must be a PEM string, Buffer or file path`);
  if (value.includes('-----BEGIN ')) return value;
  try {
    return fs.readFileSync(value, 'latin1');
  } catch (err) {
    throw new Error(`cannot read TLS ${what} file ${value}: ${(err as Error).message}`);
  }
}

// Node's defaults mix TLS 1.3 suite names with the TLS 1.2 list; OpenSSL
// takes them through separate calls.
function splitCiphers(list: string): { ciphers: string; ciphersuites: string } {
  const parts = list.split(':').filter(Boolean);
  return {
    ciphersuites: parts.filter((c) => c.startsWith('TLS_')).join(':'),
    ciphers: parts.filter((c) => !c.startsWith('TLS_')).join(':'),
  };
}

function identity(id: TlsIdentity, where: string) {
  if (!id || typeof id !== 'object') throw new TypeError(`${where} needs { cert, key }`);
  return {
    cert: readPem(id.cert, `${where}cert`),
    key: readPem(id.key, `${where}key`),
    passphrase: id.passphrase ?? '',
  };
}

export function createTlsContext(opts: TlsOptions): TlsContextHandle {
  if (!opts || typeof opts !== 'object') throw new TypeError('tls options must be an object');
  const { ciphers, ciphersuites } = splitCiphers(opts.ciphers ?? tls.DEFAULT_CIPHERS);
  const ca = opts.ca === undefined ? '' : (Array.isArray(opts.ca) ? opts.ca : [opts.ca]).map((c) => readPem(c, 'ca')).join('\n');
  if (opts.minVersion !== undefined && opts.minVersion !== 'TLSv1.2' && opts.minVersion !== 'TLSv1.3') {
    throw new RangeError(`tls.minVersion must be 'TLSv1.2' or 'TLSv1.3'`);
  }
  const sni = Object.entries(opts.sni ?? {}).map(([name, id]) => [name, identity(id, `sni['${name}'].`)]);
  try {
    return loadBinding().createTlsContext({
      ...identity(opts, ''),
      ca,
      requestCert: !!opts.requestCert,
      rejectUnauthorized: opts.rejectUnauthorized !== false,
      ciphers,
      ciphersuites,
      minVersion: opts.minVersion ?? 'TLSv1.2',
      sni,
      ticketKeys: opts.ticketKeys,
    }) as TlsContextHandle;
  } catch (err) {
    throw new Error(`TLS configuration refused: ${(err as Error).message}`);
  }
}
