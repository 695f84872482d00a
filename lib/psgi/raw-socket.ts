// psgix.io: hands the connection's socket to the application as a
// net.Socket (for WebSocket libraries), detaching it from the engine.
import net from 'node:net';

import type { FeersumRequest } from '../request';
import type { PsgiEnv } from './env';
import { REQUEST } from './env';

export interface UpgradeRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
}

/**
 * Detaches req's connection and returns its socket. Output the engine had
 * queued but not yet written is written first; bytes the client sent after
 * the request head are put back into the socket (unshift) unless the caller
 * takes them as `head` itself.
 */
export function takeOverSocket(req: FeersumRequest, keepHead?: (head: Buffer) => void): net.Socket {
  const result = req._core.native.detach(req.id);
  if (typeof result === 'number') {
    throw new Error('psgix.io: the connection is no longer available (client gone or response complete)');
  }
  req._detached = true;
  req._markDone();
  const [fd, head, pending] = result;
  const socket = new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: false });
  if (pending.length) socket.write(pending);
  if (keepHead) keepHead(head);
  else if (head.length) socket.unshift(head);
  return socket;
}

/**
 * What `ws`'s handleUpgrade(request, socket, head, cb) needs, from a PSGI
 * env: the request (method, url, lower-cased headers), the detached socket
 * and the bytes received after the request head.
 */
export function wsUpgradeRequest(env: PsgiEnv): { request: UpgradeRequest; socket: net.Socket; head: Buffer } {
  const req = (env as unknown as Record<symbol, FeersumRequest | undefined>)[REQUEST];
  if (!req) throw new TypeError('wsUpgradeRequest(env) needs an env from feersum-ts');
  let head: Buffer = Buffer.alloc(0);
  const socket = takeOverSocket(req, (h) => {
    head = h;
  });
  Object.defineProperty(env, 'psgix.io', { value: socket, writable: true, enumerable: true, configurable: true });
  const headers: Record<string, string> = {};
  const fields = req._fields;
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i].toLowerCase();
    const prev = headers[name];
    headers[name] = prev === undefined ? fields[i + 1] : prev + (name === 'cookie' ? '; ' : ', ') + fields[i + 1];
  }
  return { request: { method: req.method, url: req.uri, headers }, socket, head };
}
