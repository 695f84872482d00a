// Implementation of Connection (see connection.h): input, request lifecycle,
// output ordering and the close logic.
#include "connection.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "engine.h"
#include "loop_context.h"
#include "proxy_protocol.h"
#include "response.h"

namespace feersum {

namespace {
// Input held while parsing is paused (pipelined requests beyond the limit,
// bytes after an Upgrade request) is capped; past it reading stops.
constexpr uint32_t kHeldInputCap = 64 * 1024;
// An unread body left after an early response is read and dropped up to
// this much, so the connection can stay open; past it the connection closes.
constexpr uint64_t kMaxDiscard = 1024 * 1024;
}  // namespace

Connection::Connection(Engine* engine, int li) : listener_index(li), engine_(engine) {
  remote_addr[0] = '\0';
  read_timer.owner = this;
  write_timer.owner = this;
}

Connection* Connection::create(Engine* engine, int listener_index, bool is_pipe) {
  void* mem = engine->allocConnection();
  if (!mem) return nullptr;
  Connection* c = new (mem) Connection(engine, listener_index);
  c->is_pipe_ = is_pipe;
  uv_loop_t* loop = engine->ctx().loop;
  if (is_pipe) uv_pipe_init(loop, &c->pipe_, 0);
  else uv_tcp_init(loop, &c->tcp_);
  c->handle_.data = c;
  engine->connectionOpened(c);
  return c;
}

int Connection::accept(uv_stream_t* server, bool proxy_protocol) {
  int r = uv_accept(server, &stream_);
  if (r != 0) return r;
  awaiting_proxy_ = proxy_protocol;
  if (!is_pipe_) {
    uv_tcp_nodelay(&tcp_, 1);
    sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
      if (ss.ss_family == AF_INET) {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        uv_ip4_name(a, remote_addr, sizeof remote_addr);
        remote_port = ntohs(a->sin_port);
      } else if (ss.ss_family == AF_INET6) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
          // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; report a.b.c.d.
          inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], remote_addr, sizeof remote_addr);
        } else {
          uv_ip6_name(a, remote_addr, sizeof remote_addr);
        }
        remote_port = ntohs(a->sin6_port);
      }
      remote_addr_len = static_cast<uint8_t>(std::strlen(remote_addr));
    }
  }
  // The header deadline starts at accept: a client that connects and sends
  // nothing is a slowloris too.
  engine_->timers().arm(&read_timer, TimeoutKind::Header);
  head_timer_running_ = true;
  updateReading();
  return 0;
}

int Connection::fileno() const {
  uv_os_fd_t fd = -1;
  uv_fileno(&handle_, &fd);
  return fd;
}

// ---------------------------------------------------------------- input

void Connection::onAlloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  Connection* c = static_cast<Connection*>(h->data);
  if (c->inbuf_len_ == 0 || c->lingering_) {
    LoopContext& ctx = c->engine_->ctx();
    *buf = uv_buf_init(ctx.read_buffer, LoopContext::kReadBufferSize);
    return;
  }
  // An unfinished head continues in the connection's own buffer, so a head
  // arriving in many small reads is appended, never copied again.
  uint32_t want = c->inbuf_len_ + 4096;
  if (want > c->inbuf_cap_) {
    uint32_t cap = c->inbuf_cap_ * 2;
    if (cap < want) cap = want;
    char* p = static_cast<char*>(std::realloc(c->inbuf_, cap));
    if (!p) {
      *buf = uv_buf_init(nullptr, 0);  // libuv reports UV_ENOBUFS
      return;
    }
    c->inbuf_ = p;
    c->inbuf_cap_ = cap;
  }
  *buf = uv_buf_init(c->inbuf_ + c->inbuf_len_, c->inbuf_cap_ - c->inbuf_len_);
}

void Connection::onRead(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  Connection* c = static_cast<Connection*>(s->data);
  Engine* e = c->engine_;
  e->enter();
  c->readSocket(nread, buf);
  e->leave();
}

void Connection::readSocket(ssize_t nread, const uv_buf_t* buf) {
  if (nread == 0) return;
  if (nread < 0) {
    handleEof(static_cast<int>(nread));
    return;
  }
  if (lingering_ || closed_) return;  // draining before close: input is dropped
  in_process_ = true;
  if (inbuf_len_ > 0 && buf->base == inbuf_ + inbuf_len_) {
    inbuf_len_ += static_cast<uint32_t>(nread);
    size_t used = process(inbuf_, inbuf_len_);
    keepUnconsumed(inbuf_, inbuf_len_, used);
  } else {
    size_t used = process(buf->base, static_cast<size_t>(nread));
    keepUnconsumed(buf->base, static_cast<size_t>(nread), used);
  }
  in_process_ = false;
  updateReading();
}

