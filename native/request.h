// One request in flight on a connection: what the parser found, how its body
// is being read, and how its response is being framed. Pooled, and named to
// JavaScript by a (slot, generation) id so a stale id can never reach a
// recycled request.
#pragma once

#include <vector>

#include "http_parser.h"
#include "timers.h"
#include "byte_buffer.h"
#include "write_queue.h"

namespace feersum {

class Connection;

enum class BodyMode : uint8_t {
  None,       // no body, or the body is complete
  Buffering,  // read whole into body_buf before the handler runs
  Streaming,  // handed to JavaScript as it arrives
  Discarding, // response already sent; remaining body is read and dropped
};

enum class ResponseState : uint8_t {
  None,       // nothing sent yet
  Streaming,  // head sent, body being written
  Complete,   // everything queued
};

struct Request {
  Request* next;  // connection's FIFO of requests awaiting their response
  Connection* conn;
  uint32_t slot;
  uint32_t gen;

  // From the head.
  Method method;
  uint8_t version_minor;
  bool keep_alive;        // may be cleared by the app (Connection: close) or by limits
  bool expect_continue;
  bool upgrade;
  bool dispatched;        // JavaScript has been given this request
  bool queued;            // in the connection's FIFO awaiting its response
  bool awaiting_written;  // complete, waiting for its bytes to reach the socket
  bool pinned;            // inside a call into JavaScript: may finish but not be freed yet

  // Request body.
  BodyMode body_mode;
  uint64_t body_received;
  ByteBuffer body_buf;    // Buffering mode only

  // Response.
  ResponseState response;
  bool force_http10;
  bool force_http11;
  bool chunked_out;       // framing our own chunks
  bool length_out;        // a declared Content-Length is being enforced
  bool no_body_out;       // HEAD, 1xx, 204, 304: body bytes are dropped
  bool notify;            // JavaScript wants COMPLETE/ABORT for this request
  bool want_drain;        // JavaScript waits for the connection's queue to drain
  bool sent_continue;
  uint64_t out_remaining; // bytes still owed when length_out
  uint64_t end_mark;      // connection output position after this response's last byte

  // Output produced while an earlier pipelined response is still going out.
  OutQueue held;

  // handlerTimeout: armed at dispatch, cancelled when the response starts.
  TimerNode handler_timer;

  uint64_t id() const { return (static_cast<uint64_t>(gen) << 24) | slot; }
};

// Maps ids to live requests. Slots are reused; the generation changes on
// every reuse, so an old id fails lookup instead of aliasing a new request.
class RequestTable {
 public:
  static constexpr uint32_t kSlotBits = 24;

  // Stores r and fills in its slot and gen.
  bool add(Request* r);
  void remove(Request* r);
  Request* find(uint64_t id) const {
    uint32_t slot = static_cast<uint32_t>(id & ((1u << kSlotBits) - 1));
    uint32_t gen = static_cast<uint32_t>(id >> kSlotBits);
    if (slot >= entries_.size()) return nullptr;
    const Entry& e = entries_[slot];
    return e.req && e.gen == gen ? e.req : nullptr;
  }

 private:
  struct Entry {
    Request* req;
    uint32_t gen;
  };
  std::vector<Entry> entries_;
  std::vector<uint32_t> free_;
};

inline bool RequestTable::add(Request* r) {
  uint32_t slot;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
  } else {
    if (entries_.size() >= (1u << kSlotBits)) return false;
    slot = static_cast<uint32_t>(entries_.size());
    entries_.push_back(Entry{nullptr, 0});
  }
  Entry& e = entries_[slot];
  // Generations stay below 2^29 so the id fits a JavaScript number exactly.
  e.gen = (e.gen + 1) & ((1u << 29) - 1);
  e.req = r;
  r->slot = slot;
  r->gen = e.gen;
  return true;
}

inline void RequestTable::remove(Request* r) {
  Entry& e = entries_[r->slot];
  if (e.req != r) return;
  e.req = nullptr;
  free_.push_back(r->slot);
}

}  // namespace feersum
