// PROXY protocol v1 (text) and v2 (binary) header parser (HAProxy's spec),
// pure C++ like the HTTP parser: a load balancer in front prepends the
// client's real address to the connection, and this reads it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace feersum {

struct ProxyHeader {
  // False for v1 UNKNOWN, v2 LOCAL and v2 AF_UNSPEC/AF_UNIX: the connection's
  // own address stands.
  bool has_source;
  char source[48];  // numeric address text
  uint8_t source_len;
  uint16_t source_port;
};

enum class ProxyStatus : uint8_t { Complete, Partial, Invalid };

// The largest header accepted: v1 is at most 107 bytes; v2 is 16 bytes plus
// addresses and TLVs, which cloud load balancers use for a few hundred bytes.
constexpr size_t kMaxProxyHeader = 16 + 4096;

// Parses a PROXY header at the start of buf[0, len). On Complete, *consumed
// bytes belong to it and the HTTP request starts right after.
ProxyStatus parseProxyHeader(const char* buf, size_t len, size_t* consumed, ProxyHeader* out);

}  // namespace feersum