void Connection::processHeldInput() {
  if (closed_ || lingering_ || inbuf_len_ == 0 || in_process_) return;
  in_process_ = true;
  size_t used = process(inbuf_, inbuf_len_);
  keepUnconsumed(inbuf_, inbuf_len_, used);
  in_process_ = false;
  updateReading();
}

// Keeps the bytes process() could not use yet, in the connection's own
// buffer; frees that buffer when nothing is left so idle connections hold
// no input memory.
void Connection::keepUnconsumed(const char* data, size_t len, size_t used) {
  if (closed_) return;
  size_t rest = len - used;
  if (rest == 0) {
    if (inbuf_) {
      std::free(inbuf_);
      inbuf_ = nullptr;
      inbuf_cap_ = 0;
    }
    inbuf_len_ = 0;
    return;
  }
  if (data == inbuf_) {
    if (used) std::memmove(inbuf_, inbuf_ + used, rest);
    inbuf_len_ = static_cast<uint32_t>(rest);
    return;
  }
  uint32_t cap = rest < 4096 ? 4096 : static_cast<uint32_t>(rest);
  char* p = static_cast<char*>(std::malloc(cap));
  if (!p) {
    destroy();
    return;
  }
  std::memcpy(p, data + used, rest);
  std::free(inbuf_);
  inbuf_ = p;
  inbuf_cap_ = cap;
  inbuf_len_ = static_cast<uint32_t>(rest);
}

bool Connection::parsingBlocked() const {
  return stop_parsing_ || error_status_ != 0 || in_flight_ >= engine_->config().max_pipeline;
}

size_t Connection::process(const char* data, size_t len) {
  proc_data_ = data;
  proc_len_ = len;
  size_t pos = 0;
  while (pos < len && !closed_ && !lingering_) {
    if (FEERSUM_UNLIKELY(awaiting_proxy_)) {
      if (!readProxyHeader(data + pos, len - pos, &pos)) break;
      continue;
    }
    if (body_req_) {
      pos += readBody(data + pos, len - pos);
      continue;
    }
    if (parsingBlocked()) break;
    if (!head_timer_running_ && in_flight_ == 0) {
      engine_->timers().arm(&read_timer, TimeoutKind::Header);
      head_timer_running_ = true;
    }
    RequestHead head;
    head.fields = engine_->fields();
    ParseResult res = parseRequestHead(data + pos, len - pos, &scanned_, engine_->config().limits, &head);
    if (res.status == ParseStatus::Partial) break;
    if (res.status == ParseStatus::Error) {
      failRequest(httpStatus(res.error), describe(res.error));
      break;
    }
    scanned_ = 0;
    if (head_timer_running_) {
      engine_->timers().cancel(&read_timer);
      head_timer_running_ = false;
    }
    markConsumed(data + pos + head.head_len);
    size_t body_used = startRequest(data + pos, head, len - pos - head.head_len);
    pos += head.head_len + body_used;
  }
  return pos;
}

// JavaScript may complete r during the call; r stays allocated (pinned)
// until the caller is done with it. Returns false when the connection
// closed meanwhile, in which case r is gone.
bool Connection::dispatchPinned(Request* r, const char* base, const RequestHead& head, const char* body,
                                size_t body_len) {
  r->pinned = true;
  engine_->dispatch(r, this, base, head, body, body_len);
  if (closed_) return false;
  r->pinned = false;
  return true;
}

// A PROXY listener's connection starts with the balancer's header naming the
// real client; anything else (or a malformed header) closes the connection.
// The header deadline armed at accept bounds the wait.
bool Connection::readProxyHeader(const char* data, size_t len, size_t* pos) {
  ProxyHeader ph;
  size_t used = 0;
  switch (parseProxyHeader(data, len, &used, &ph)) {
    case ProxyStatus::Partial:
      return false;
    case ProxyStatus::Invalid:
      destroy();
      return false;
    case ProxyStatus::Complete:
      break;
  }
  if (ph.has_source) {
    std::memcpy(remote_addr, ph.source, ph.source_len + 1);
    remote_addr_len = ph.source_len;
    remote_port = ph.source_port;
  }
  awaiting_proxy_ = false;
  *pos += used;
  return true;
}

