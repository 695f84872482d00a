// psgix.io: hands the connection's socket to the application as a
// net.Socket (for WebSocket libraries and other protocols), detaching it
// from the engine; and wsUpgradeRequest(env) for `ws`'s handleUpgrade.
//
// env['psgix.io'] is a stand-in (stand-in.ts), not the socket: a spread of
// the env in a middleware copies it without taking the connection, and an
// app that answers normally keeps its connection plain HTTP, keep-alive
// and all. The connection is taken from the engine, and the real
// net.Socket made, when the app first uses the stand-in: calls a method,
// reads a property that is not a method (remoteAddress, readable...), or
// sets one; `instanceof`, `in` and looking a method up take nothing. From
// then on the app's return value is ignored. wsUpgradeRequest() takes it
// at once and returns the real socket.
// An app that wants to keep the socket for later without touching it yet
// returns a delayed response (a function) that does not respond, as PSGI
// apps using psgix.io do; returning nothing at all is an error (500), as
// for any app.
import net from 'node:net';

import type { FeersumRequest } from '../request';
import type { PsgiEnv } from './env';
import { REQUEST } from './env';
import { standIn, targetClass } from './stand-in';
import { TunnelSocket } from './tunnel-socket';

export interface UpgradeRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
}

/**
 * Takes the connection of req from the engine and returns it as a flowing
 * net.Socket (once per request; later calls return the same socket).
 * Output the engine had queued but not yet written is written first; bytes
 * the client sent after the request head are put back into the socket
 * (unshift) unless `keepHead` takes them. When the connection cannot be
 * taken (the client went away, or the response was already complete) the
 * socket returned is already destroyed, so writes fail quietly, as they
 * would on a socket that just closed.
 */
export function takeSocket(req: FeersumRequest, keepHead?: (head: Buffer) => void): net.Socket {
  if (req._ioSocket) return req._ioSocket;
  if (req.secure) return tunnel(req);
  let socket: net.Socket;
  if (req._responseDone && !req._aborted) {
    // Detaching now would take the connection from under the next
    // (pipelined) request: refuse, and say why.
    req._core.reportError(new Error('psgix.io used after the response was complete; ignored'), req);
    socket = destroyedSocket();
  } else {
    const result = req._core.native.detach(req.id);
    if (typeof result === 'number') {
      socket = destroyedSocket(); // the client has gone
    } else {
      req._detached = true;
      req._markDone();
      const [fd, head, pending] = result;
      socket = new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: false });
      if (pending.length) socket.write(pending);
      if (keepHead) keepHead(head);
      else if (head.length) socket.unshift(head);
    }
  }
  req._ioSocket = socket;
  return socket;
}

function destroyedSocket(): net.Socket {
  const socket = new net.Socket();
  socket.destroy();
  return socket;
}

/**
 * TLS connections stay in the addon (their session cannot move to a Node
 * socket): the application gets a Duplex of the decrypted stream instead
 * (see tunnel-socket.ts). Bytes the client sent after the request head
 * arrive through it like any later ones, so `head` is empty.
 */
function tunnel(req: FeersumRequest): net.Socket {
  const socket = new TunnelSocket(req);
  req._bodySink = socket;
  req._tunnel = socket;
  const ok = req._core.watch(req) && req._core.native.tunnel(req.id) === 0;
  if (!ok) socket._abort(); // the client has gone, or a response already started
  else {
    req._detached = true;
    req._markDone();
  }
  req._ioSocket = socket as unknown as net.Socket;
  return req._ioSocket;
}

const SocketTarget = targetClass(net.Socket.prototype);
const TunnelTarget = targetClass(TunnelSocket.prototype);

/** The value of env['psgix.io']: a stand-in that takes the connection on first use. */
export function socketStandIn(req: FeersumRequest): net.Socket {
  return standIn(req.secure ? TunnelTarget : SocketTarget, req, takeSocket);
}

/**
 * What `ws`'s handleUpgrade(request, socket, head, cb) needs, from a PSGI
 * env: the request (method, url, lower-cased headers), the socket (taken
 * from the engine now) and the bytes received after the request head.
 *
 * ```js
 * const { WebSocketServer } = require('ws');
 * const { Feersum, wsUpgradeRequest } = require('feersum-ts');
 * const wss = new WebSocketServer({ noServer: true });
 * Feersum.endjinn().psgiRequestHandler((env) => {
 *   if ((env.HTTP_UPGRADE || '').toLowerCase() !== 'websocket') return [200, [], ['plain HTTP']];
 *   const { request, socket, head } = wsUpgradeRequest(env);
 *   wss.handleUpgrade(request, socket, head, (ws) => ws.on('message', (m) => ws.send(m)));
 *   // the return value is ignored once the socket is taken
 * });
 * ```
 */
export function wsUpgradeRequest(env: PsgiEnv): { request: UpgradeRequest; socket: net.Socket; head: Buffer } {
  const req = (env as unknown as Record<symbol, FeersumRequest | undefined>)[REQUEST];
  if (!req) throw new TypeError('wsUpgradeRequest(env) needs an env from feersum-ts');
  let head: Buffer = Buffer.alloc(0);
  const socket = takeSocket(req, (h) => {
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
