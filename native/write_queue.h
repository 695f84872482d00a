// Ordered output bytes for one connection (or one pipelined response waiting
// its turn): owned byte chunks for small pieces, references to JS Buffers for
// large ones so they leave with writev without being copied.
#pragma once

#include <node_api.h>
#include <uv.h>

#include "common.h"

namespace feersum {

struct OutChunk {
  OutChunk* next;
  const char* data;
  uint32_t len;  // bytes in the chunk
  uint32_t off;  // bytes already written
  uint32_t cap;  // owned storage capacity; 0 for a referenced Buffer
  napi_ref ref;  // keeps a referenced Buffer alive
};

class OutQueue {
 public:
  OutQueue() = default;
  OutQueue(const OutQueue&) = delete;
  OutQueue& operator=(const OutQueue&) = delete;

  bool empty() const { return head_ == nullptr; }
  size_t bytes() const { return bytes_; }

  // Copies n bytes to the tail. Returns false when out of memory.
  bool appendCopy(const char* p, size_t n);
  // Queues n bytes owned by a JS Buffer; `ref` (may be null when the bytes
  // outlive the queue anyway) is deleted once they are written.
  bool appendRef(const char* p, size_t n, napi_ref ref);
  // Moves every chunk of `other` to the end of this queue.
  void splice(OutQueue& other);

  // Fills up to `max` iovecs from the unwritten bytes; returns the count and
  // adds their size to *total.
  int fillIov(uv_buf_t* iov, int max, size_t* total) const;
  // Drops the first n unwritten bytes, freeing finished chunks.
  void consume(napi_env env, size_t n);
  void clear(napi_env env);

  // Maximum iovecs handed to one writev.
  static constexpr int kMaxIov = 64;

 private:
  static OutChunk* newOwnedChunk(size_t cap);
  static void freeChunk(napi_env env, OutChunk* c);

  OutChunk* head_ = nullptr;
  OutChunk* tail_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace feersum
