// The engine: configuration, listeners, the connections they accept, and the
// boundary to JavaScript. JavaScript is entered once per request (dispatch),
// and otherwise only for events a request asked for (body chunks, drain,
// completion, abort); every entry from a libuv callback runs inside one
// callback scope so microtasks run before output is flushed and corked
// responses leave in one write.
#pragma once

#include <node_api.h>
#include <uv.h>

#include <string>
#include <vector>

#include "connection.h"
#include "http_parser.h"
#include "loop_context.h"
#include "pool.h"
#include "request.h"
#include "timers.h"

namespace feersum {

class Listener;

struct EngineConfig {
  ParserLimits limits;
  uint64_t max_body_size = 0;            // 0 = unlimited
  uint32_t body_buffer_size = 64 * 1024; // bodies up to this are read whole before dispatch
  uint32_t max_keepalive_requests = 1000;
  uint32_t max_connections = 0;          // 0 = unlimited
  uint32_t write_high_water = 64 * 1024; // write() returns false above this
  uint32_t max_pipeline = 32;            // requests parsed ahead of their responses
  uint64_t max_write_buffer = 16 * 1024 * 1024;  // output queued per connection before it is dropped
  std::string server_header;             // "Server: ...\r\n" added to responses, or empty
};

// Layout of the Int32Array shared with JavaScript (lib/binding.ts mirrors
// it). The request id and Content-Length are doubles at byte offsets 0 and 8.
enum InfoIndex : int {
  kInfoFlags = 4,
  kInfoListener = 5,
  kInfoRemotePort = 6,
  kInfoMethodOff = 7,
  kInfoMethodLen = 8,
  kInfoTargetOff = 9,
  kInfoTargetLen = 10,
  kInfoPathLen = 11,
  kInfoRemoteOff = 12,
  kInfoRemoteLen = 13,
  kInfoFieldCount = 14,
  kInfoTlsLen = 15,  // TLS values follow the peer address in the head string
  kInfoFields = 16,  // name_off, name_len, value_off, value_len per field
};
enum InfoFlag : int {
  kFlagMethodMask = 0xff,
  kFlagHttp11 = 1 << 8,
  kFlagKeepAlive = 1 << 9,
  kFlagHasBody = 1 << 10,
  kFlagBodyStreaming = 1 << 11,
  kFlagChunked = 1 << 12,
  kFlagExpectContinue = 1 << 13,
  kFlagUpgrade = 1 << 14,
};

class Engine {
 public:
  Engine(napi_env env, napi_value wrapper, napi_value on_request, napi_value on_event);
  ~Engine();

  napi_env env() const { return env_; }
  LoopContext& ctx() { return *ctx_; }
  Timers& timers() { return *timers_; }
  const EngineConfig& config() const { return config_; }
  EngineConfig& mutableConfig() { return config_; }
  HeaderField* fields() { return fields_.data(); }
  void setFieldCapacity(uint32_t n) { fields_.resize(n ? n : 1); }
  bool setInfoArray(napi_value typed_array);
  bool shuttingDown() const { return shutting_down_; }
  // Responses from now on close their connection (shutdown, worker retirement).
  bool draining() const { return draining_ || shutting_down_; }
  void drain(bool on) { draining_ = on; }

  // --- libuv side ---
  // Every libuv callback that may reach JavaScript runs between enter() and
  // leave(); leave() at the outermost level runs microtasks, flushes the
  // cork and delivers queued events.
  void enter() { ++depth_; }
  void leave();
  // Called after each method JavaScript calls on the engine.
  void afterJsCall() {
    if (depth_ == 0) settle();
  }

  Request* newRequest(Connection* c);
  void freeRequest(Request* r) {
    retireRequest(r);
    releaseRequest(r);
  }
  // Its id stops resolving (JavaScript can no longer reach it)...
  void retireRequest(Request* r);
  // ...and its memory goes back to the pool (may be later, see Connection::destroy).
  void releaseRequest(Request* r);
  Request* findRequest(uint64_t id) const { return requests_.find(id); }

