// Implementation of the per-engine timeout lists (see timers.h).
#include "timers.h"

namespace feersum {

Timers::Timers(uv_loop_t* loop, ExpireFn on_expire, void* ctx)
    : loop_(loop), on_expire_(on_expire), ctx_(ctx) {
  uv_timer_init(loop_, &timer_);
  timer_.data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(&timer_));  // connections keep the loop alive, not timers
}

void Timers::close(uv_close_cb on_closed) {
  uv_timer_stop(&timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), on_closed);
}

void Timers::setDuration(TimeoutKind kind, Millis ms) { durations_[index(kind)] = ms; }

void Timers::arm(TimerNode* node, TimeoutKind kind) {
  Millis d = durations_[index(kind)];
  if (d == 0) {
    cancel(node);
    return;
  }
  armUntil(node, kind, now() + d);
}

void Timers::armUntil(TimerNode* node, TimeoutKind kind, Millis deadline) {
  cancel(node);
  node->kind = kind;
  node->deadline = deadline;
  insertSorted(lists_[index(kind)], node);
  if (scheduled_for_ == 0 || deadline < scheduled_for_) schedule();
}

// Appending is the common case (same duration => latest deadline); the walk
// back only happens for explicit deadlines or after a duration change.
void Timers::insertSorted(List& list, TimerNode* node) {
  TimerNode* after = list.tail;
  while (after && after->deadline > node->deadline) after = after->prev;
  node->prev = after;
  node->next = after ? after->next : list.head;
  if (node->next) node->next->prev = node; else list.tail = node;
  if (after) after->next = node; else list.head = node;
}

void Timers::cancel(TimerNode* node) {
  if (!node->armed()) return;
  List& list = lists_[index(node->kind)];
  if (node->prev) node->prev->next = node->next; else list.head = node->next;
  if (node->next) node->next->prev = node->prev; else list.tail = node->prev;
  node->prev = node->next = nullptr;
  node->kind = TimeoutKind::Count;
  // The uv_timer may now fire early and find nothing; that is cheaper than
  // rescheduling on every cancel.
}

void Timers::schedule() {
  Millis earliest = 0;
  for (const List& l : lists_) {
    if (l.head && (earliest == 0 || l.head->deadline < earliest)) earliest = l.head->deadline;
  }
  if (earliest == 0) {
    uv_timer_stop(&timer_);
    scheduled_for_ = 0;
    return;
  }
  Millis n = now();
  uv_timer_start(&timer_, onTimer, earliest > n ? earliest - n : 0, 0);
  scheduled_for_ = earliest;
}

void Timers::onTimer(uv_timer_t* t) {
  Timers* self = static_cast<Timers*>(t->data);
  self->scheduled_for_ = 0;
  self->expire();
  self->schedule();
}

void Timers::expire() {
  uv_update_time(loop_);
  Millis n = now();
  for (size_t k = 0; k < static_cast<size_t>(TimeoutKind::Count); ++k) {
    List& l = lists_[k];
    while (l.head && l.head->deadline <= n) {
      TimerNode* node = l.head;
      cancel(node);
      // The callback may re-arm this or other nodes, or close connections.
      on_expire_(ctx_, node, static_cast<TimeoutKind>(k));
    }
  }
}

}  // namespace feersum
