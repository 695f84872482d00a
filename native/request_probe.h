// Test harness: runs the server's request loop over a byte string, without
// sockets, so tests can compare the parser with reference corpora (llhttp).
// Pure C++ (no N-API); probe_binding.cc exposes it to JavaScript.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "http_parser.h"

namespace feersum {

struct ProbeMessage {
  std::string method, target;
  int version_minor = 1;
  std::vector<std::pair<std::string, std::string>> headers;  // value trimmed of SP/HTAB
  std::string body;                                          // decoded (chunked framing removed)
  bool chunked = false, keep_alive = false, upgrade = false, expect_continue = false;
};

struct ProbeResult {
  std::vector<ProbeMessage> messages;  // completed messages, in order
  bool error = false;
  int status = 0;            // HTTP status the server would answer (error only)
  std::string reason;        // describe(error), or the chunked-body reason
  std::string error_name;    // ParseError enumerator name, or "BadChunkedBody"
  uint32_t error_offset = 0; // absolute offset in the input where the error was detected
  bool incomplete = false;   // input ended inside a message (head or body)
  // Bytes left unprocessed because the connection would stop reading HTTP:
  // after a non-keep-alive request, or after an Upgrade/CONNECT request.
  size_t rest = 0;
};

// Loop semantics (as the connection does them): parse a head; read its body
// by Content-Length or chunked coding; record the message; stop if it is
// not keep-alive or is an upgrade (CONNECT or Upgrade); else continue.
// Empty lines (CRLF) between messages are skipped, as RFC 9112 section 2.2
// allows, and do not make the input "incomplete".
//
// split_every: 0 feeds the input in one piece; n > 0 delivers it n bytes at
// a time, re-entering the parser after each read (exercising Partial/resume
// and the chunked decoder's incremental state). Every parser call gets an
// exactly-sized heap copy of the unconsumed bytes, so an out-of-bounds read
// shows up under AddressSanitizer, and offsets are always buffer-relative.
ProbeResult probeRequests(const char* data, size_t len, const ParserLimits& limits, size_t split_every);

// Same, with the input delivered in pieces ending at the given offsets
// (ascending; offsets >= len are ignored; the rest follows as one piece).
ProbeResult probeRequestsSplitAt(const char* data, size_t len, const ParserLimits& limits,
                                 const std::vector<size_t>& cuts);

// Name of a ParseError enumerator ("BadRequest", "ObsFold", ...).
const char* parseErrorName(ParseError e);

// Test hook, implemented in http_parser.cc: true forces the portable scalar
// scanners, false restores the best ones the CPU supports.
void forceScalarParser(bool force);

// Name of the scanner implementation in use: "avx2", "sse4.2" or "scalar".
const char* activeParserImpl();

}  // namespace feersum
