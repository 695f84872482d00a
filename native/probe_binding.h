// N-API entry points of the request probe (test harness), registered by
// addon.cc on the exports as `probeRequests` and `setScalarParser`.
#pragma once

#include <node_api.h>

// probeRequests(buf: Buffer | Uint8Array, splitEvery?: number,
//               maxHeadSize?: number, maxHeaders?: number)
//   -> { messages: [{ method, url, versionMinor, headers: [[name, value], ...],
//                     body: Buffer, chunked, keepAlive, upgrade, expectContinue }],
//        error, status, reason, errorName, errorOffset, incomplete, rest }
// Strings are latin1 (byte n = char code n).
napi_value ProbeRequestsBinding(napi_env env, napi_callback_info info);

// setScalarParser(force: boolean) -> string
// Forces (true) or releases (false) the scalar byte scanners; returns the
// implementation now in use: "avx2", "sse4.2" or "scalar".
napi_value SetScalarParserBinding(napi_env env, napi_callback_info info);
