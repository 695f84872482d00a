// A growable byte buffer for formatting (response heads, scratch copies).
#pragma once

#include <cstdlib>
#include <cstring>

#include "common.h"

namespace feersum {

class ByteBuffer {
 public:
  ByteBuffer() = default;
  ByteBuffer(const ByteBuffer&) = delete;
  ByteBuffer& operator=(const ByteBuffer&) = delete;
  ~ByteBuffer() { std::free(data_); }

  char* data() { return data_; }
  const char* data() const { return data_; }
  size_t size() const { return size_; }
  void clear() { size_ = 0; }
  void resize(size_t n) { size_ = n; }  // n <= size() or after reserve()

  bool reserve(size_t n) {
    if (n <= cap_) return true;
    size_t cap = cap_ ? cap_ : 256;
    while (cap < n) cap *= 2;
    char* p = static_cast<char*>(std::realloc(data_, cap));
    if (!p) return false;
    data_ = p;
    cap_ = cap;
    return true;
  }
  // Space for n more bytes; returns the write position (commit with resize).
  char* grow(size_t n) { return reserve(size_ + n) ? data_ + size_ : nullptr; }

  bool append(const char* p, size_t n) {
    if (n == 0) return true;
    if (!reserve(size_ + n)) return false;
    std::memcpy(data_ + size_, p, n);
    size_ += n;
    return true;
  }
  template <size_t N>
  bool appendLiteral(const char (&s)[N]) { return append(s, N - 1); }
  bool appendUint(uint64_t v);
  bool appendHex(uint64_t v);

  // Gives the memory back (idle connections keep nothing).
  void release() {
    std::free(data_);
    data_ = nullptr;
    size_ = cap_ = 0;
  }

 private:
  char* data_ = nullptr;
  size_t size_ = 0;
  size_t cap_ = 0;
};

inline bool ByteBuffer::appendUint(uint64_t v) {
  char tmp[20];
  int n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  char* out = grow(n);
  if (!out) return false;
  for (int i = 0; i < n; ++i) out[i] = tmp[n - 1 - i];
  size_ += n;
  return true;
}

inline bool ByteBuffer::appendHex(uint64_t v) {
  static const char kDigits[] = "0123456789abcdef";
  char tmp[16];
  int n = 0;
  do {
    tmp[n++] = kDigits[v & 15];
    v >>= 4;
  } while (v);
  char* out = grow(n);
  if (!out) return false;
  for (int i = 0; i < n; ++i) out[i] = tmp[n - 1 - i];
  size_ += n;
  return true;
}

}  // namespace feersum
