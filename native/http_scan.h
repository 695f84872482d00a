// The parser's byte scanners: "where does this token / request-target /
// field value end?" answered 64 bytes at a time with AVX2, 16 with SSE4.2,
// or byte by byte (the portable fallback, what arm64 compiles). Header-only
// so the parser's loop is instantiated once per scanner and inlined;
// http_scan.cc picks the one the CPU supports.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "http_parser_internal.h"

// FEERSUM_NO_SIMD builds only the scalar scanners (what non-x86 targets get).
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(FEERSUM_NO_SIMD)
#define FEERSUM_X86_SIMD 1
#include <immintrin.h>
#else
#define FEERSUM_X86_SIMD 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define FEERSUM_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define FEERSUM_ALWAYS_INLINE inline
#endif
#ifndef FEERSUM_LIKELY
#if defined(__GNUC__) || defined(__clang__)
#define FEERSUM_LIKELY(x) __builtin_expect(!!(x), 1)
#define FEERSUM_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define FEERSUM_LIKELY(x) (x)
#define FEERSUM_UNLIKELY(x) (x)
#endif
#endif

namespace feersum {
namespace detail {

// ---------------------------------------------------------------------------
// Byte scanners
//
// A scanner is made for one parse over b[0, lim) and answers "first offset
// at or after pos whose byte is not a token / request-target / field-value
// byte" (lim if none). Three implementations, identical in results:
//   ScalarScan  table lookups, the portable fallback
//   Sse42Scan   PCMPESTRI over 16-byte blocks for values and targets
//   Avx2Scan    classifies each 64-byte block once into three bitmasks, so
//               every query is a shift and a TZCNT on a cached mask
// Scanners never read outside [0, lim).


inline bool isVisible(unsigned char c) { return kChars.v[c] & kVisible; }

inline const char* scalarValueEnd(const char* p, const char* end) {
  while (end - p >= 4) {
    if (FEERSUM_UNLIKELY(!isValueChar(static_cast<unsigned char>(p[0])))) return p;
    if (FEERSUM_UNLIKELY(!isValueChar(static_cast<unsigned char>(p[1])))) return p + 1;
    if (FEERSUM_UNLIKELY(!isValueChar(static_cast<unsigned char>(p[2])))) return p + 2;
    if (FEERSUM_UNLIKELY(!isValueChar(static_cast<unsigned char>(p[3])))) return p + 3;
    p += 4;
  }
  while (p < end && isValueChar(static_cast<unsigned char>(*p))) ++p;
  return p;
}

inline const char* scalarTargetEnd(const char* p, const char* end) {
  while (end - p >= 4) {
    if (FEERSUM_UNLIKELY(!isVisible(static_cast<unsigned char>(p[0])))) return p;
    if (FEERSUM_UNLIKELY(!isVisible(static_cast<unsigned char>(p[1])))) return p + 1;
    if (FEERSUM_UNLIKELY(!isVisible(static_cast<unsigned char>(p[2])))) return p + 2;
    if (FEERSUM_UNLIKELY(!isVisible(static_cast<unsigned char>(p[3])))) return p + 3;
    p += 4;
  }
  while (p < end && isVisible(static_cast<unsigned char>(*p))) ++p;
  return p;
}

inline const char* scalarTokenEnd(const char* p, const char* end) {
  while (p < end && isTchar(static_cast<unsigned char>(*p))) ++p;
  return p;
}

struct ScalarScan {
  const char* b;
  size_t lim;
  ScalarScan(const char* buf, size_t l) : b(buf), lim(l) {}
  FEERSUM_ALWAYS_INLINE size_t tokenEnd(size_t pos) { return static_cast<size_t>(scalarTokenEnd(b + pos, b + lim) - b); }
  FEERSUM_ALWAYS_INLINE size_t targetEnd(size_t pos) { return static_cast<size_t>(scalarTargetEnd(b + pos, b + lim) - b); }
  FEERSUM_ALWAYS_INLINE size_t valueEnd(size_t pos) { return static_cast<size_t>(scalarValueEnd(b + pos, b + lim) - b); }
};

#if FEERSUM_X86_SIMD

// SSE4.2: PCMPESTRI in "ranges" mode finds the first byte inside any of up
// to eight [lo, hi] ranges; we list the forbidden ranges. Only whole 16-byte
// blocks inside [p, end) are loaded; the tail is scalar.
__attribute__((target("sse4.2"))) inline const char* sse42ValueEnd(const char* p, const char* end) {
  // forbidden in a field value: 0x00-0x08, 0x0A-0x1F, 0x7F
  alignas(16) static const char kRanges[16] = {0x00, 0x08, 0x0a, 0x1f, 0x7f, 0x7f};
  const __m128i ranges = _mm_load_si128(reinterpret_cast<const __m128i*>(kRanges));
  while (end - p >= 16) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const int i = _mm_cmpestri(ranges, 6, b, 16, _SIDD_UBYTE_OPS | _SIDD_CMP_RANGES | _SIDD_LEAST_SIGNIFICANT);
    if (i != 16) return p + i;
    p += 16;
  }
  return scalarValueEnd(p, end);
}

__attribute__((target("sse4.2"))) inline const char* sse42TargetEnd(const char* p, const char* end) {
  // forbidden in a request-target: 0x00-0x20, 0x7F-0xFF
  alignas(16) static const char kRanges[16] = {0x00, 0x20, 0x7f, static_cast<char>(0xff)};
  const __m128i ranges = _mm_load_si128(reinterpret_cast<const __m128i*>(kRanges));
  while (end - p >= 16) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const int i = _mm_cmpestri(ranges, 4, b, 16, _SIDD_UBYTE_OPS | _SIDD_CMP_RANGES | _SIDD_LEAST_SIGNIFICANT);
    if (i != 16) return p + i;
    p += 16;
  }
  return scalarTargetEnd(p, end);
}

