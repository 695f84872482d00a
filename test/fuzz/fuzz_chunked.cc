// libFuzzer target: ChunkedDecoder (RFC 9112 section 7.1) over arbitrary
// bytes, fed whole and in pieces.
//
// Input layout: bytes 0-1 seed the generator of piece sizes; the rest is
// the message body as it follows a "Transfer-Encoding: chunked" head.
//
// Differential: feeding the body whole, in pseudo-random pieces (1 to 64
// bytes, or larger when the seed says so), and one byte at a time must give
// the same verdict: the same status (Done / Error / NeedMore at the end), the
// same offset (where the body ended, or the offending byte), the same
// decoded body, bodyBytes() and pendingChunkBytes(). Invariants checked on
// every call: NeedMore consumes the whole piece, nothing is consumed past the
// input, the bytes delivered plus pendingChunkBytes() equal bodyBytes()
// (what the size lines declared), and a finished decoder stays finished. Every piece is an exactly-sized heap
// copy, so a read past it shows up under AddressSanitizer.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "http_parser.h"

using namespace feersum;

namespace {

struct Verdict {
  ChunkedDecoder::Status status = ChunkedDecoder::Status::NeedMore;
  size_t offset = 0;  // total bytes consumed (Done: end of the body; Error: offending byte)
  std::string body;
  uint64_t body_bytes = 0;
  uint64_t pending = 0;  // pendingChunkBytes() at the end
};

void append(void* ctx, const char* data, size_t len) {
  if (len == 0) {
    std::fprintf(stderr, "fuzz_chunked: on_data called with an empty run\n");
    std::abort();
  }
  static_cast<std::string*>(ctx)->append(data, len);
}

const char* name(ChunkedDecoder::Status s) {
  switch (s) {
    case ChunkedDecoder::Status::NeedMore: return "NeedMore";
    case ChunkedDecoder::Status::Done: return "Done";
    case ChunkedDecoder::Status::Error: return "Error";
  }
  return "?";
}

[[noreturn]] void fail(const char* what, const char* run) {
  std::fprintf(stderr, "fuzz_chunked: %s (%s)\n", what, run);
  std::abort();
}

// xorshift32, seeded from the input so a crash reproduces.
struct Rng {
  uint32_t s;
  uint32_t next() {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    return s;
  }
};

// Feeds in[0, len) in pieces whose sizes come from next_size(); stops at
// Done or Error as the connection does.
template <class NextSize>
Verdict run(const char* in, size_t len, NextSize next_size, const char* label) {
  ChunkedDecoder d;
  d.reset();
  Verdict v;
  size_t pos = 0;
  while (pos < len) {
    size_t n = next_size();
    if (n == 0) n = 1;
    if (n > len - pos) n = len - pos;
    std::unique_ptr<char[]> piece(new char[n]);
    std::memcpy(piece.get(), in + pos, n);
    size_t used = ~size_t{0};
    const ChunkedDecoder::Status st = d.feed(piece.get(), n, &used, append, &v.body);
    if (used > n) fail("consumed more than the piece", label);
    if (st == ChunkedDecoder::Status::NeedMore && used != n) fail("NeedMore without consuming the whole piece", label);
    // What the size lines declared = what was delivered + what the current chunk still owes.
    if (st != ChunkedDecoder::Status::Error && v.body.size() + d.pendingChunkBytes() != d.bodyBytes())
      fail("delivered + pendingChunkBytes() != bodyBytes()", label);
    pos += used;
    if (st != ChunkedDecoder::Status::NeedMore) {
      v.status = st;
      // A finished decoder stays finished and consumes nothing more.
      size_t again = ~size_t{0};
      if (d.feed(piece.get(), n, &again, append, &v.body) != st || again != 0) fail("a finished decoder moved on", label);
      break;
    }
  }
  v.offset = pos;
  v.body_bytes = d.bodyBytes();
  v.pending = d.pendingChunkBytes();
  return v;
}

void mustAgree(const Verdict& a, const Verdict& b, const char* label) {
  if (a.status == b.status && a.offset == b.offset && a.body == b.body && a.body_bytes == b.body_bytes &&
      a.pending == b.pending)
    return;
  std::fprintf(stderr,
               "fuzz_chunked: whole vs %s differ:\n  whole: %s offset=%zu body=%zu bytes bodyBytes=%llu\n"
               "  %s: %s offset=%zu body=%zu bytes bodyBytes=%llu\n",
               label, name(a.status), a.offset, a.body.size(), static_cast<unsigned long long>(a.body_bytes), label,
               name(b.status), b.offset, b.body.size(), static_cast<unsigned long long>(b.body_bytes));
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  Rng rng{(static_cast<uint32_t>(data[0]) << 8 | data[1]) * 2654435761u | 1u};
  const bool big = data[0] & 1;
  const char* in = reinterpret_cast<const char*>(data + 2);
  const size_t len = size - 2;

  const Verdict whole = run(in, len, [&] { return len; }, "whole");
  // On Done, every data byte delivered was counted by bodyBytes().
  if (whole.status == ChunkedDecoder::Status::Done && whole.body.size() != whole.body_bytes)
    fail("Done with body bytes != bodyBytes()", "whole");
  if (whole.body.size() > whole.body_bytes) fail("more body bytes delivered than announced", "whole");

  mustAgree(whole, run(in, len, [&] { return 1 + rng.next() % (big ? 1024 : 64); }, "random pieces"), "random pieces");
  mustAgree(whole, run(in, len, [] { return size_t{1}; }, "bytewise"), "bytewise");
  return 0;
}
