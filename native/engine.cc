// Implementation of Engine (see engine.h): JavaScript entry points, the
// safe points where deferred work runs, and graceful shutdown.
#include "engine.h"

#include <algorithm>
#include <cstring>

#include "listener.h"

namespace feersum {

namespace {

napi_ref makeRef(napi_env env, napi_value v) {
  napi_ref ref = nullptr;
  napi_create_reference(env, v, 1, &ref);
  return ref;
}

}  // namespace

Engine::Engine(napi_env env, napi_value wrapper, napi_value on_request, napi_value on_event)
    : env_(env), ctx_(LoopContext::forEnv(env)) {
  timers_ = new Timers(ctx_->loop, onTimerExpired, this);
  static const double kDefaults[static_cast<int>(TimeoutKind::Count)] = {
      10,   // Header
      60,   // Body
      75,   // KeepAlive
      60,   // Write
      2,    // Linger
      0,    // Handler
  };
  applyTimeouts(kDefaults);
  fields_.resize(config_.limits.max_headers);
  wrapper_ref_ = makeRef(env, wrapper);
  on_request_ = makeRef(env, on_request);
  on_event_ = makeRef(env, on_event);
  napi_value name;
  napi_create_string_utf8(env, "feersum.request", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, wrapper, name, &async_ctx_);
  idle_ = new uv_idle_t;
  uv_idle_init(ctx_->loop, idle_);
  idle_->data = this;
}

Engine::~Engine() {
  // Engines live as long as their JavaScript wrapper, which is held for the
  // life of the process; this runs at environment teardown.
  unlisten();
  for (Connection* c = connections_; c;) {
    Connection* next = c->next;
    c->destroy();
    c = next;
  }
  napi_async_destroy(env_, async_ctx_);
  for (napi_ref r : {wrapper_ref_, on_request_, on_event_, on_shutdown_, info_ref_})
    if (r) napi_delete_reference(env_, r);
  timers_->close([](uv_handle_t* h) { delete static_cast<Timers*>(h->data); });
  uv_close(reinterpret_cast<uv_handle_t*>(idle_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_idle_t*>(h); });
}

bool Engine::setInfoArray(napi_value typed_array) {
  napi_typedarray_type type;
  size_t length;
  void* data;
  napi_value ab;
  size_t offset;
  if (napi_get_typedarray_info(env_, typed_array, &type, &length, &data, &ab, &offset) != napi_ok ||
      type != napi_int32_array || length < kInfoFields + 4)
    return false;
  if (info_ref_) napi_delete_reference(env_, info_ref_);
  info_ref_ = makeRef(env_, typed_array);
  info_ = static_cast<int32_t*>(data);
  info_len_ = length;
  return true;
}

void Engine::applyTimeouts(const double seconds[static_cast<int>(TimeoutKind::Count)]) {
  for (int k = 0; k < static_cast<int>(TimeoutKind::Count); ++k) {
    double s = seconds[k];
    if (s < 0) continue;  // unchanged
    timers_->setDuration(static_cast<TimeoutKind>(k), static_cast<Millis>(s * 1000 + 0.5));
  }
}

// ---------------------------------------------------------------- safe points

void Engine::ensureScope() {
  if (scope_) return;
  napi_open_handle_scope(env_, &scope_handles_);
  napi_value resource;
  napi_get_reference_value(env_, wrapper_ref_, &resource);
  napi_open_callback_scope(env_, resource, async_ctx_, &scope_);
}

// Closing the callback scope runs process.nextTick callbacks and microtasks:
// responses from async handlers that resolved meanwhile land in the cork
// before it is flushed.
void Engine::closeScope() {
  if (!scope_) return;
  napi_close_callback_scope(env_, scope_);
  scope_ = nullptr;
  napi_close_handle_scope(env_, scope_handles_);
  scope_handles_ = nullptr;
}

void Engine::leave() {
  if (depth_ > 1) {
    --depth_;
    return;
  }
  for (;;) {
    closeScope();
    ctx_->flushCork();
    if (!held_input_.empty()) {
      runHeldInput();
      continue;
    }
    if (events_.empty()) break;
    deliverEvents();
  }
  --depth_;
  if (idle_active_) {
    uv_idle_stop(idle_);
    idle_active_ = false;
  }
}

void Engine::settle() {
  ctx_->flushCork();
  if (!events_.empty() || !held_input_.empty()) startIdle();
}

void Engine::startIdle() {
  if (idle_active_) return;
  idle_active_ = true;
  uv_idle_start(idle_, onIdle);
}

void Engine::onIdle(uv_idle_t* h) {
  Engine* e = static_cast<Engine*>(h->data);
  e->enter();
  e->leave();  // runs the held input and events
}

void Engine::callJs(napi_ref fn_ref, size_t argc, napi_value* argv) {
  napi_value fn, recv;
  napi_get_reference_value(env_, fn_ref, &fn);
  napi_get_undefined(env_, &recv);
  if (napi_call_function(env_, recv, fn, argc, argv, nullptr) == napi_pending_exception) {
    // The JavaScript layer catches application errors itself; anything that
    // still escapes is a bug there and is reported like any uncaught error.
    napi_value exc;
    napi_get_and_clear_last_exception(env_, &exc);
    napi_fatal_exception(env_, exc);
  }
}

void Engine::queueEvent(ConnEvent ev, Request* r) { queueEventId(ev, r ? r->id() : 0); }

void Engine::queueEventId(ConnEvent ev, uint64_t id) {
  events_.push_back(PendingEvent{id, ev});
  if (depth_ == 0) startIdle();
}

void Engine::deliverEvents() {
  ensureScope();
  std::vector<PendingEvent> batch;
  batch.swap(events_);
  for (const PendingEvent& pe : batch) {
    napi_handle_scope hs;
    napi_open_handle_scope(env_, &hs);
    napi_value argv[2];
    napi_create_int32(env_, static_cast<int32_t>(pe.ev), &argv[0]);
    napi_create_double(env_, static_cast<double>(pe.id), &argv[1]);
    if (pe.ev == ConnEvent::ShutdownDone) {
      if (on_shutdown_) {
        napi_ref fn = on_shutdown_;
        on_shutdown_ = nullptr;
        shutting_down_ = false;  // the engine may listen again
        callJs(fn, 0, nullptr);
        napi_delete_reference(env_, fn);
      }
    } else {
      callJs(on_event_, 2, argv);
    }
    napi_close_handle_scope(env_, hs);
  }
}

void Engine::scheduleHeldInput(Connection* c) {
  if (c->held_scheduled) return;
  c->held_scheduled = true;
  held_input_.push_back(c);
  if (depth_ == 0) startIdle();
}

void Engine::runHeldInput() {
  std::vector<Connection*> batch;
  batch.swap(held_input_);
  for (Connection* c : batch) {
    c->held_scheduled = false;
    if (!c->closed()) c->processHeldInput();
  }
}

// ---------------------------------------------------------------- requests

Request* Engine::newRequest(Connection* c) {
  void* mem = request_pool_.allocate();
  if (!mem) return nullptr;
  Request* r = new (mem) Request();
  r->conn = c;
  if (!requests_.add(r)) {
    r->~Request();
    request_pool_.release(mem);
    return nullptr;
  }
  return r;
}

void Engine::retireRequest(Request* r) {
  timers_->cancel(&r->handler_timer);
  requests_.remove(r);
}

void Engine::releaseRequest(Request* r) {
  r->held.clear(env_);
  r->~Request();
  request_pool_.release(r);
}

void Engine::dispatch(Request* r, Connection* c, const char* base, const RequestHead& h,
                      const char* body, size_t body_len) {
  r->dispatched = true;
  if (timers_->duration(TimeoutKind::Handler)) {
    r->handler_timer.owner = r;
    timers_->arm(&r->handler_timer, TimeoutKind::Handler);
  }
  int32_t* info = info_;
  double* numbers = reinterpret_cast<double*>(info);
  numbers[0] = static_cast<double>(r->id());
  numbers[1] = h.framing == BodyFraming::Length ? static_cast<double>(h.content_length) : -1;
  int flags = static_cast<int>(h.method);
  if (h.version_minor == 1) flags |= kFlagHttp11;
  if (r->keep_alive) flags |= kFlagKeepAlive;
  if (h.framing != BodyFraming::None) flags |= kFlagHasBody;
  if (r->body_mode == BodyMode::Streaming) flags |= kFlagBodyStreaming;
  if (h.framing == BodyFraming::Chunked) flags |= kFlagChunked;
  if (h.expect_continue) flags |= kFlagExpectContinue;
  if (h.upgrade) flags |= kFlagUpgrade;
  info[kInfoFlags] = flags;
  info[kInfoListener] = c->listener_index;
  info[kInfoRemotePort] = c->remote_port;
  info[kInfoMethodOff] = static_cast<int32_t>(h.method_off);
  info[kInfoMethodLen] = static_cast<int32_t>(h.method_len);
  info[kInfoTargetOff] = static_cast<int32_t>(h.target_off);
  info[kInfoTargetLen] = static_cast<int32_t>(h.target_len);
  info[kInfoPathLen] = static_cast<int32_t>(h.path_len);
  uint32_t n = h.num_fields;
  size_t max_fields = (info_len_ - kInfoFields) / 4;
  if (n > max_fields) n = static_cast<uint32_t>(max_fields);
  info[kInfoFieldCount] = static_cast<int32_t>(n);
  int32_t* f = info + kInfoFields;
  for (uint32_t i = 0; i < n; ++i, f += 4) {
    f[0] = static_cast<int32_t>(h.fields[i].name_off);
    f[1] = static_cast<int32_t>(h.fields[i].name_len);
    f[2] = static_cast<int32_t>(h.fields[i].value_off);
    f[3] = static_cast<int32_t>(h.fields[i].value_len);
  }
  // One string carries the whole head plus the peer address; JavaScript
  // slices it (cheap substrings) instead of this side creating a string per
  // header.
  ByteBuffer& s = ctx_->scratch;
  s.clear();
  s.append(base, h.head_len);
  s.append(c->remote_addr, c->remote_addr_len);
  info[kInfoRemoteOff] = static_cast<int32_t>(h.head_len);
  info[kInfoRemoteLen] = c->remote_addr_len;
  const ByteBuffer& tls = c->tlsEnv();
  s.append(tls.data(), tls.size());
  info[kInfoTlsLen] = static_cast<int32_t>(tls.size());

  ensureScope();
  napi_handle_scope hs;
  napi_open_handle_scope(env_, &hs);
  napi_value argv[2];
  napi_create_string_latin1(env_, s.data(), s.size(), &argv[0]);
  if (body) napi_create_buffer_copy(env_, body_len, body, nullptr, &argv[1]);
  else napi_get_undefined(env_, &argv[1]);
  callJs(on_request_, 2, argv);
  napi_close_handle_scope(env_, hs);
}

void Engine::deliverBody(Request* r, ConnEvent ev, const char* data, size_t len) {
  ensureScope();
  napi_handle_scope hs;
  napi_open_handle_scope(env_, &hs);
  napi_value argv[3];
  napi_create_int32(env_, static_cast<int32_t>(ev), &argv[0]);
  napi_create_double(env_, static_cast<double>(r->id()), &argv[1]);
  if (data) napi_create_buffer_copy(env_, len, data, nullptr, &argv[2]);
  else napi_get_undefined(env_, &argv[2]);
  callJs(on_event_, 3, argv);
  napi_close_handle_scope(env_, hs);
}

// ---------------------------------------------------------------- connections

void Engine::connectionOpened(Connection* c) {
  c->prev = nullptr;
  c->next = connections_;
  if (connections_) connections_->prev = c;
  connections_ = c;
  ++connection_count_;
}

void Engine::connectionClosed(Connection* c) {
  if (c->prev) c->prev->next = c->next; else connections_ = c->next;
  if (c->next) c->next->prev = c->prev;
  --connection_count_;  // tunnelClosed() (from the connection's onClose) runs before this
  if (c->held_scheduled) held_input_.erase(std::remove(held_input_.begin(), held_input_.end(), c), held_input_.end());
  maybeFinishShutdown();
}

void Engine::onTimerExpired(void* ctx, TimerNode* node, TimeoutKind kind) {
  Engine* e = static_cast<Engine*>(ctx);
  e->enter();
  if (kind == TimeoutKind::Handler) {
    Request* r = static_cast<Request*>(node->owner);
    r->conn->answerInsteadOfApp(r, 503, "no response within handlerTimeout");
  } else {
    static_cast<Connection*>(node->owner)->onTimeout(node, kind);
  }
  e->leave();
}

// ---------------------------------------------------------------- listeners, shutdown

int Engine::addListener(Listener* l) {
  listeners_.push_back(l);
  l->index = static_cast<int>(listeners_.size() - 1);
  return l->index;
}

void Engine::unlisten() {
  for (Listener*& l : listeners_) {
    if (l) l->close();
    l = nullptr;  // indexes stay stable for connections still open
  }
}

void Engine::beginShutdown(napi_value on_done) {
  if (on_shutdown_) napi_delete_reference(env_, on_shutdown_);
  on_shutdown_ = makeRef(env_, on_done);
  shutting_down_ = true;
  unlisten();
  for (Connection* c = connections_; c;) {
    Connection* next = c->next;  // closing may unlink c only in its close callback
    c->closeWhenIdle();
    c = next;
  }
  maybeFinishShutdown();
}

void Engine::maybeFinishShutdown() {
  if (shutting_down_ && on_shutdown_ && connection_count_ == tunnels_) queueEventId(ConnEvent::ShutdownDone, 0);
}

}  // namespace feersum