// Field names and methods are short; a scalar loop beats a vector setup.
struct Sse42Scan {
  const char* b;
  size_t lim;
  Sse42Scan(const char* buf, size_t l) : b(buf), lim(l) {}
  FEERSUM_ALWAYS_INLINE size_t tokenEnd(size_t pos) { return static_cast<size_t>(scalarTokenEnd(b + pos, b + lim) - b); }
  __attribute__((target("sse4.2"))) inline size_t targetEnd(size_t pos) {
    return static_cast<size_t>(sse42TargetEnd(b + pos, b + lim) - b);
  }
  __attribute__((target("sse4.2"))) inline size_t valueEnd(size_t pos) {
    return static_cast<size_t>(sse42ValueEnd(b + pos, b + lim) - b);
  }
};

// Token bytes (tchar) by nibble lookup: tchar(c) <=> lo[c & 15] & hi[c >> 4].
// Every tchar lies in rows 0x2_ to 0x7_, and each of those six rows gets its
// own bit, so the two 16-entry tables describe the set exactly.
struct NibbleTables {
  alignas(16) uint8_t lo[16];
  alignas(16) uint8_t hi[16];
};

constexpr NibbleTables makeTokenTables() {
  NibbleTables t{};
  for (int h = 2; h <= 7; ++h) {
    const uint8_t bit = static_cast<uint8_t>(1u << (h - 2));
    t.hi[h] = bit;
    for (int l = 0; l < 16; ++l)
      if (kChars.v[h * 16 + l] & kTchar) t.lo[l] = static_cast<uint8_t>(t.lo[l] | bit);
  }
  return t;
}

alignas(16) constexpr NibbleTables kTokenTables = makeTokenTables();

// AVX2: the bytes b[base, base + 64) are classified once into three masks
// (bit i = byte base + i is NOT allowed): token, request-target, field-value.
// Positions at or past lim are marked as not allowed in every class, so a
// query stops at lim at the latest; nothing at or past lim is loaded.
struct Avx2Scan {
  const char* b;
  size_t lim;
  size_t base = ~size_t{0};
  uint64_t not_token = 0, not_target = 0, not_value = 0;

  Avx2Scan(const char* buf, size_t l) : b(buf), lim(l) {}