// Creates the request for a parsed head and decides how its body is read.
// Returns how many bytes after the head it consumed (a body that was
// already complete in this read).
size_t Connection::startRequest(const char* base, const RequestHead& head, size_t avail) {
  const EngineConfig& cfg = engine_->config();
  if (cfg.max_body_size && head.framing == BodyFraming::Length && head.content_length > cfg.max_body_size) {
    failRequest(413, "request body larger than maxBodySize");
    return 0;
  }
  Request* r = engine_->newRequest(this);
  if (!r) {
    failRequest(503, "out of memory");
    return 0;
  }
  r->method = head.method;
  r->version_minor = head.version_minor;
  r->keep_alive = head.keep_alive && !engine_->shuttingDown() && !peer_ended_;
  r->expect_continue = head.expect_continue;
  r->upgrade = head.upgrade;
  ++requests_;
  if (cfg.max_keepalive_requests && requests_ >= cfg.max_keepalive_requests) r->keep_alive = false;
  // Nothing after a non-keep-alive request is read; nothing after an
  // Upgrade/CONNECT request is parsed until its response shows whether the
  // connection stays HTTP.
  if (!r->keep_alive || r->upgrade) stop_parsing_ = true;

  if (req_tail_) req_tail_->next = r; else req_head_ = r;
  req_tail_ = r;
  r->queued = true;
  ++in_flight_;

  if (head.framing == BodyFraming::None) {
    if (dispatchPinned(r, base, head, nullptr, 0)) maybeFree(r);
    return 0;
  }

  body_req_ = r;
  body_chunked_ = head.framing == BodyFraming::Chunked;
  body_remaining_ = head.content_length;
  if (body_chunked_) chunked_.reset();

  if (!body_chunked_ && head.content_length <= cfg.body_buffer_size) {
    if (avail >= head.content_length) {
      // The whole body is in this read: dispatch straight from the buffer.
      markConsumed(base + head.head_len + head.content_length);
      body_req_ = nullptr;
      r->body_mode = BodyMode::None;
      if (dispatchPinned(r, base, head, base + head.head_len, head.content_length)) maybeFree(r);
      return head.content_length;
    }
    r->body_mode = BodyMode::Buffering;
    r->body_buf.reserve(head.content_length);
  } else if (body_chunked_ && cfg.body_buffer_size > 0) {
    // Chunked bodies are buffered up to bodyBufferSize too; a larger one
    // switches to streaming when it outgrows the buffer.
    r->body_mode = BodyMode::Buffering;
  } else {
    r->body_mode = BodyMode::Streaming;
  }

  if (r->body_mode == BodyMode::Buffering) {
    if (!saved_head_.append(base, head.head_len)) {
      failRequest(503, "out of memory");
      return 0;
    }
    if (r->expect_continue) sendContinue(r);
  } else {
    r->notify = true;  // JavaScript's body stream must hear about aborts
    if (!dispatchPinned(r, base, head, nullptr, 0)) return 0;
    // Still the body request (answering early switches it to discarding).
    if (r->expect_continue && r->body_mode == BodyMode::Streaming) sendContinue(r);
  }
  engine_->timers().arm(&read_timer, TimeoutKind::Body);
  return 0;
}

void Connection::onChunkData(void* ctx, const char* data, size_t len) {
  Connection* c = static_cast<Connection*>(ctx);
  c->bodyData(data, len);
}

// Routes body bytes by the request's body mode; may switch a chunked body
// from buffering to streaming once it outgrows bodyBufferSize.
void Connection::bodyData(const char* data, size_t len) {
  Request* r = body_req_;
  if (!r || closed_) return;
  r->body_received += len;
  const EngineConfig& cfg = engine_->config();
  if (cfg.max_body_size && r->body_received > cfg.max_body_size) {
    body_reject_status_ = 413;
    return;
  }
  if (r->body_mode == BodyMode::Discarding) {
    discarded_ += len;
    if (discarded_ > kMaxDiscard) body_reject_status_ = 400;
    return;
  }
  switch (r->body_mode) {
    case BodyMode::Buffering:
      if (r->body_buf.size() + len <= cfg.body_buffer_size) {
        r->body_buf.append(data, len);
        return;
      }
      // Outgrew the buffer: dispatch now and stream the rest.
      r->body_mode = BodyMode::Streaming;
      r->notify = true;
      r->pinned = true;
      dispatchSaved(r, true);
      if (closed_) return;
      r->pinned = false;
      if (r->body_mode != BodyMode::Streaming) return;
      if (r->body_buf.size()) engine_->deliverBody(r, ConnEvent::BodyData, r->body_buf.data(), r->body_buf.size());
      r->body_buf.release();
      if (closed_ || r->body_mode != BodyMode::Streaming) return;
      engine_->deliverBody(r, ConnEvent::BodyData, data, len);
      return;
    case BodyMode::Streaming:
      engine_->deliverBody(r, ConnEvent::BodyData, data, len);
      return;
    default:
      return;  // Discarding
  }
}

