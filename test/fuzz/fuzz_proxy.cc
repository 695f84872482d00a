// libFuzzer target: parseProxyHeader (PROXY protocol v1 and v2) over
// arbitrary bytes.
//
// Differential: the connection calls the parser again with everything
// received so far after each read, until it stops answering Partial. So the
// input is parsed whole, and also as it grows one byte at a time: the first
// prefix that is not Partial must give the same status, the same consumed
// count and the same source address/port as the whole input (and if the
// whole input is still Partial, so is every prefix). Also checked: Complete
// consumes at least the 8/16-byte minimum and no more than was given or
// than kMaxProxyHeader, and the address text is NUL-terminated and of the
// stated length. Every call gets an exactly-sized heap copy, so a read past
// the bytes given shows up under AddressSanitizer.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "proxy_protocol.h"

using namespace feersum;

namespace {

struct Result {
  ProxyStatus status;
  size_t consumed;
  ProxyHeader h;
};

const char* name(ProxyStatus s) {
  switch (s) {
    case ProxyStatus::Complete: return "Complete";
    case ProxyStatus::Partial: return "Partial";
    case ProxyStatus::Invalid: return "Invalid";
  }
  return "?";
}

[[noreturn]] void fail(const char* what, size_t n) {
  std::fprintf(stderr, "fuzz_proxy: %s (prefix of %zu bytes)\n", what, n);
  std::abort();
}

Result parse(const uint8_t* data, size_t n) {
  std::unique_ptr<char[]> copy(new char[n ? n : 1]);
  if (n) std::memcpy(copy.get(), data, n);
  Result r;
  std::memset(&r.h, 0xA5, sizeof r.h);  // garbage in, so stale fields would show
  r.consumed = ~size_t{0};
  r.status = parseProxyHeader(copy.get(), n, &r.consumed, &r.h);
  if (r.status == ProxyStatus::Complete) {
    if (r.consumed < 8 || r.consumed > n || r.consumed > kMaxProxyHeader) fail("Complete with a bad consumed count", n);
    if (r.h.has_source) {
      if (r.h.source_len == 0 || r.h.source_len >= sizeof r.h.source) fail("bad source_len", n);
      if (std::strlen(r.h.source) != r.h.source_len) fail("source_len disagrees with the text", n);
    } else if (r.h.source_len != 0 || r.h.source_port != 0) {
      fail("no source, but source fields set", n);
    }
  }
  return r;
}

bool same(const Result& a, const Result& b) {
  if (a.status != b.status) return false;
  if (a.status != ProxyStatus::Complete) return true;  // consumed/out only mean something on Complete
  if (a.consumed != b.consumed || a.h.has_source != b.h.has_source) return false;
  if (!a.h.has_source) return true;
  return a.h.source_len == b.h.source_len && a.h.source_port == b.h.source_port &&
         std::memcmp(a.h.source, b.h.source, a.h.source_len) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Result whole = parse(data, size);
  for (size_t n = 0; n <= size; ++n) {
    const Result r = parse(data, n);
    if (r.status == ProxyStatus::Partial) {
      if (n == size && whole.status != ProxyStatus::Partial) fail("whole and full prefix disagree", n);
      continue;
    }
    if (!same(whole, r)) {
      std::fprintf(stderr, "fuzz_proxy: whole (%zu bytes): %s consumed=%zu; first decided prefix (%zu bytes): %s consumed=%zu\n",
                   size, name(whole.status), whole.consumed, n, name(r.status), r.consumed);
      std::abort();
    }
    return 0;
  }
  return 0;
}
