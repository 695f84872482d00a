// Chooses the parser's byte scanner for this CPU once, at load (see
// http_scan.h), and exposes single scans for the tests and fuzzers.
#include <atomic>

#include "http_scan.h"

namespace feersum {
namespace detail {

namespace {

SimdLevel detectLevel() {
#if FEERSUM_X86_SIMD
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) return SimdLevel::Avx2;
  if (__builtin_cpu_supports("sse4.2")) return SimdLevel::Sse42;
#endif
  return SimdLevel::Scalar;
}

const SimdLevel g_detected = detectLevel();
std::atomic<uint8_t> g_active{static_cast<uint8_t>(g_detected)};

template <class S>
size_t scanTo(int kind, const char* buf, size_t len, size_t pos) {
  S scan(buf, len);
  return kind == 0 ? scan.tokenEnd(pos) : kind == 1 ? scan.targetEnd(pos) : scan.valueEnd(pos);
}

#if FEERSUM_X86_SIMD
__attribute__((target("sse4.2"), flatten)) size_t scanSse42(int kind, const char* buf, size_t len, size_t pos) {
  return scanTo<Sse42Scan>(kind, buf, len, pos);
}
__attribute__((target("avx2"), flatten)) size_t scanAvx2(int kind, const char* buf, size_t len, size_t pos) {
  return scanTo<Avx2Scan>(kind, buf, len, pos);
}
#endif

size_t scanWith(SimdLevel level, int kind, const char* buf, size_t len, size_t pos) {
  if (pos > len) pos = len;
#if FEERSUM_X86_SIMD
  if (level == SimdLevel::Avx2 && g_detected == SimdLevel::Avx2) return scanAvx2(kind, buf, len, pos);
  if (level >= SimdLevel::Sse42 && g_detected >= SimdLevel::Sse42) return scanSse42(kind, buf, len, pos);
#else
  (void)level;
#endif
  return scanTo<ScalarScan>(kind, buf, len, pos);
}

}  // namespace

SimdLevel detectedSimdLevel() { return g_detected; }

SimdLevel activeSimdLevel() { return static_cast<SimdLevel>(g_active.load(std::memory_order_relaxed)); }

bool setSimdLevel(SimdLevel level) {
  if (static_cast<uint8_t>(level) > static_cast<uint8_t>(g_detected)) return false;
  g_active.store(static_cast<uint8_t>(level), std::memory_order_relaxed);
  return true;
}

const char* simdLevelName(SimdLevel level) {
  switch (level) {
    case SimdLevel::Scalar: return "scalar";
    case SimdLevel::Sse42: return "sse4.2";
    case SimdLevel::Avx2: return "avx2";
  }
  return "scalar";
}

size_t findTokenEnd(SimdLevel level, const char* buf, size_t len, size_t pos) { return scanWith(level, 0, buf, len, pos); }
size_t findTargetEnd(SimdLevel level, const char* buf, size_t len, size_t pos) { return scanWith(level, 1, buf, len, pos); }
size_t findValueEnd(SimdLevel level, const char* buf, size_t len, size_t pos) { return scanWith(level, 2, buf, len, pos); }

}  // namespace detail
}  // namespace feersum