size_t Connection::readBody(const char* data, size_t len) {
  Request* r = body_req_;
  size_t used;
  bool done;
  if (body_chunked_) {
    ChunkedDecoder::Status st = chunked_.feed(data, len, &used, onChunkData, this);
    if (closed_) return len;
    if (st == ChunkedDecoder::Status::Error) {
      rejectBody(r, 400, "malformed chunked request body");
      return len;
    }
    done = st == ChunkedDecoder::Status::Done;
  } else {
    used = len < body_remaining_ ? len : static_cast<size_t>(body_remaining_);
    body_remaining_ -= used;
    bodyData(data, used);
    if (closed_) return len;
    done = body_remaining_ == 0;
  }
  if (body_reject_status_) {
    int status = body_reject_status_;
    body_reject_status_ = 0;
    rejectBody(r, status, status == 413 ? "request body larger than maxBodySize"
                                        : "unread request body too large to discard");
    return len;
  }
  if (done) {
    markConsumed(data + used);
    finishBody(r);
  } else if (r->body_mode != BodyMode::Discarding && !(paused_ & kPauseApp)) {
    engine_->timers().arm(&read_timer, TimeoutKind::Body);
  }
  return used;
}

// A body that can never be accepted (malformed, too large): a request that
// JavaScript has not seen is dropped and answered with `status`; one it has
// seen gets the error as its response if none has started, else the
// connection is closed. Either way the connection closes afterwards.
void Connection::rejectBody(Request* r, int status, const char* reason) {
  abortBody(r);
  if (!r->dispatched) {
    // Not dispatched means still buffering: it is the newest request.
    Request** pp = &req_head_;
    Request* prev = nullptr;
    while (*pp && *pp != r) prev = *pp, pp = &(*pp)->next;
    if (*pp) {
      *pp = r->next;
      if (req_tail_ == r) req_tail_ = prev;
      r->queued = false;
      --in_flight_;
    }
    engine_->freeRequest(r);
    failRequest(status, reason);
    return;
  }
  answerInsteadOfApp(r, status, reason);
}

void Connection::answerInsteadOfApp(Request* r, int status, const char* reason) {
  if (closed_) return;
  if (body_req_ == r) abortBody(r);
  if (r->response != ResponseState::None) {
    destroy();
    return;
  }
  if (r->dispatched) engine_->queueEvent(ConnEvent::Abort, r);
  r->notify = false;  // the Abort above is all JavaScript hears
  stop_parsing_ = true;
  r->keep_alive = false;
  error_status_ = static_cast<uint16_t>(status);
  error_reason_ = reason;
  writeErrorResponseFor(r);
}

void Connection::finishBody(Request* r) {
  body_req_ = nullptr;
  engine_->timers().cancel(&read_timer);
  paused_ &= ~kPauseApp;
  BodyMode mode = r->body_mode;
  r->body_mode = BodyMode::None;
  r->pinned = true;
  if (mode == BodyMode::Buffering) dispatchSaved(r, false);
  else if (mode == BodyMode::Streaming) engine_->deliverBody(r, ConnEvent::BodyEnd, nullptr, 0);
  if (closed_) return;
  r->pinned = false;
  maybeFree(r);
  becameIdleMaybe();
}

// Drops a body that will never complete (malformed, too large) and tells a
// streaming consumer.
void Connection::abortBody(Request* r) {
  if (body_req_ != r) return;
  body_req_ = nullptr;
  BodyMode mode = r->body_mode;
  r->body_mode = BodyMode::None;
  r->body_buf.release();
  if (mode == BodyMode::Streaming) engine_->queueEvent(ConnEvent::BodyAbort, r);
}

// Dispatches a request whose head was saved while its body was buffered.
// The caller keeps r pinned.
void Connection::dispatchSaved(Request* r, bool streaming) {
  RequestHead head;
  head.fields = engine_->fields();
  uint32_t scanned = 0;
  ParseResult res = parseRequestHead(saved_head_.data(), saved_head_.size(), &scanned,
                                     engine_->config().limits, &head);
  if (res.status != ParseStatus::Complete) {  // cannot happen: it parsed before
    failRequest(500, "saved request head no longer parses");
    return;
  }
  const char* body = streaming ? nullptr : r->body_buf.data();
  size_t body_len = streaming ? 0 : r->body_buf.size();
  engine_->dispatch(r, this, saved_head_.data(), head, body, body_len);
  if (closed_) return;
  if (!streaming) r->body_buf.release();  // JavaScript has its own copy
  saved_head_.release();
}

void Connection::sendContinue(Request* r) {
  if (r->sent_continue || r->version_minor == 0) return;
  r->sent_continue = true;
  static const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
  emitCopy(r, kContinue, sizeof kContinue - 1);
}

// The client closed its side. As nginx does, a request still waiting for
// its response is aborted (a departed client must release everything, and a
// FIN cannot be told apart from a full close); output already produced is
// still flushed before closing.
void Connection::handleEof(int status) {
  peer_ended_ = true;
  if (status != UV_EOF || lingering_ || body_req_ || req_head_) {
    destroy();
    return;
  }
  startClosing();
}

