// Memory shared by every engine on one event loop (one per Node environment):
// the receive buffer every socket reads into, the cork that gathers all
// output produced while handling one read into a single writev, and scratch
// space for formatting. Connections own bytes only while they have an
// unfinished head or pending output.
#pragma once

#include <node_api.h>
#include <uv.h>

#include "byte_buffer.h"

namespace feersum {

class Connection;

struct Cork {
  static constexpr size_t kSize = 64 * 1024;
  static constexpr int kMaxSegs = 32;
  struct Segment {
    const char* data;
    uint32_t len;
    napi_ref ref;  // null for bytes in `buf`
  };

  Connection* owner = nullptr;
  char* buf = nullptr;
  uint32_t len = 0;
  Segment segs[kMaxSegs];
  int nsegs = 0;

  // Room for n more copied bytes (one more segment at most).
  bool fits(size_t n) const { return len + n <= kSize && nsegs < kMaxSegs; }
  bool fitsRef() const { return nsegs < kMaxSegs; }
  void addCopy(const char* p, size_t n);
  void addRef(const char* p, size_t n, napi_ref ref);
  size_t bytes() const;
  void reset() {
    owner = nullptr;
    len = 0;
    nsegs = 0;
  }
};

struct LoopContext {
  static constexpr size_t kReadBufferSize = 256 * 1024;
  static constexpr size_t kTlsPlainSize = 64 * 1024;

  napi_env env;
  uv_loop_t* loop;
  char* read_buffer;
  char* tls_plain;  // decrypted input, parsed in place like read_buffer
  Cork cork;
  ByteBuffer scratch;         // response heads, head strings for JavaScript
  ByteBuffer header_scratch;  // header blocks read from JavaScript

  // Writes out whatever the cork holds for its owner.
  void flushCork();
  void flushCorkIfOwner(Connection* c) {
    if (cork.owner == c) flushCork();
  }
  // The owner is closing: its corked bytes are dropped.
  void dropCorkIfOwner(Connection* c);

  static LoopContext* forEnv(napi_env env);  // created on first use, freed with the environment
};

}  // namespace feersum
