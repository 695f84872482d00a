// Connection timeouts driven by one uv_timer per engine. Every timeout kind
// has a fixed duration, so each kind's list stays sorted by deadline when
// nodes are appended at the tail: arming, re-arming and cancelling are O(1)
// and the single uv_timer only ever looks at list heads.
#pragma once

#include <uv.h>

#include "common.h"

namespace feersum {

enum class TimeoutKind : uint8_t {
  Header,     // whole request head must arrive (slowloris)
  Body,       // idle time between request-body reads
  KeepAlive,  // idle connection between requests
  Write,      // no write progress on a client that stopped reading
  Linger,     // draining input after we closed our side
  Handler,    // application deadline for producing a response
  Count
};

struct TimerNode {
  TimerNode* prev = nullptr;
  TimerNode* next = nullptr;
  Millis deadline = 0;
  TimeoutKind kind = TimeoutKind::Count;  // Count = not armed
  void* owner = nullptr;

  bool armed() const { return kind != TimeoutKind::Count; }
};

class Timers {
 public:
  using ExpireFn = void (*)(void* ctx, TimerNode* node, TimeoutKind kind);

  Timers(uv_loop_t* loop, ExpireFn on_expire, void* ctx);
  // The uv_timer is closed asynchronously; call close() and free the owner
  // only after `on_closed` runs.
  void close(uv_close_cb on_closed);

  // Duration in ms for a kind; 0 disables it (arming becomes a no-op).
  void setDuration(TimeoutKind kind, Millis ms);
  Millis duration(TimeoutKind kind) const { return durations_[index(kind)]; }

  // (Re)arms `node` for `kind`, replacing whatever it was armed for.
  void arm(TimerNode* node, TimeoutKind kind);
  // Arms with an explicit deadline; used when a deadline must not move
  // (the header timeout is not extended by each byte).
  void armUntil(TimerNode* node, TimeoutKind kind, Millis deadline);
  void cancel(TimerNode* node);

  Millis now() const { return uv_now(loop_); }

 private:
  struct List {
    TimerNode* head = nullptr;
    TimerNode* tail = nullptr;
  };
  static size_t index(TimeoutKind k) { return static_cast<size_t>(k); }
  static void onTimer(uv_timer_t* t);
  void insertSorted(List& list, TimerNode* node);
  void schedule();
  void expire();

  uv_loop_t* loop_;
  uv_timer_t timer_;
  ExpireFn on_expire_;
  void* ctx_;
  Millis durations_[static_cast<size_t>(TimeoutKind::Count)] = {};
  List lists_[static_cast<size_t>(TimeoutKind::Count)];
  Millis scheduled_for_ = 0;  // 0 = uv_timer not running
};

}  // namespace feersum