// Stops reading and arranges a 4xx/5xx answer once earlier pipelined
// responses are out, then a close.
void Connection::failRequest(int status, const char* reason) {
  if (error_status_) return;
  error_status_ = static_cast<uint16_t>(status);
  error_reason_ = reason;
  stop_parsing_ = true;
  if (head_timer_running_) {
    engine_->timers().cancel(&read_timer);
    head_timer_running_ = false;
  }
  if (!req_head_) writeErrorResponse();
}

// Formats the error response for error_status_ into the loop's scratch.
static void formatErrorResponse(ByteBuffer& out, uint16_t status, const char* detail) {
  const char* reason = reasonPhrase(status);
  out.clear();
  appendStatusLine(out, status, false);
  size_t dlen;
  const char* date = dateHeader(&dlen);
  out.append(date, dlen);
  size_t rlen = std::strlen(reason);
  size_t detail_len = detail ? std::strlen(detail) : 0;
  out.appendLiteral("Content-Type: text/plain\r\nConnection: close\r\nContent-Length: ");
  out.appendUint(rlen + (detail_len ? 2 + detail_len : 0) + 1);
  out.appendLiteral("\r\n\r\n");
  out.append(reason, rlen);
  if (detail_len) {
    out.appendLiteral(": ");
    out.append(detail, detail_len);
  }
  out.appendLiteral("\n");
}

// The refused request has no Request (it never parsed): its answer goes
// straight to the socket once earlier responses are out.
void Connection::writeErrorResponse() {
  ByteBuffer& out = engine_->ctx().scratch;
  formatErrorResponse(out, error_status_, error_reason_);
  engine_->ctx().flushCorkIfOwner(this);
  wq_.appendCopy(out.data(), out.size());
  out_pos_ += out.size();
  startClosing();
  flushQueue();
}

// The error becomes the response of a dispatched request, in its turn.
void Connection::writeErrorResponseFor(Request* r) {
  ByteBuffer& out = engine_->ctx().scratch;
  formatErrorResponse(out, error_status_, error_reason_);
  error_status_ = 0;  // answered through r
  r->response = ResponseState::Streaming;
  emitCopy(r, out.data(), out.size());
  responseComplete(r);
}

// ---------------------------------------------------------------- reading state

void Connection::pauseReading(PauseReason why) {
  paused_ |= why;
  if (why == kPauseApp) engine_->timers().cancel(&read_timer);
  updateReading();
}

void Connection::resumeReading(PauseReason why) {
  if (!(paused_ & why)) return;
  paused_ &= ~why;
  if (why == kPauseApp && body_req_) engine_->timers().arm(&read_timer, TimeoutKind::Body);
  updateReading();
}

bool Connection::wantsInput() const {
  if (closed_ || peer_ended_) return false;
  if (lingering_) return true;
  if (close_after_output_) return false;
  if (paused_ & kPauseApp) return false;
  return inbuf_len_ < kHeldInputCap;
}

void Connection::updateReading() {
  bool want = wantsInput();
  if (want == reading_) return;
  reading_ = want;
  if (want) uv_read_start(&stream_, onAlloc, onRead);
  else uv_read_stop(&stream_);
}

// The connection has nothing in flight: arm the keep-alive timer, or close
// if this connection is done.
void Connection::becameIdleMaybe() {
  if (closed_ || req_head_ || body_req_ || close_after_output_) return;
  if (error_status_) {
    writeErrorResponse();
    return;
  }
  if (stop_parsing_) {
    startClosing();
    return;
  }
  if (engine_->shuttingDown() && inbuf_len_ == 0) {
    startClosing();
    return;
  }
  if (inbuf_len_ > 0) {
    // A pipelined or partial head is waiting: its header deadline runs now.
    if (!head_timer_running_) {
      engine_->timers().arm(&read_timer, TimeoutKind::Header);
      head_timer_running_ = true;
    }
    if (!in_process_) engine_->scheduleHeldInput(this);
    return;
  }
  engine_->timers().arm(&read_timer, TimeoutKind::KeepAlive);
}

// ---------------------------------------------------------------- output

bool Connection::corked() const { return engine_->ctx().cork.owner == this; }

size_t Connection::queuedBytes() const {
  size_t n = wq_.bytes();
  if (corked()) n += engine_->ctx().cork.bytes();
  return n;
}

bool Connection::emitCopy(Request* r, const char* p, size_t n) {
  if (closed_) return false;
  if (r != req_head_) return r->held.appendCopy(p, n);
  out_pos_ += n;
  LoopContext& ctx = engine_->ctx();
  Cork& cork = ctx.cork;
  if (cork.owner != this) {
    ctx.flushCork();
    if (!wq_.empty() || write_in_flight_) {
      // Already waiting on the socket: queue behind it, no point corking.
      if (!wq_.appendCopy(p, n)) return false;
      flushQueue();
      return true;
    }
    cork.owner = this;
  }
  if (!cork.fits(n)) {
    ctx.flushCork();
    if (n > Cork::kSize / 2 || !wq_.empty() || write_in_flight_) {
      if (!wq_.appendCopy(p, n)) return false;
      flushQueue();
      return true;
    }
    cork.owner = this;
  }
  cork.addCopy(p, n);
  return true;
}

