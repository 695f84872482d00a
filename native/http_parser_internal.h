// Internals shared by http_parser.cc, chunked_decoder.cc and the tests:
// byte-class tables and the run-time selection of the vectorised scanners.
// Not part of the engine's contract (that is http_parser.h).
#pragma once

#include <cstddef>
#include <cstdint>

namespace feersum {
namespace detail {

// Byte classes (RFC 9110 section 5.6.2 and RFC 3986).
enum : uint8_t {
  kTchar = 1,     // token character
  kValue = 2,     // allowed inside a field value: HTAB, SP, VCHAR, obs-text
  kVisible = 4,   // VCHAR 0x21-0x7E (request-target bytes)
  kHex = 8,       // HEXDIG
  kDigit = 16,    // DIGIT
  kQdtext = 32,   // qdtext of a quoted-string (HTAB, SP, VCHAR minus '"' and '\\', obs-text)
  kRegName = 64,  // unreserved / sub-delims (reg-name bytes other than pct-encoded)
};

struct CharTable {
  uint8_t v[256];
};

constexpr bool inSet(int c, const char* set) {
  for (; *set; ++set)
    if (static_cast<unsigned char>(*set) == c) return true;
  return false;
}

constexpr CharTable makeCharTable() {
  CharTable t{};
  for (int c = 0; c < 256; ++c) {
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    const bool digit = c >= '0' && c <= '9';
    const bool vchar = c >= 0x21 && c <= 0x7e;
    const bool obs = c >= 0x80;
    uint8_t f = 0;
    if (alpha || digit || inSet(c, "!#$%&'*+-.^_`|~")) f |= kTchar;
    if (c == '\t' || c == ' ' || vchar || obs) f |= kValue;
    if (vchar) f |= kVisible;
    if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) f |= kHex;
    if (digit) f |= kDigit;
    if ((c == '\t' || c == ' ' || vchar || obs) && c != '"' && c != '\\') f |= kQdtext;
    if (alpha || digit || inSet(c, "-._~!$&'()*+,;=")) f |= kRegName;
    t.v[c] = f;
  }
  return t;
}

inline constexpr CharTable kChars = makeCharTable();

inline bool isTchar(unsigned char c) { return kChars.v[c] & kTchar; }
inline bool isValueChar(unsigned char c) { return kChars.v[c] & kValue; }
inline bool isHex(unsigned char c) { return kChars.v[c] & kHex; }
inline bool isDigit(unsigned char c) { return kChars.v[c] & kDigit; }
inline bool isOws(unsigned char c) { return c == ' ' || c == '\t'; }

// Which implementation of the byte scanners parseRequestHead uses.
enum class SimdLevel : uint8_t { Scalar = 0, Sse42 = 1, Avx2 = 2 };

// Best level this CPU supports (resolved once, at load).
SimdLevel detectedSimdLevel();
// Level currently in use.
SimdLevel activeSimdLevel();
// Selects a level for tests and benchmarks; returns false (and changes
// nothing) if the CPU or the build does not support it.
bool setSimdLevel(SimdLevel level);
const char* simdLevelName(SimdLevel level);

// The scanners themselves, for unit tests that compare them directly.
// Each returns the first offset in [pos, len) of buf whose byte is outside
// the allowed set, or len (a scanner is made for buf[0, len) and queried at
// pos, as during a parse):
//   findTokenEnd:  allowed = tchar (methods, field names)
//   findTargetEnd: allowed = 0x21-0x7E (request-target bytes)
//   findValueEnd:  allowed = HTAB, SP, 0x21-0x7E, 0x80-0xFF (field-value bytes)
size_t findTokenEnd(SimdLevel level, const char* buf, size_t len, size_t pos);
size_t findTargetEnd(SimdLevel level, const char* buf, size_t len, size_t pos);
size_t findValueEnd(SimdLevel level, const char* buf, size_t len, size_t pos);

}  // namespace detail

// Test hook: true forces the portable scalar scanners, false restores the
// best level the CPU supports.
void forceScalarParser(bool force);

}  // namespace feersum
