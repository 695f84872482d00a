// Implementation of response framing (see response_writer.h).
#include "response_writer.h"

#include "connection.h"
#include "engine.h"

namespace feersum {

namespace {

void releasePart(Engine* e, BodyPart& p) {
  if (p.ref) napi_delete_reference(e->env(), p.ref);
  p.ref = nullptr;
}

bool emitPart(Request* r, BodyPart& p, size_t len) {
  Connection* c = r->conn;
  bool ok;
  if (p.ref) {
    ok = c->emitRef(r, p.data, len, p.ref);
    p.ref = nullptr;  // owned by the output now (or freed with it)
  } else {
    ok = c->emitCopy(r, p.data, len);
  }
  return ok;
}

// Writes the status line and headers, decides the framing and stores it in
// r. known_length < 0 means a streamed body of unknown length.
int beginResponse(Engine* e, Request* r, int status, const HeaderBlock& hb, int64_t known_length,
                  HeadError* head_error) {
  if (r->response != ResponseState::None) return kErrAlreadyStarted;
  if (status < 200 || status > 999) return kErrBadStatus;
  e->timers().cancel(&r->handler_timer);
  ByteBuffer& out = e->ctx().scratch;
  out.clear();
  appendStatusLine(out, status, r->force_http10);
  AppHeaderInfo info;
  HeadError he = appendAppHeaders(hb.data, hb.len, hb.count, out, &info);
  if (he != HeadError::None) {
    *head_error = he;
    return kErrBadHeaders;
  }
  const bool bodyless_status = status == 204 || status == 304;
  const bool head_method = r->method == Method::Head;
  r->no_body_out = bodyless_status || head_method;
  if (info.connection_close || e->draining()) r->keep_alive = false;
  const bool http11_framing = !r->force_http10 && (r->version_minor == 1 || r->force_http11);

  // RFC 9110 8.6: no Content-Length in a 204; a 304 or a HEAD response may
  // carry the length the full response would have had.
  bool send_length = false;
  uint64_t length = 0;
  if (known_length >= 0) {
    if (info.has_content_length) {
      if (!r->no_body_out && info.content_length != static_cast<uint64_t>(known_length))
        return kErrLengthMismatch;
      send_length = status != 204;
      length = info.content_length;
    } else if (!bodyless_status && !(head_method && known_length == 0)) {
      send_length = true;
      length = static_cast<uint64_t>(known_length);
    }
  } else if (info.has_content_length && status != 204) {
    send_length = true;
    length = info.content_length;
    if (!r->no_body_out) {
      r->length_out = true;
      r->out_remaining = length;
    }
  } else if (!r->no_body_out) {
    if (http11_framing) r->chunked_out = true;
    else r->keep_alive = false;  // close-delimited body
  }

  if (send_length) {
    out.appendLiteral("Content-Length: ");
    out.appendUint(length);
    out.appendLiteral("\r\n");
  }
  if (r->chunked_out) out.appendLiteral("Transfer-Encoding: chunked\r\n");
  if (!r->keep_alive) out.appendLiteral("Connection: close\r\n");
  else if (r->version_minor == 0 || r->force_http10) out.appendLiteral("Connection: keep-alive\r\n");
  const std::string& server = e->config().server_header;
  if (!server.empty() && !info.has_server) out.append(server.data(), server.size());
  if (!info.has_date) {
    size_t dlen;
    const char* date = dateHeader(&dlen);
    out.append(date, dlen);
  }
  out.appendLiteral("\r\n");
  r->response = ResponseState::Streaming;
  return r->conn->emitCopy(r, out.data(), out.size()) ? kOk : kErrNoMemory;
}

}  // namespace

int respond(Engine* e, Request* r, int status, const HeaderBlock& headers, BodyPart* parts,
            size_t nparts, HeadError* head_error) {
  size_t total = 0;
  for (size_t i = 0; i < nparts; ++i) total += parts[i].len;
  int rc = beginResponse(e, r, status, headers, static_cast<int64_t>(total), head_error);
  if (rc == kOk && !r->no_body_out) {
    for (size_t i = 0; i < nparts && rc == kOk; ++i)
      if (parts[i].len && !emitPart(r, parts[i], parts[i].len)) rc = kErrNoMemory;
  }
  for (size_t i = 0; i < nparts; ++i) releasePart(e, parts[i]);
  if (rc != kOk && r->conn->closed()) return kErrGone;
  if (rc != kOk) {
    // Nothing of a refused head reached the output; a failure after it
    // leaves the connection out of step, so it closes.
    if (r->response != ResponseState::None) {
      r->keep_alive = false;
      r->conn->responseComplete(r);
    }
    return rc;
  }
  r->conn->responseComplete(r);
  return kOk;
}

int startStreaming(Engine* e, Request* r, int status, const HeaderBlock& headers, HeadError* head_error) {
  return beginResponse(e, r, status, headers, -1, head_error);
}

int writeBody(Engine* e, Request* r, BodyPart& part) {
  if (r->response != ResponseState::Streaming) {
    releasePart(e, part);
    return r->response == ResponseState::None ? kErrNotStreaming : kErrGone;
  }
  if (part.len == 0 || r->no_body_out) {
    releasePart(e, part);
    return kOk;
  }
  size_t len = part.len;
  bool overflow = false;
  if (r->length_out) {
    if (len > r->out_remaining) {
      len = static_cast<size_t>(r->out_remaining);
      overflow = true;
    }
    r->out_remaining -= len;
  }
  Connection* c = r->conn;
  bool ok = true;
  if (r->chunked_out) {
    char line[20];
    size_t n = formatChunkSize(line, len);
    ok = c->emitCopy(r, line, n) && emitPart(r, part, len) && c->emitCopy(r, "\r\n", 2);
  } else if (len) {
    ok = emitPart(r, part, len);
  }
  releasePart(e, part);
  if (!ok) return c->closed() ? kErrGone : kErrNoMemory;
  // A stream that ignores backpressure (write() returning false, pollCb)
  // is stopped at a hard cap rather than growing without bound.
  size_t queued = c->isHead(r) ? c->queuedBytes() : r->held.bytes();
  if (queued > e->config().max_write_buffer) {
    c->destroy();
    return kErrOverflow;
  }
  if (overflow) {
    // More than the declared Content-Length: the declared bytes went out,
    // the connection closes after them so it cannot fall out of step.
    r->keep_alive = false;
    c->responseComplete(r);
    return kErrLengthMismatch;
  }
  return kOk;
}

int endResponse(Engine* e, Request* r) {
  if (r->response != ResponseState::Streaming)
    return r->response == ResponseState::None ? kErrNotStreaming : kErrGone;
  int rc = kOk;
  if (r->chunked_out) {
    static const char kLastChunk[] = "0\r\n\r\n";
    if (!r->conn->emitCopy(r, kLastChunk, sizeof kLastChunk - 1))
      return r->conn->closed() ? kErrGone : kErrNoMemory;
  }
  if (r->length_out && r->out_remaining > 0) {
    // Fewer bytes than declared: the client sees the connection close early.
    r->keep_alive = false;
    rc = kErrLengthMismatch;
  }
  r->conn->responseComplete(r);
  return rc;
}

int informational(Engine* e, Request* r, int status, const HeaderBlock& headers, HeadError* head_error) {
  if (r->response != ResponseState::None) return kErrAlreadyStarted;
  if (status < 100 || status > 199 || status == 101) return kErrBadStatus;
  if (r->version_minor == 0) return kOk;  // HTTP/1.0 clients do not understand 1xx
  ByteBuffer& out = e->ctx().scratch;
  out.clear();
  appendStatusLine(out, status, false);
  AppHeaderInfo info;
  HeadError he = appendAppHeaders(headers.data, headers.len, headers.count, out, &info);
  if (he != HeadError::None) {
    *head_error = he;
    return kErrBadHeaders;
  }
  out.appendLiteral("\r\n");
  return r->conn->emitCopy(r, out.data(), out.size()) ? kOk : kErrNoMemory;
}

}  // namespace feersum