bool Connection::emitRef(Request* r, const char* p, size_t n, napi_ref ref) {
  if (closed_) return false;
  if (r != req_head_) return r->held.appendRef(p, n, ref);
  out_pos_ += n;
  LoopContext& ctx = engine_->ctx();
  Cork& cork = ctx.cork;
  if (cork.owner != this) {
    ctx.flushCork();
    if (!wq_.empty() || write_in_flight_) {
      if (!wq_.appendRef(p, n, ref)) return false;
      flushQueue();
      return true;
    }
    cork.owner = this;
  }
  if (!cork.fitsRef()) {
    ctx.flushCork();
    cork.owner = this;
  }
  cork.addRef(p, n, ref);
  return true;
}

void Connection::writeCorked(Cork& cork) {
  if (closed_) return;
  size_t total = cork.bytes();
  size_t done = 0;
  if (wq_.empty() && !write_in_flight_) {
    uv_buf_t iov[Cork::kMaxSegs];
    for (int i = 0; i < cork.nsegs; ++i)
      iov[i] = uv_buf_init(const_cast<char*>(cork.segs[i].data), cork.segs[i].len);
    int w = tryWriteSocket(iov, cork.nsegs);
    if (w < 0) {
      destroy();
      return;
    }
    done = static_cast<size_t>(w);
  }
  // Whatever the socket did not take is copied (or, for Buffers, kept by
  // reference) into the connection's queue.
  size_t skip = done;
  for (int i = 0; i < cork.nsegs; ++i) {
    Cork::Segment& s = cork.segs[i];
    if (skip >= s.len) {
      skip -= s.len;
      if (s.ref) napi_delete_reference(engine_->env(), s.ref);
      s.ref = nullptr;
      continue;
    }
    bool ok = s.ref ? wq_.appendRef(s.data + skip, s.len - skip, s.ref)
                    : wq_.appendCopy(s.data + skip, s.len - skip);
    s.ref = nullptr;
    skip = 0;
    if (!ok) {
      destroy();
      return;
    }
  }
  if (done) written(done);
  if (done < total) flushQueue();
}

int Connection::tryWriteSocket(uv_buf_t* iov, int n) {
  if (n == 0) return 0;
  int w = uv_try_write(&stream_, iov, n);
  if (w == UV_EAGAIN || w == UV_ENOSYS) return 0;
  return w;
}

void Connection::flushQueue() {
  if (closed_ || write_in_flight_ || wq_.empty()) return;
  uv_buf_t iov[OutQueue::kMaxIov];
  for (;;) {
    size_t total = 0;
    int n = wq_.fillIov(iov, OutQueue::kMaxIov, &total);
    int w = tryWriteSocket(iov, n);
    if (w < 0) {
      destroy();
      return;
    }
    if (w > 0) {
      wq_.consume(engine_->env(), static_cast<size_t>(w));
      written(static_cast<size_t>(w));
      if (closed_) return;
    }
    if (wq_.empty()) return;
    if (static_cast<size_t>(w) < total) break;  // socket is full
  }
  // The rest waits for the socket to become writable.
  size_t total = 0;
  int n = wq_.fillIov(iov, OutQueue::kMaxIov, &total);
  if (!write_req_) {
    write_req_ = static_cast<uv_write_t*>(std::malloc(sizeof(uv_write_t)));
    if (!write_req_) {
      destroy();
      return;
    }
    write_req_->data = this;
  }
  int r = uv_write(write_req_, &stream_, iov, n, onWrite);
  if (r != 0) {
    destroy();
    return;
  }
  write_in_flight_ = total;
  engine_->timers().arm(&write_timer, TimeoutKind::Write);
}

void Connection::onWrite(uv_write_t* req, int status) {
  Connection* c = static_cast<Connection*>(req->data);
  if (c->closed_) return;  // cancelled by close; onClose frees everything
  Engine* e = c->engine_;
  e->enter();
  size_t n = c->write_in_flight_;
  c->write_in_flight_ = 0;
  if (status < 0) {
    c->destroy();
  } else {
    c->wq_.consume(e->env(), n);
    c->written(n);
    if (!c->closed_) c->flushQueue();
  }
  e->leave();
}

