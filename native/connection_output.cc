// Connection output: bytes for the head-of-line response go to the loop's
// cork (or behind queued output), and leave with writev; what the socket does
// not take waits in the connection's queue for uv_write.
#include <cstdlib>

#include "connection.h"
#include "engine.h"
#include "loop_context.h"

namespace feersum {

bool Connection::corked() const { return engine_->ctx().cork.owner == this; }

size_t Connection::queuedBytes() const {
  size_t n = wq_.bytes() + tls_out_.bytes();
  if (corked()) n += engine_->ctx().cork.bytes();
  return n;
}

// Where the next output of the head-of-line response goes: the loop's cork
// (true; this connection owns it and it has room), or behind the output
// already waiting for the socket (false), where corking gains nothing, as
// for a copy too large for the cork.
bool Connection::useCork(size_t n, bool by_ref) {
  LoopContext& ctx = engine_->ctx();
  Cork& cork = ctx.cork;
  if (cork.owner == this && (by_ref ? cork.fitsRef() : cork.fits(n))) return true;
  ctx.flushCork();
  if (!wq_.empty() || write_in_flight_ || (!by_ref && n > Cork::kSize / 2)) return false;
  cork.owner = this;
  return true;
}

bool Connection::emitCopy(Request* r, const char* p, size_t n) {
  if (closed_) return false;
  if (r != req_head_) return r->held.appendCopy(p, n);
  out_pos_ += n;
  if (useCork(n, false)) {
    engine_->ctx().cork.addCopy(p, n);
    return true;
  }
  if (!wq_.appendCopy(p, n)) return false;
  flushQueue();
  return true;
}

bool Connection::emitRef(Request* r, const char* p, size_t n, napi_ref ref) {
  if (closed_) return false;
  if (r != req_head_) return r->held.appendRef(p, n, ref);
  out_pos_ += n;
  if (useCork(n, true)) {
    engine_->ctx().cork.addRef(p, n, ref);
    return true;
  }
  if (!wq_.appendRef(p, n, ref)) return false;
  flushQueue();
  return true;
}

void Connection::writeCorked(Cork& cork) {
  if (closed_) return;
  size_t total = cork.bytes();
  if (tls_) {
    if (wq_.empty() && tls_out_.empty() && !write_in_flight_) {
      // Straight into TLS records (as few as the cork's segments allow: a
      // head and a small body are one) and from the session's buffer to the
      // socket; only what the socket does not take is copied.
      for (int i = 0; i < cork.nsegs; ++i) {
        if (!tls_->encryptInPlace(cork.segs[i].data, cork.segs[i].len)) {
          destroy();
          return;
        }
      }
      const char* p;
      size_t n = tls_->peekOutput(&p);
      uv_buf_t b = uv_buf_init(const_cast<char*>(p), static_cast<unsigned>(n));
      int w = tryWriteSocket(&b, 1);
      if (w < 0 || (static_cast<size_t>(w) < n && !tls_out_.appendCopy(p + w, n - w))) {
        destroy();
        return;
      }
      tls_->discardOutput();
      written(total);
    } else if (wq_.empty()) {
      for (int i = 0; i < cork.nsegs; ++i) {
        if (!tls_->encrypt(cork.segs[i].data, cork.segs[i].len, tls_out_)) {
          destroy();
          return;
        }
      }
      written(total);
    } else {
      for (int i = 0; i < cork.nsegs; ++i) {
        Cork::Segment& s = cork.segs[i];
        bool ok = s.ref ? wq_.appendRef(s.data, s.len, s.ref) : wq_.appendCopy(s.data, s.len);
        s.ref = nullptr;
        if (!ok) {
          destroy();
          return;
        }
      }
    }
    flushQueue();
    return;
  }
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

// Plain: the queue goes to the socket. TLS: queued plaintext is encrypted as
// the socket takes the records before it, so at most a batch of ciphertext
// waits in memory beside the plaintext.
void Connection::flushQueue() {
  if (closed_) return;
  if (!tls_) {
    flushSocket();
    return;
  }
  for (;;) {
    flushSocket();
    if (closed_ || write_in_flight_ || !tls_out_.empty() || wq_.empty()) return;
    encryptPending();
  }
}

// Every queued plaintext into records now (before a close_notify).
void Connection::encryptPendingAll() {
  while (!closed_ && !wq_.empty()) encryptPending();
}

void Connection::encryptPending() {
  constexpr size_t kBatch = 64 * 1024;
  uv_buf_t iov[OutQueue::kMaxIov];
  size_t total = 0;
  int n = wq_.fillIov(iov, OutQueue::kMaxIov, &total);
  size_t done = 0;
  for (int i = 0; i < n && done < kBatch; ++i) {
    size_t take = iov[i].len < kBatch - done ? iov[i].len : kBatch - done;
    if (!tls_->encrypt(iov[i].base, take, tls_out_)) {
      destroy();
      return;
    }
    done += take;
  }
  wq_.consume(engine_->env(), done);
  written(done);
}

// Writes the socket's queue (plaintext, or TLS records) with writev; what
// the socket does not take goes out with uv_write when it is writable.
void Connection::flushSocket() {
  OutQueue& q = tls_ ? tls_out_ : wq_;
  if (closed_ || write_in_flight_ || q.empty()) return;
  uv_buf_t iov[OutQueue::kMaxIov];
  for (;;) {
    size_t total = 0;
    int n = q.fillIov(iov, OutQueue::kMaxIov, &total);
    int w = tryWriteSocket(iov, n);
    if (w < 0) {
      destroy();
      return;
    }
    if (w > 0) {
      q.consume(engine_->env(), static_cast<size_t>(w));
      if (tls_) checkDrained();
      else written(static_cast<size_t>(w));
      if (closed_) return;
    }
    if (q.empty()) return;
    if (static_cast<size_t>(w) < total) break;  // socket is full
  }
  size_t total = 0;
  int n = q.fillIov(iov, OutQueue::kMaxIov, &total);
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
  armWriteTimer();
}

// A tunnel has no engine timeouts (see startTunnel).
void Connection::armWriteTimer() {
  if (!tunneled_) engine_->timers().arm(&write_timer, TimeoutKind::Write);
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
    (c->tls_ ? c->tls_out_ : c->wq_).consume(e->env(), n);
    if (c->tls_) c->checkDrained();
    else c->written(n);
    if (!c->closed_) c->flushQueue();
  }
  e->leave();
}

// n more bytes of the response stream are on the wire (for TLS: encrypted
// and queued for it): report finished responses, then drain and progress.
void Connection::written(size_t n) {
  written_pos_ += n;
  reportWritten();
  checkDrained();
}

// Complete responses whose last byte is on the wire (possibly before the
// response was even declared complete: a stream with Content-Length whose
// bytes all went out before close()).
void Connection::reportWritten() {
  while (done_head_ && done_head_->end_mark <= written_pos_) {
    Request* r = done_head_;
    done_head_ = r->next;
    if (!done_head_) done_tail_ = nullptr;
    r->next = nullptr;
    r->awaiting_written = false;
    engine_->queueEvent(ConnEvent::Complete, r);
    maybeFree(r);
  }
}

void Connection::checkDrained() {
  if (!drained()) {
    armWriteTimer();
    return;
  }
  engine_->timers().cancel(&write_timer);
  if (req_head_ && req_head_->want_drain) {
    req_head_->want_drain = false;
    engine_->queueEvent(ConnEvent::Drain, req_head_);
  }
  if (close_after_output_) afterOutputDrained();
}

}  // namespace feersum
