// The --ssl-* options as the engine's TLS listener options, and the check
// that the files make a usable configuration -- done once at startup, before
// anything is bound, so a wrong path or a key that does not match its
// certificate is one line and exit status 1, not a worker crash loop.
import { randomBytes } from 'node:crypto';

import { createTlsContext, type TlsOptions } from '../tls';
import { firstLine, StartupError } from './errors';
import type { SslConfig, VerifyClient } from './options';

/** What a worker needs to rebuild the TLS options (JSON-safe). */
export interface TlsConfig {
  certFile: string;
  keyFile: string;
  caFile: string | undefined;
  verifyClient: VerifyClient;
  /** Hex: session ticket keys shared by every worker, so a session resumes on any of them. */
  ticketKeys: string | undefined;
}

export function tlsConfig(ssl: SslConfig, shareTickets: boolean): TlsConfig | undefined {
  if (!ssl.certFile || !ssl.keyFile) return undefined;
  return {
    certFile: ssl.certFile,
    keyFile: ssl.keyFile,
    caFile: ssl.caFile,
    verifyClient: ssl.verifyClient,
    // 80 bytes, as the engine takes them; kept across SIGHUP restarts (same supervisor).
    ticketKeys: shareTickets ? randomBytes(80).toString('hex') : undefined,
  };
}

export function tlsOptions(c: TlsConfig): TlsOptions {
  return {
    cert: c.certFile,
    key: c.keyFile,
    // The CA file is read (and so checked) even with 'none', where no client
    // is asked for a certificate: switching the mode on later cannot then
    // discover a broken file. 'optional' lets every client in (the app
    // reads SSL_CLIENT_VERIFY); 'require' refuses those without a valid one.
    ...(c.caFile ? { ca: c.caFile } : {}),
    ...(c.verifyClient !== 'none' ? { requestCert: true, rejectUnauthorized: c.verifyClient === 'require' } : {}),
    ...(c.ticketKeys ? { ticketKeys: Buffer.from(c.ticketKeys, 'hex') } : {}),
  };
}

/** Builds the TLS context once, to find bad files before anything starts. */
export function checkTls(c: TlsConfig): void {
  try {
    createTlsContext(tlsOptions(c));
  } catch (err) {
    const message = firstLine(err); // the engine's own say "TLS configuration refused: ..."
    throw new StartupError(/^TLS\b/.test(message) ? message : `TLS: ${message}`);
  }
}