// The socket accepted n more bytes: report finished responses, drain and
// write progress.
void Connection::written(size_t n) {
  written_pos_ += n;
  while (done_head_ && done_head_->end_mark <= written_pos_) {
    Request* r = done_head_;
    done_head_ = r->next;
    if (!done_head_) done_tail_ = nullptr;
    r->next = nullptr;
    r->awaiting_written = false;
    engine_->queueEvent(ConnEvent::Complete, r);
    maybeFree(r);
  }
  bool drained_now = wq_.empty() && !write_in_flight_ && !corked();
  if (drained_now) {
    engine_->timers().cancel(&write_timer);
    if (req_head_ && req_head_->want_drain) {
      req_head_->want_drain = false;
      engine_->queueEvent(ConnEvent::Drain, req_head_);
    }
    if (close_after_output_) afterOutputDrained();
  } else {
    engine_->timers().arm(&write_timer, TimeoutKind::Write);
  }
}

void Connection::responseComplete(Request* r) {
  r->response = ResponseState::Complete;
  if (r != req_head_) return;  // finished early; handled when it reaches the head
  while (req_head_ && req_head_->response == ResponseState::Complete) {
    Request* done = req_head_;
    req_head_ = done->next;
    if (!req_head_) req_tail_ = nullptr;
    done->next = nullptr;
    done->queued = false;
    --in_flight_;
    done->end_mark = out_pos_;
    if (!done->keep_alive) startClosing();
    if (done->upgrade && done->keep_alive) {
      // Answered normally: the connection stays HTTP.
      stop_parsing_ = false;
    }
    if (done->notify) {
      done->awaiting_written = true;
      if (done_tail_) done_tail_->next = done; else done_head_ = done;
      done_tail_ = done;
    }
    if (done->body_mode == BodyMode::Streaming || done->body_mode == BodyMode::Buffering) {
      // Answered before the body arrived: read and drop the rest, unless
      // the client is still waiting for 100-continue (then it sends nothing).
      if (done->expect_continue && !done->sent_continue) {
        abortBody(done);
        startClosing();
      } else {
        if (done->body_mode == BodyMode::Streaming) engine_->queueEvent(ConnEvent::BodyAbort, done);
        done->body_mode = BodyMode::Discarding;
        done->body_buf.release();
        paused_ &= ~kPauseApp;
      }
    }
    if (closed_) return;
    maybeFree(done);
    // The next response's held output goes out now, in order.
    Request* next = req_head_;
    if (next && !next->held.empty()) {
      engine_->ctx().flushCorkIfOwner(this);
      out_pos_ += next->held.bytes();
      wq_.splice(next->held);
    }
  }
  if (!wq_.empty()) flushQueue();
  if (closed_) return;
  if (req_head_ && req_head_->want_drain && drained()) {
    req_head_->want_drain = false;
    engine_->queueEvent(ConnEvent::Drain, req_head_);
  }
  if (close_after_output_ && drained()) {
    afterOutputDrained();
    return;
  }
  becameIdleMaybe();
  if (!closed_ && inbuf_len_ > 0 && !parsingBlocked() && !in_process_) engine_->scheduleHeldInput(this);
  if (!closed_) updateReading();
}

// ---------------------------------------------------------------- closing

void Connection::startClosing() {
  if (close_after_output_ || closed_) return;
  close_after_output_ = true;
  stop_parsing_ = true;
  engine_->timers().cancel(&read_timer);
  head_timer_running_ = false;
  updateReading();
  if (req_head_ == nullptr && drained()) afterOutputDrained();
}

void Connection::closeWhenIdle() {
  if (closed_) return;
  if (req_head_ == nullptr && body_req_ == nullptr) {
    // Idle: no response to protect with a lingering close (as nginx does).
    if (drained()) destroy();
    else startClosing();
    return;
  }
  // In-flight requests finish; their responses say Connection: close.
  for (Request* r = req_head_; r; r = r->next) r->keep_alive = false;
  stop_parsing_ = true;
}

// All output is on the wire and the connection is to close: send FIN, then
// read and drop input until the client closes (or the linger timer fires),
// so the kernel does not answer unread input with a RST that could destroy
// the response before the client read it.
void Connection::afterOutputDrained() {
  if (closed_ || lingering_) return;
  if (req_head_ || body_req_) {
    if (body_req_ && body_req_->body_mode == BodyMode::Discarding && !req_head_) {
      // Only dropping the rest of an unread body: no need to wait for it.
    } else {
      return;
    }
  }
  if (peer_ended_) {
    destroy();
    return;
  }
  uv_shutdown_t* req = static_cast<uv_shutdown_t*>(std::malloc(sizeof(uv_shutdown_t)));
  if (!req || uv_shutdown(req, &stream_, onShutdown) != 0) {
    std::free(req);
    destroy();
    return;
  }
  req->data = this;
  lingering_ = true;
  engine_->timers().arm(&read_timer, TimeoutKind::Linger);
  updateReading();
}

