// Response-head formatting: status lines, the application's header block
// (validated: no response splitting), the per-second Date header, and
// chunked-encoding framing.
#pragma once

#include "byte_buffer.h"

namespace feersum {

const char* reasonPhrase(int status);  // "" for unknown codes

// What the engine needs to know about the headers the application supplied.
struct AppHeaderInfo {
  bool has_content_length = false;
  uint64_t content_length = 0;
  bool connection_close = false;  // "close" among the Connection tokens
  bool has_date = false;
  bool has_server = false;
};

enum class HeadError : uint8_t {
  None = 0,
  BadStatus,
  BadHeaderName,       // not a token
  BadHeaderValue,      // CR, LF, NUL or another control character
  BadHeaderCount,      // odd count, or the block splits into a different count (a value held a LF)
  BadContentLength,    // not a plain decimal
};
const char* describe(HeadError e);

// The application's headers arrive from JavaScript as one string
// "name\nvalue\nname\nvalue" plus the item count, which costs one N-API call
// instead of two per header. A LF inside an item changes the number of items,
// so the count check catches it; CR and NUL are checked byte by byte.
// Appends "Name: value\r\n" for each header the engine does not own
// (Transfer-Encoding, Content-Length and plain close/keep-alive Connection
// values are framing, which the engine writes itself).
HeadError appendAppHeaders(const char* block, size_t len, uint32_t count, ByteBuffer& out,
                           AppHeaderInfo* info);

void appendStatusLine(ByteBuffer& out, int status, bool http10);

// "Date: <IMF-fixdate>\r\n", formatted at most once per second.
const char* dateHeader(size_t* len);

// "<hex>\r\n" chunk-size line for a chunk of n bytes; returns its length.
size_t formatChunkSize(char* out, uint64_t n);

bool isTokenChar(unsigned char c);

}  // namespace feersum