  // Hands a request to JavaScript (the one call per request).
  void dispatch(Request* r, Connection* c, const char* base, const RequestHead& head,
                const char* body, size_t body_len);
  // Body chunk / end / abort of a streamed body, delivered at once (input
  // processing is always a safe point).
  void deliverBody(Request* r, ConnEvent ev, const char* data, size_t len);
  // Other events wait for a safe point.
  void queueEvent(ConnEvent ev, Request* r);
  void queueEventId(ConnEvent ev, uint64_t id);
  // Input held by a paused connection is processed at the next safe point.
  void scheduleHeldInput(Connection* c);

  void* allocConnection() { return connection_pool_.allocate(); }
  void releaseConnection(void* p) { connection_pool_.release(p); }
  void connectionOpened(Connection* c);
  void connectionClosed(Connection* c);
  size_t connectionCount() const { return connection_count_; }
  size_t liveRequests() const { return request_pool_.live(); }
  // Tunnels (psgix.io over TLS) are the application's: they are not waited
  // for by gracefulShutdown nor counted against maxConnections.
  void tunnelOpened() { ++tunnels_; }
  void tunnelClosed() {
    --tunnels_;
    maybeFinishShutdown();
  }
  void countTlsHandshake(bool resumed) { ++(resumed ? tls_resumed_ : tls_full_); }
  uint64_t tlsFullHandshakes() const { return tls_full_; }
  uint64_t tlsResumedHandshakes() const { return tls_resumed_; }
  bool overConnectionLimit() const {
    return config_.max_connections != 0 && connection_count_ - tunnels_ > config_.max_connections;
  }

  // --- JavaScript side ---
  int addListener(Listener* l);
  Listener* listener(int index) { return listeners_[index]; }  // null once closed
  size_t listenerCount() const { return listeners_.size(); }
  void unlisten();
  void beginShutdown(napi_value on_done);
  void applyTimeouts(const double seconds[static_cast<int>(TimeoutKind::Count)]);

  static void onTimerExpired(void* ctx, TimerNode* node, TimeoutKind kind);

 private:
  struct PendingEvent {
    uint64_t id;
    ConnEvent ev;
  };
  void settle();
  void ensureScope();
  void closeScope();
  void callJs(napi_ref fn, size_t argc, napi_value* argv);
  void deliverEvents();
  void runHeldInput();
  void maybeFinishShutdown();
  static void onIdle(uv_idle_t* h);
  void startIdle();

  napi_env env_;
  LoopContext* ctx_;
  Timers* timers_;
  EngineConfig config_;
  std::vector<HeaderField> fields_;

  napi_ref wrapper_ref_ = nullptr;
  napi_ref on_request_ = nullptr;
  napi_ref on_event_ = nullptr;
  napi_ref on_shutdown_ = nullptr;
  napi_ref info_ref_ = nullptr;
  int32_t* info_ = nullptr;
  size_t info_len_ = 0;
  napi_async_context async_ctx_ = nullptr;
  napi_callback_scope scope_ = nullptr;
  napi_handle_scope scope_handles_ = nullptr;
  int depth_ = 0;

  Pool<Request> request_pool_;
  Pool<Connection> connection_pool_;
  RequestTable requests_;
  std::vector<Listener*> listeners_;
  Connection* connections_ = nullptr;
  size_t connection_count_ = 0;
  size_t tunnels_ = 0;
  bool shutting_down_ = false;
  bool draining_ = false;
  uint64_t tls_full_ = 0;
  uint64_t tls_resumed_ = 0;

  std::vector<PendingEvent> events_;
  std::vector<Connection*> held_input_;
  uv_idle_t* idle_ = nullptr;
  bool idle_active_ = false;
};

}  // namespace feersum
