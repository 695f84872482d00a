// HTTP/1.1 request-head parser (RFC 9112), pure C++: no N-API, no libuv.
// One call parses a complete head into spans. A head arriving in pieces is
// checked line by line as lines complete (so junk is refused at once, not at
// the timeout) and never rescanned from its start.
#pragma once

#include <cstddef>
#include <cstdint>

namespace feersum {

// Offsets are relative to the start of the buffer handed to parseRequestHead,
// so the caller may move the bytes (e.g. copy an unfinished head aside)
// between calls as long as it keeps their order.
struct HeaderField {
  uint32_t name_off;
  uint32_t name_len;
  uint32_t value_off;  // leading and trailing SP/HTAB already trimmed
  uint32_t value_len;
};

enum class Method : uint8_t {
  Other = 0,  // a registered method with no special meaning to the engine
  Get,
  Head,
  Post,
  Put,
  Delete,
  Options,
  Patch,
  Connect,
  Trace,
};

enum class BodyFraming : uint8_t {
  None,     // no body (no Content-Length, no Transfer-Encoding, or CL: 0)
  Length,   // Content-Length bytes follow
  Chunked,  // Transfer-Encoding ending in chunked
};

// Why a head was refused; `httpStatus()` maps each to the status to send.
enum class ParseError : uint8_t {
  None = 0,
  BadRequest,           // 400: any syntax error not listed below
  BadContentLength,     // 400: signed, non-decimal, overflowing, disagreeing duplicates
  LengthWithChunked,    // 400: Content-Length together with Transfer-Encoding
  BadTransferEncoding,  // 400: chunked not last, chunked twice, empty, TE on HTTP/1.0
  UnknownCoding,        // 501: a transfer coding other than chunked
  MissingHost,          // 400: HTTP/1.1 without Host
  BadHost,              // 400: duplicate or malformed Host
  ObsFold,              // 400: obs-fold (line folding)
  UnknownMethod,        // 501: not a registered HTTP method (RFC 9110 section 9.1)
  HeadTooLarge,         // 431: head exceeds max_head_size, or a field line max_line_size
  UriTooLong,           // 414: request line exceeds max_line_size (or max_head_size)
  TooManyHeaders,       // 400: more than max_headers fields
  BadVersion,           // 400: malformed HTTP-version token
  UnsupportedVersion,   // 505: well-formed but not HTTP/1.0 or HTTP/1.1
  BadExpect,            // 417: Expect other than 100-continue
};

int httpStatus(ParseError e);
const char* describe(ParseError e);  // short English reason, for logs and error bodies

struct ParserLimits {
  uint32_t max_head_size = 32 * 1024;  // bytes, request line + fields + final CRLF
  // Bytes of one line, its CRLF included: the request line (414 above) or
  // a field line (431 above). nginx's large_client_header_buffers size.
  uint32_t max_line_size = 8 * 1024;
  uint32_t max_headers = 100;  // number of fields
};

struct RequestHead {
  uint32_t method_off, method_len;
  uint32_t target_off, target_len;  // raw request-target
  uint32_t path_len;                // bytes of target before '?' (or '#'), == target_len if none
  uint8_t version_minor;            // 0 or 1 (major is always 1)
  Method method;

  HeaderField* fields;  // caller's array, capacity ParserLimits::max_headers
  uint32_t num_fields;

  // Framing and connection semantics derived from the fields.
  BodyFraming framing;
  uint64_t content_length;  // valid when framing == Length
  bool keep_alive;          // HTTP/1.1 unless "close"; HTTP/1.0 only with "keep-alive"
  bool expect_continue;     // Expect: 100-continue
  bool upgrade;             // Upgrade header present (with "upgrade" in Connection) or CONNECT
  int32_t host_field;       // index into fields, -1 when absent (HTTP/1.0)

  uint32_t head_len;  // bytes consumed, including the final CRLF
};

enum class ParseStatus : uint8_t { Complete, Partial, Error };

struct ParseResult {
  ParseStatus status;
  ParseError error;      // when status == Error
  uint32_t error_offset; // byte offset where the error was detected (diagnostics)
};

// Parses one request head from buf[0, len).
//
// `scanned` is in/out: the caller starts it at 0 for a new head and passes
// back whatever the previous Partial call left in it (the start of the line
// still unfinished); lines before it were already checked, so a head
// arriving in many small reads is not rescanned from the start each time.
//
// Leading empty lines (CRLF) before the request line are skipped, as RFC 9112
// section 2.2 allows; they count in head_len.
//
// On Complete, `out` describes the head and out.head_len bytes were consumed.
// On Partial, more bytes are needed (and len < limits.max_head_size).
// On Error, the connection should answer httpStatus(error) and close.
ParseResult parseRequestHead(const char* buf, size_t len, uint32_t* scanned,
                             const ParserLimits& limits, RequestHead* out);

// Chunked transfer-coding decoder (RFC 9112 section 7.1). A small state
// machine that consumes input incrementally and reports body bytes as spans
// into the input, so nothing is copied. Trailer fields are validated and
// discarded.
class ChunkedDecoder {
 public:
  enum class Status : uint8_t { NeedMore, Done, Error };
  using DataFn = void (*)(void* ctx, const char* data, size_t len);

  void reset();

  // Consumes bytes of in[0, len). Calls on_data for each run of body bytes.
  // *consumed is set to the number of bytes used; on Done the bytes after the
  // final CRLF are not consumed (they begin the next request).
  Status feed(const char* in, size_t len, size_t* consumed, DataFn on_data, void* ctx);

  uint64_t bodyBytes() const { return body_bytes_; }
  // Bytes the current chunk has declared and not yet delivered, once its
  // size line is complete (0 before): lets a body limit refuse a huge
  // declared chunk before its data comes, whatever the read sizes.
  uint64_t pendingChunkBytes() const;

  // Upper bound on the bytes a single chunk-size line (with extensions) or the
  // trailer section may take; beyond it the body is refused.
  static constexpr uint32_t kMaxLineBytes = 4096;
  static constexpr uint32_t kMaxTrailerBytes = 16 * 1024;

 private:
  uint8_t state_ = 0;
  uint8_t flags_ = 0;
  uint16_t digits_ = 0;
  uint32_t line_bytes_ = 0;
  uint64_t chunk_remaining_ = 0;
  uint64_t body_bytes_ = 0;
};

}  // namespace feersum
