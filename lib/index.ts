// Public entry point of feersum-ts.
export { Feersum } from './engine';
export type { AddressInfo, ErrorHook, ListenOptions, RequestHandler } from './engine';
export type { EngineOptions } from './options';
export { FeersumRequest } from './request';
export type { Body, TlsInfo } from './request';
export type { TlsIdentity, TlsOptions } from './tls';
export { Writer } from './writer';
export type { PollCallback } from './writer';
export type { ResponseHeaders } from './headers';
export type { PsgiEnv } from './psgi/env';
export type {
  BodyChunk,
  DelayedResponse,
  PsgiApp,
  PsgiBody,
  PsgiResponse,
  PsgiResult,
  PsgiStreamingResponse,
  Responder,
} from './psgi/adapter';
export { wsUpgradeRequest } from './psgi/raw-socket';
export type { TunnelSocket } from './psgi/tunnel-socket';
export type { UpgradeRequest } from './psgi/raw-socket';
