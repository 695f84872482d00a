// Implementation of the PROXY protocol parser (see proxy_protocol.h).
#include "proxy_protocol.h"

#include <arpa/inet.h>

#include <cstring>

namespace feersum {

namespace {

constexpr unsigned char kV2Signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                            0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr size_t kV1Max = 107;  // including the CRLF

bool setSource(ProxyHeader* out, int family, const void* addr, uint16_t port) {
  if (!inet_ntop(family, addr, out->source, sizeof out->source)) return false;
  out->source_len = static_cast<uint8_t>(std::strlen(out->source));
  out->source_port = port;
  out->has_source = true;
  return true;
}

bool parsePort(const char* s, size_t n, uint16_t* port) {
  if (n == 0 || n > 5 || (n > 1 && s[0] == '0')) return false;
  uint32_t v = 0;
  for (size_t i = 0; i < n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + static_cast<uint32_t>(s[i] - '0');
  }
  if (v > 65535) return false;
  *port = static_cast<uint16_t>(v);
  return true;
}

bool parseAddress(int family, const char* s, size_t n, unsigned char* out) {
  char tmp[64];
  if (n == 0 || n >= sizeof tmp) return false;
  std::memcpy(tmp, s, n);
  tmp[n] = '\0';
  return inet_pton(family, tmp, out) == 1;
}

ProxyStatus parseV1(const char* buf, size_t len, size_t* consumed, ProxyHeader* out) {
  const char* cr = nullptr;
  size_t scan = len < kV1Max ? len : kV1Max;
  for (size_t i = 0; i + 1 < scan; ++i) {
    if (buf[i] == '\r') {
      if (buf[i + 1] != '\n') return ProxyStatus::Invalid;
      cr = buf + i;
      break;
    }
  }
  if (!cr) return len >= kV1Max ? ProxyStatus::Invalid : ProxyStatus::Partial;
  *consumed = static_cast<size_t>(cr - buf) + 2;
  // "PROXY" SP proto [SP src SP dst SP sport SP dport]: printable ASCII
  // fields separated by exactly one space, nothing else.
  const char* fields[6];
  size_t lens[6];
  size_t count = 0;
  const char* start = buf;
  for (const char* p = buf; p <= cr; ++p) {
    if (p == cr || *p == ' ') {
      if (p == start || count == 6) return ProxyStatus::Invalid;  // empty field, or too many
      fields[count] = start;
      lens[count] = static_cast<size_t>(p - start);
      ++count;
      start = p + 1;
    } else if (*p < 0x21 || *p > 0x7e) {
      return ProxyStatus::Invalid;
    }
  }
  if (count >= 2 && lens[1] == 7 && std::memcmp(fields[1], "UNKNOWN", 7) == 0) return ProxyStatus::Complete;
  if (count != 6) return ProxyStatus::Invalid;
  int family;
  if (lens[1] == 4 && std::memcmp(fields[1], "TCP4", 4) == 0) family = AF_INET;
  else if (lens[1] == 4 && std::memcmp(fields[1], "TCP6", 4) == 0) family = AF_INET6;
  else return ProxyStatus::Invalid;
  unsigned char src_addr[16], dst_addr[16];
  uint16_t src_port, dst_port;
  if (!parseAddress(family, fields[2], lens[2], src_addr) || !parseAddress(family, fields[3], lens[3], dst_addr) ||
      !parsePort(fields[4], lens[4], &src_port) || !parsePort(fields[5], lens[5], &dst_port))
    return ProxyStatus::Invalid;
  return setSource(out, family, src_addr, src_port) ? ProxyStatus::Complete : ProxyStatus::Invalid;
}

ProxyStatus parseV2(const unsigned char* buf, size_t len, size_t* consumed, ProxyHeader* out) {
  if (len < 16) return ProxyStatus::Partial;
  unsigned version = buf[12] >> 4, command = buf[12] & 0x0F;
  if (version != 2 || command > 1) return ProxyStatus::Invalid;
  size_t body = (static_cast<size_t>(buf[14]) << 8) | buf[15];
  if (16 + body > kMaxProxyHeader) return ProxyStatus::Invalid;
  if (len < 16 + body) return ProxyStatus::Partial;
  *consumed = 16 + body;
  if (command == 0) return ProxyStatus::Complete;  // LOCAL: a health check from the balancer itself
  unsigned family = buf[13] >> 4;
  const unsigned char* a = buf + 16;
  if (family == 1) {  // AF_INET: src, dst, sport, dport
    if (body < 12) return ProxyStatus::Invalid;
    uint16_t port = static_cast<uint16_t>((a[8] << 8) | a[9]);
    return setSource(out, AF_INET, a, port) ? ProxyStatus::Complete : ProxyStatus::Invalid;
  }
  if (family == 2) {  // AF_INET6
    if (body < 36) return ProxyStatus::Invalid;
    uint16_t port = static_cast<uint16_t>((a[32] << 8) | a[33]);
    return setSource(out, AF_INET6, a, port) ? ProxyStatus::Complete : ProxyStatus::Invalid;
  }
  if (family == 0 || family == 3) return ProxyStatus::Complete;  // UNSPEC / UNIX: keep our own
  return ProxyStatus::Invalid;
}

}  // namespace

ProxyStatus parseProxyHeader(const char* buf, size_t len, size_t* consumed, ProxyHeader* out) {
  out->has_source = false;
  out->source_len = 0;
  out->source[0] = '\0';
  out->source_port = 0;
  *consumed = 0;
  if (len == 0) return ProxyStatus::Partial;
  // Match as much of either signature as has arrived.
  if (buf[0] == 'P') {
    static const char kV1[] = "PROXY ";
    size_t n = len < 6 ? len : 6;
    if (std::memcmp(buf, kV1, n) != 0) return ProxyStatus::Invalid;
    return len < 6 ? ProxyStatus::Partial : parseV1(buf, len, consumed, out);
  }
  size_t n = len < sizeof kV2Signature ? len : sizeof kV2Signature;
  if (std::memcmp(buf, kV2Signature, n) != 0) return ProxyStatus::Invalid;
  if (len < sizeof kV2Signature) return ProxyStatus::Partial;
  return parseV2(reinterpret_cast<const unsigned char*>(buf), len, consumed, out);
}

}  // namespace feersum
