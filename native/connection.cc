// Connection lifecycle and input: accept, reads into the loop buffer (or the
// connection's own buffer for an unfinished head), the parse loop, reading
// state, timeouts, and closing (see connection.h).
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
#include "tls_context.h"

namespace feersum {

namespace {
// Input held while parsing is paused (pipelined requests beyond the limit,
// bytes after an Upgrade request) is capped; past it reading stops.
constexpr uint32_t kHeldInputCap = 64 * 1024;
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

int Connection::accept(uv_stream_t* server, bool proxy_protocol, TlsContext* tls) {
  int r = uv_accept(server, &stream_);
  if (r != 0) return r;
  awaiting_proxy_ = proxy_protocol;
  if (tls) {
    tls_ = TlsSession::create(tls);
    if (!tls_) return UV_ENOMEM;
  }
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

void Connection::onAlloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  Connection* c = static_cast<Connection*>(h->data);
  if (c->inbuf_len_ == 0 || c->lingering_ || c->tls_) {
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
  if (tls_) {
    readTls(buf->base, static_cast<size_t>(nread));
    if (!closed_) updateReading();
    return;
  }
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

// TLS: ciphertext in; the handshake's and the session's own output (server
// hello, tickets, alerts) out; plaintext on to consumeInput().
void Connection::readTls(const char* data, size_t len) {
  LoopContext& ctx = engine_->ctx();
  in_process_ = true;
  TlsSession::Status st = tls_->feed(data, len, ctx.tls_plain, LoopContext::kTlsPlainSize, onTlsPlain, this);
  in_process_ = false;
  if (closed_) return;
  if (!tls_counted_ && tls_->handshakeDone()) {
    tls_counted_ = true;
    engine_->countTlsHandshake(tls_->resumed());
  }
  tls_->takeOutput(tls_out_);
  flushQueue();  // sends the alert too when the session failed
  if (closed_) return;
  if (st == TlsSession::Status::Error) {
    destroy();  // not TLS, a broken handshake, a refused certificate
  } else if (st == TlsSession::Status::PeerClosed) {
    // Answer the client's close_notify with ours: a session closed cleanly
    // stays in OpenSSL's cache (one freed without it is dropped).
    if (!tls_close_sent_) {
      tls_close_sent_ = true;
      engine_->ctx().flushCorkIfOwner(this);  // responses already produced go first
      encryptPendingAll();
      tls_->close(tls_out_);
      flushQueue();
      if (closed_) return;
    }
    handleEof(UV_EOF);
  }
}

bool Connection::onTlsPlain(void* self, const char* data, size_t len) {
  Connection* c = static_cast<Connection*>(self);
  if (c->tls_env_.size() == 0) c->tls_->describe(c->tls_env_);
  c->consumeInput(data, len);
  return !c->closed_ && !c->lingering_;
}

// Decrypted input: appended to held input if there is some, else parsed
// straight from the loop's plaintext buffer.
void Connection::consumeInput(const char* data, size_t len) {
  if (inbuf_len_ == 0) {
    size_t used = process(data, len);
    keepUnconsumed(data, len, used);
    return;
  }
  if (inbuf_len_ + len > inbuf_cap_) {
    uint32_t cap = static_cast<uint32_t>(inbuf_len_ + len);
    char* p = static_cast<char*>(std::realloc(inbuf_, cap));
    if (!p) {
      destroy();
      return;
    }
    inbuf_ = p;
    inbuf_cap_ = cap;
  }
  std::memcpy(inbuf_ + inbuf_len_, data, len);
  inbuf_len_ += static_cast<uint32_t>(len);
  size_t used = process(inbuf_, inbuf_len_);
  keepUnconsumed(inbuf_, inbuf_len_, used);
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
    if (tunnel_) {
      engine_->deliverBody(tunnel_, ConnEvent::BodyData, data + pos, len - pos);
      pos = len;
      break;
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

// The client closed its side. As nginx does, a request still waiting for
// its response is aborted (a departed client must release everything, and a
// FIN cannot be told apart from a full close); output already produced is
// still flushed before closing.
void Connection::handleEof(int status) {
  peer_ended_ = true;
  if (tunnel_ && status == UV_EOF) {
    // The tunnel's reader sees the end; what it already wrote still goes out.
    engine_->deliverBody(tunnel_, ConnEvent::BodyEnd, nullptr, 0);
    if (!closed_) startClosing();
    return;
  }
  if (status != UV_EOF || lingering_ || body_req_ || req_head_) {
    destroy();
    return;
  }
  startClosing();
}

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
  if (closed_ || tunneled_) return;
  // Idle means waiting between requests (as nginx decides): a connection
  // that has not finished its first request yet, or has part of the next
  // one, is served once more, with Connection: close (the engine is
  // draining), within the header deadline.
  bool idle = req_head_ == nullptr && body_req_ == nullptr && requests_ > 0 && inbuf_len_ == 0;
  if (idle) {
    // No response to protect with a lingering close.
    if (drained()) closeIdle();
    else startClosing();
    return;
  }
  // In-flight requests finish; their responses say Connection: close, and
  // so will the response to a request still arriving (the engine drains).
  for (Request* r = req_head_; r; r = r->next) r->keep_alive = false;
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
  if (tls_ && !tls_close_sent_) {
    // close_notify first, so the client knows the response was not cut short.
    tls_close_sent_ = true;
    tls_->close(tls_out_);
    flushQueue();
    if (closed_ || !drained()) return;  // back here once it is written
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

// Closes a connection with nothing in flight. A TLS client still hears a
// close_notify first (best effort: the socket is idle, so it goes at once),
// which also keeps its session resumable.
void Connection::closeIdle() {
  if (tls_ && !tls_close_sent_ && tls_->handshakeDone()) {
    tls_close_sent_ = true;
    tls_->close(tls_out_);
    flushQueue();
  }
  destroy();
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
  auto abort = [this, e](Request* r) {
    if (r->dispatched && (r->notify || r->body_mode == BodyMode::Streaming))
      e->queueEvent(ConnEvent::Abort, r);
    r->held.clear(e->env());
    r->body_buf.release();
    e->retireRequest(r);
    r->next = graveyard_;
    graveyard_ = r;
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
  if (c->tunneled_) e->tunnelClosed();
  while (c->graveyard_) {
    Request* r = c->graveyard_;
    c->graveyard_ = r->next;
    e->releaseRequest(r);
  }
  c->wq_.clear(e->env());
  c->tls_out_.clear(e->env());
  delete c->tls_;
  c->tls_env_.release();
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
    case TimeoutKind::KeepAlive:
      closeIdle();
      return;
    case TimeoutKind::Body:
    case TimeoutKind::Write:
    case TimeoutKind::Linger:
    case TimeoutKind::Handler:
    case TimeoutKind::Count:
      destroy();
      return;
  }
}

int Connection::startTunnel(Request* r) {
  if (closed_ || tunnel_ || r->response != ResponseState::None || body_req_) return UV_EBUSY;
  tunnel_ = r;
  tunneled_ = true;
  r->response = ResponseState::Streaming;  // raw: no chunking, no length
  r->keep_alive = false;
  r->notify = true;
  stop_parsing_ = true;
  // A tunnel is the application's now: no engine timeouts, and it does not
  // hold up gracefulShutdown or count against maxConnections.
  engine_->timers().cancel(&read_timer);
  engine_->timers().cancel(&write_timer);
  engine_->timers().cancel(&r->handler_timer);
  head_timer_running_ = false;
  engine_->tunnelOpened();
  // Input already here (a WebSocket frame sent right after the request)
  // flows in at the next safe point.
  if (inbuf_len_ > 0 && !in_process_) engine_->scheduleHeldInput(this);
  updateReading();
  return 0;
}

int Connection::detach(ByteBuffer& head_out, ByteBuffer& pending_out) {
  int fd = fileno();
  if (fd < 0 || closed_) return UV_EBADF;
  if (tls_) return UV_ENOTSUP;  // the TLS state lives here: JavaScript tunnels instead
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