  __attribute__((target("avx2"))) static inline void classify(__m256i x, uint32_t* tok, uint32_t* tgt,
                                                                             uint32_t* val) {
    const __m256i nib = _mm256_set1_epi8(0x0f);
    const __m256i lo_tab = _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(kTokenTables.lo)));
    const __m256i hi_tab = _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(kTokenTables.hi)));
    const __m256i lo = _mm256_shuffle_epi8(lo_tab, _mm256_and_si256(x, nib));
    const __m256i hi = _mm256_shuffle_epi8(hi_tab, _mm256_and_si256(_mm256_srli_epi16(x, 4), nib));
    const __m256i zero = _mm256_setzero_si256();
    *tok = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_and_si256(lo, hi), zero)));
    // target: c <= 0x20 or c >= 0x7f
    const __m256i le20 = _mm256_cmpeq_epi8(_mm256_min_epu8(x, _mm256_set1_epi8(0x20)), x);
    const __m256i ge7f = _mm256_cmpeq_epi8(_mm256_max_epu8(x, _mm256_set1_epi8(0x7f)), x);
    *tgt = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_or_si256(le20, ge7f)));
    // value: (c <= 0x1f and c != HTAB) or c == 0x7f
    const __m256i le1f = _mm256_cmpeq_epi8(_mm256_min_epu8(x, _mm256_set1_epi8(0x1f)), x);
    const __m256i tab = _mm256_cmpeq_epi8(x, _mm256_set1_epi8(0x09));
    const __m256i del = _mm256_cmpeq_epi8(x, _mm256_set1_epi8(0x7f));
    *val = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_or_si256(_mm256_andnot_si256(tab, le1f), del)));
  }

  __attribute__((target("avx2"))) inline void load(size_t nb) {
    uint32_t t0, g0, v0, t1, g1, v1;
    const size_t avail = lim - nb;
    if (FEERSUM_LIKELY(avail >= 64)) {
      const char* p = b + nb;
      classify(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)), &t0, &g0, &v0);
      classify(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32)), &t1, &g1, &v1);
      not_token = t0 | static_cast<uint64_t>(t1) << 32;
      not_target = g0 | static_cast<uint64_t>(g1) << 32;
      not_value = v0 | static_cast<uint64_t>(v1) << 32;
    } else {
      // The last, partial block: classify the 64 bytes that end at lim
      // (or a zero-padded copy of a buffer shorter than that) and shift
      // the masks so bit 0 is byte nb; bits from lim on are "stop".
      alignas(32) char tail[64];
      const char* p;
      unsigned shift;
      if (lim >= 64) {
        p = b + lim - 64;
        shift = static_cast<unsigned>(64 - avail);
      } else {
        std::memset(tail, 0, sizeof tail);
        std::memcpy(tail, b + nb, avail);
        p = tail;
        shift = 0;
      }
      classify(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)), &t0, &g0, &v0);
      classify(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32)), &t1, &g1, &v1);
      const uint64_t stop = ~uint64_t{0} << avail;  // avail < 64
      not_token = ((t0 | static_cast<uint64_t>(t1) << 32) >> shift) | stop;
      not_target = ((g0 | static_cast<uint64_t>(g1) << 32) >> shift) | stop;
      not_value = ((v0 | static_cast<uint64_t>(v1) << 32) >> shift) | stop;
    }
    base = nb;
  }

  template <int Kind>
  __attribute__((target("avx2"))) inline size_t find(size_t pos) {
    for (;;) {
      if (pos >= lim) return lim;
      const size_t nb = pos & ~size_t{63};
      if (nb != base) load(nb);
      const uint64_t m = (Kind == 0 ? not_token : Kind == 1 ? not_target : not_value) >> (pos - nb);
      if (m) return pos + static_cast<size_t>(__builtin_ctzll(m));
      pos = nb + 64;
    }
  }

  __attribute__((target("avx2"))) inline size_t tokenEnd(size_t pos) { return find<0>(pos); }
  __attribute__((target("avx2"))) inline size_t targetEnd(size_t pos) { return find<1>(pos); }
  __attribute__((target("avx2"))) inline size_t valueEnd(size_t pos) { return find<2>(pos); }
};

#endif  // FEERSUM_X86_SIMD

}  // namespace detail
}  // namespace feersum
