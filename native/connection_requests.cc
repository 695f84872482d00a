// Requests on a connection: creating them from parsed heads, reading their
// bodies (buffered, streamed or discarded), dispatching them, the answers the
// engine gives itself (errors, timeouts), and completing responses in order.
#include <cstring>

#include "connection.h"
#include "engine.h"
#include "loop_context.h"
#include "response.h"

namespace feersum {

namespace {
// An unread body left after an early response is read and dropped up to
// this much, so the connection can stay open; past it the connection closes.
constexpr uint64_t kMaxDiscard = 1024 * 1024;
}  // namespace

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
  r->keep_alive = head.keep_alive && !engine_->draining() && !peer_ended_;
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
    uint64_t limit = engine_->config().max_body_size;
    if (limit && r->body_received + chunked_.pendingChunkBytes() > limit) body_reject_status_ = 413;
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

void Connection::responseComplete(Request* r) {
  r->response = ResponseState::Complete;
  if (r != req_head_) return;  // finished early; handled when it reaches the head
  while (req_head_ && req_head_->response == ResponseState::Complete) {
    Request* done = req_head_;
    if (done == tunnel_) tunnel_ = nullptr;  // the application ended the tunnel
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
  reportWritten();
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

int Connection::watch(Request* r) {
  if (r->notify) return 0;
  r->notify = true;
  // Still running, or complete but waiting for earlier responses: the
  // completion path will see the flag.
  if (r->response != ResponseState::Complete || r->queued) return 0;
  if (written_pos_ >= r->end_mark) {
    r->notify = false;
    return -1;
  }
  // Complete, its bytes still on their way: wait for them, in output order.
  r->awaiting_written = true;
  Request** pp = &done_head_;
  while (*pp && (*pp)->end_mark <= r->end_mark) pp = &(*pp)->next;
  r->next = *pp;
  *pp = r;
  if (!r->next) done_tail_ = r;
  return 0;
}

void Connection::maybeFree(Request* r) {
  if (closed_) return;  // destroy() took care of every request
  if (r->response != ResponseState::Complete || r->awaiting_written || r->queued || r->pinned ||
      r == body_req_)
    return;
  engine_->freeRequest(r);
}

}  // namespace feersum