void Connection::onShutdown(uv_shutdown_t* req, int status) {
  Connection* c = static_cast<Connection*>(req->data);
  std::free(req);
  if (status < 0 && !c->closed_) {
    Engine* e = c->engine_;
    e->enter();
    c->destroy();
    e->leave();
  }
}

void Connection::destroy() {
  if (closed_) return;
  closed_ = true;
  Engine* e = engine_;
  e->timers().cancel(&read_timer);
  e->timers().cancel(&write_timer);
  e->ctx().dropCorkIfOwner(this);
  // Everything still in flight is aborted; JavaScript hears about the
  // requests that asked to.
  auto abort = [e](Request* r) {
    if (r->dispatched && (r->notify || r->body_mode == BodyMode::Streaming))
      e->queueEvent(ConnEvent::Abort, r);
    r->held.clear(e->env());
    r->body_buf.release();
    e->freeRequest(r);
  };
  if (body_req_ && body_req_->response == ResponseState::Complete && !body_req_->awaiting_written) {
    // Its response is done but it was still draining a body: not listed below.
    Request* r = body_req_;
    body_req_ = nullptr;
    abort(r);
  }
  body_req_ = nullptr;
  while (req_head_) {
    Request* r = req_head_;
    req_head_ = r->next;
    abort(r);
  }
  req_tail_ = nullptr;
  while (done_head_) {
    Request* r = done_head_;
    done_head_ = r->next;
    abort(r);
  }
  done_tail_ = nullptr;
  in_flight_ = 0;
  reading_ = false;
  uv_close(&handle_, onClose);
}

void Connection::onClose(uv_handle_t* h) {
  Connection* c = static_cast<Connection*>(h->data);
  Engine* e = c->engine_;
  c->wq_.clear(e->env());
  std::free(c->inbuf_);
  std::free(c->write_req_);
  c->saved_head_.release();
  e->connectionClosed(c);
  c->~Connection();
  e->releaseConnection(c);
}

void Connection::onTimeout(TimerNode* node, TimeoutKind kind) {
  if (closed_) return;
  switch (kind) {
    case TimeoutKind::Header:
      head_timer_running_ = false;
      if (awaiting_proxy_) {
        destroy();  // no HTTP answer to a balancer that never sent its header
        return;
      }
      // A client that sent part of a head hears why; one that sent nothing
      // is just closed (as nginx does).
      if (inbuf_len_ > 0 && !req_head_) {
        failRequest(408, "request head not received in time (headerTimeout)");
        return;
      }
      destroy();
      return;
    case TimeoutKind::Body:
    case TimeoutKind::Write:
    case TimeoutKind::KeepAlive:
    case TimeoutKind::Linger:
    case TimeoutKind::Handler:
    case TimeoutKind::Count:
      destroy();
      return;
  }
}

// ---------------------------------------------------------------- requests

void Connection::maybeFree(Request* r) {
  if (r->response != ResponseState::Complete || r->awaiting_written || r->queued || r->pinned ||
      r == body_req_)
    return;
  engine_->freeRequest(r);
}

int Connection::detach(ByteBuffer& head_out, ByteBuffer& pending_out) {
  int fd = fileno();
  if (fd < 0 || closed_) return UV_EBADF;
  int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) return -errno;
  // Input after the request being handled: inside process() it is the rest
  // of the buffer being parsed, otherwise the held input.
  if (in_process_) head_out.append(proc_data_ + proc_pos_, proc_len_ - proc_pos_);
  else head_out.append(inbuf_, inbuf_len_);
  // Output not yet on the wire goes to the new owner of the socket, which
  // writes it first. A uv_write in flight may have been partly written:
  // libuv advances the request's buffers as it goes.
  if (write_in_flight_ && write_req_) {
    for (unsigned i = write_req_->write_index; i < write_req_->nbufs; ++i)
      pending_out.append(write_req_->bufs[i].base, write_req_->bufs[i].len);
  }
  uv_buf_t iov[OutQueue::kMaxIov];
  size_t skip = write_in_flight_;
  // Gather the queued chunks beyond what the in-flight write covered.
  for (;;) {
    size_t total = 0;
    int n = wq_.fillIov(iov, OutQueue::kMaxIov, &total);
    if (n == 0) break;
    for (int i = 0; i < n; ++i) {
      size_t len = iov[i].len;
      if (skip >= len) {
        skip -= len;
        continue;
      }
      pending_out.append(iov[i].base + skip, len - skip);
      skip = 0;
    }
    wq_.consume(engine_->env(), total);
  }
  Cork& cork = engine_->ctx().cork;
  if (cork.owner == this) {
    for (int i = 0; i < cork.nsegs; ++i) pending_out.append(cork.segs[i].data, cork.segs[i].len);
  }
  write_in_flight_ = 0;
  destroy();
  return dup_fd;
}

}  // namespace feersum
