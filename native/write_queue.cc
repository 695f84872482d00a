// Implementation of OutQueue (see write_queue.h).
#include "write_queue.h"

#include <cstdlib>
#include <cstring>

namespace feersum {

namespace {
constexpr size_t kMinChunk = 512;
constexpr size_t kMaxGrowChunk = 64 * 1024;
}  // namespace

OutChunk* OutQueue::newOwnedChunk(size_t cap) {
  OutChunk* c = static_cast<OutChunk*>(std::malloc(sizeof(OutChunk) + cap));
  if (!c) return nullptr;
  c->next = nullptr;
  c->data = reinterpret_cast<char*>(c + 1);
  c->len = 0;
  c->off = 0;
  c->cap = static_cast<uint32_t>(cap);
  c->ref = nullptr;
  return c;
}

void OutQueue::freeChunk(napi_env env, OutChunk* c) {
  if (c->ref) napi_delete_reference(env, c->ref);
  std::free(c);
}

bool OutQueue::appendCopy(const char* p, size_t n) {
  if (n == 0) return true;
  if (tail_ && tail_->cap > 0 && tail_->cap - tail_->len >= n) {
    std::memcpy(const_cast<char*>(tail_->data) + tail_->len, p, n);
    tail_->len += static_cast<uint32_t>(n);
    bytes_ += n;
    return true;
  }
  // Grow chunk sizes geometrically so a long stream of small writes costs few
  // mallocs, without giving a connection with 100 queued bytes a 64 KiB block.
  size_t cap = tail_ && tail_->cap ? tail_->cap * 2 : kMinChunk;
  if (cap > kMaxGrowChunk) cap = kMaxGrowChunk;
  if (cap < n) cap = n;
  OutChunk* c = newOwnedChunk(cap);
  if (!c) return false;
  std::memcpy(const_cast<char*>(c->data), p, n);
  c->len = static_cast<uint32_t>(n);
  if (tail_) tail_->next = c; else head_ = c;
  tail_ = c;
  bytes_ += n;
  return true;
}

bool OutQueue::appendRef(const char* p, size_t n, napi_ref ref) {
  OutChunk* c = static_cast<OutChunk*>(std::malloc(sizeof(OutChunk)));
  if (!c) return false;
  c->next = nullptr;
  c->data = p;
  c->len = static_cast<uint32_t>(n);
  c->off = 0;
  c->cap = 0;
  c->ref = ref;
  if (tail_) tail_->next = c; else head_ = c;
  tail_ = c;
  bytes_ += n;
  return true;
}

void OutQueue::splice(OutQueue& other) {
  if (!other.head_) return;
  if (tail_) tail_->next = other.head_; else head_ = other.head_;
  tail_ = other.tail_;
  bytes_ += other.bytes_;
  other.head_ = other.tail_ = nullptr;
  other.bytes_ = 0;
}

int OutQueue::fillIov(uv_buf_t* iov, int max, size_t* total) const {
  int n = 0;
  for (OutChunk* c = head_; c && n < max; c = c->next) {
    size_t len = c->len - c->off;
    if (len == 0) continue;
    iov[n++] = uv_buf_init(const_cast<char*>(c->data) + c->off, static_cast<unsigned>(len));
    *total += len;
  }
  return n;
}

void OutQueue::consume(napi_env env, size_t n) {
  bytes_ -= n;
  while (head_) {
    size_t avail = head_->len - head_->off;
    if (n < avail) {
      head_->off += static_cast<uint32_t>(n);
      return;
    }
    n -= avail;
    OutChunk* done = head_;
    head_ = done->next;
    if (!head_) tail_ = nullptr;
    freeChunk(env, done);
  }
}

void OutQueue::clear(napi_env env) {
  while (head_) {
    OutChunk* c = head_;
    head_ = c->next;
    freeChunk(env, c);
  }
  tail_ = nullptr;
  bytes_ = 0;
}

}  // namespace feersum
