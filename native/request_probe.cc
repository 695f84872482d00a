// Test harness: the connection's request loop over a byte string.
#include "request_probe.h"

#include <cstring>
#include <memory>

#include "http_parser_internal.h"

namespace feersum {

const char* parseErrorName(ParseError e) {
  switch (e) {
    case ParseError::None: return "None";
    case ParseError::BadRequest: return "BadRequest";
    case ParseError::BadContentLength: return "BadContentLength";
    case ParseError::LengthWithChunked: return "LengthWithChunked";
    case ParseError::BadTransferEncoding: return "BadTransferEncoding";
    case ParseError::UnknownCoding: return "UnknownCoding";
    case ParseError::MissingHost: return "MissingHost";
    case ParseError::BadHost: return "BadHost";
    case ParseError::ObsFold: return "ObsFold";
    case ParseError::UnknownMethod: return "UnknownMethod";
    case ParseError::HeadTooLarge: return "HeadTooLarge";
    case ParseError::UriTooLong: return "UriTooLong";
    case ParseError::TooManyHeaders: return "TooManyHeaders";
    case ParseError::BadVersion: return "BadVersion";
    case ParseError::UnsupportedVersion: return "UnsupportedVersion";
    case ParseError::BadExpect: return "BadExpect";
  }
  return "Unknown";
}

const char* activeParserImpl() { return detail::simdLevelName(detail::activeSimdLevel()); }

namespace {

// An exactly-sized heap copy, so reads past the end are caught by ASan.
struct ExactCopy {
  std::unique_ptr<char[]> p;
  explicit ExactCopy(const char* src, size_t n) : p(new char[n ? n : 1]) {
    if (n) std::memcpy(p.get(), src, n);
  }
  const char* data() const { return p.get(); }
};

void appendBody(void* ctx, const char* data, size_t len) {
  static_cast<std::string*>(ctx)->append(data, len);
}

class Loop {
 public:
  Loop(const char* data, size_t len, const ParserLimits& limits)
      : data_(data), len_(len), limits_(limits), fields_(limits.max_headers ? limits.max_headers : 1) {}

  // Makes bytes [0, avail) available and processes as far as possible.
  // Returns false once the loop has stopped (error or connection done).
  bool deliver(size_t avail) {
    avail_ = avail;
    while (state_ != kStopped) {
      switch (state_) {
        case kHead:
          if (!head()) return state_ != kStopped;
          break;
        case kLengthBody:
          if (!lengthBody()) return state_ != kStopped;
          break;
        case kChunkedBody:
          if (!chunkedBody()) return state_ != kStopped;
          break;
        default:
          break;
      }
    }
    return false;
  }

  ProbeResult finish() {
    if (state_ == kHead) {
      // Only empty lines left between messages is not "incomplete".
      size_t p = pos_;
      while (p + 1 < len_ && data_[p] == '\r' && data_[p + 1] == '\n') p += 2;
      result_.incomplete = p < len_;
    } else if (state_ == kLengthBody || state_ == kChunkedBody) {
      result_.incomplete = true;
    }
    return std::move(result_);
  }

 private:
  enum State { kHead, kLengthBody, kChunkedBody, kStopped };

  bool head() {
    if (pos_ >= avail_) return false;
    const size_t n = avail_ - pos_;
    ExactCopy buf(data_ + pos_, n);
    RequestHead h;
    h.fields = fields_.data();
    ParseResult r = parseRequestHead(buf.data(), n, &scanned_, limits_, &h);
    if (r.status == ParseStatus::Partial) return false;
    if (r.status == ParseStatus::Error) {
      fail(httpStatus(r.error), describe(r.error), parseErrorName(r.error), pos_ + r.error_offset);
      return false;
    }
    scanned_ = 0;
    ProbeMessage m;
    const char* b = buf.data();
    m.method.assign(b + h.method_off, h.method_len);
    m.target.assign(b + h.target_off, h.target_len);
    m.version_minor = h.version_minor;
    for (uint32_t i = 0; i < h.num_fields; ++i) {
      const HeaderField& f = h.fields[i];
      m.headers.emplace_back(std::string(b + f.name_off, f.name_len), std::string(b + f.value_off, f.value_len));
    }
    m.chunked = h.framing == BodyFraming::Chunked;
    m.keep_alive = h.keep_alive;
    m.upgrade = h.upgrade;
    m.expect_continue = h.expect_continue;
    msg_ = std::move(m);
    pos_ += h.head_len;
    if (h.framing == BodyFraming::Length) {
      remaining_ = h.content_length;
      state_ = kLengthBody;
    } else if (h.framing == BodyFraming::Chunked) {
      decoder_.reset();
      state_ = kChunkedBody;
    } else {
      complete();
    }
    return true;
  }

  bool lengthBody() {
    const size_t avail = avail_ - pos_;
    const size_t take = remaining_ < avail ? static_cast<size_t>(remaining_) : avail;
    msg_.body.append(data_ + pos_, take);
    pos_ += take;
    remaining_ -= take;
    if (remaining_ == 0) {
      complete();
      return true;
    }
    return false;
  }

  bool chunkedBody() {
    if (pos_ >= avail_) return false;
    const size_t n = avail_ - pos_;
    ExactCopy buf(data_ + pos_, n);
    size_t used = 0;
    ChunkedDecoder::Status st = decoder_.feed(buf.data(), n, &used, appendBody, &msg_.body);
    if (st == ChunkedDecoder::Status::Error) {
      fail(400, "malformed chunked request body", "BadChunkedBody", pos_ + used);
      return false;
    }
    pos_ += used;
    if (st == ChunkedDecoder::Status::Done) {
      complete();
      return true;
    }
    return false;
  }

  void complete() {
    const bool stop = !msg_.keep_alive || msg_.upgrade;
    result_.messages.push_back(std::move(msg_));
    msg_ = ProbeMessage();
    if (stop) {
      result_.rest = len_ - pos_;
      state_ = kStopped;
    } else {
      state_ = kHead;
    }
  }

  void fail(int status, const char* reason, const char* name, size_t offset) {
    result_.error = true;
    result_.status = status;
    result_.reason = reason;
    result_.error_name = name;
    result_.error_offset = static_cast<uint32_t>(offset);
    state_ = kStopped;
  }

  const char* data_;
  size_t len_;
  size_t avail_ = 0;
  size_t pos_ = 0;  // consumed
  ParserLimits limits_;
  std::vector<HeaderField> fields_;
  uint32_t scanned_ = 0;
  State state_ = kHead;
  ProbeMessage msg_;
  uint64_t remaining_ = 0;
  ChunkedDecoder decoder_;
  ProbeResult result_;
};

}  // namespace

ProbeResult probeRequests(const char* data, size_t len, const ParserLimits& limits, size_t split_every) {
  Loop loop(data, len, limits);
  if (split_every == 0 || split_every >= len) {
    loop.deliver(len);
  } else {
    for (size_t avail = split_every;; avail += split_every) {
      if (avail > len) avail = len;
      if (!loop.deliver(avail) || avail == len) break;
    }
  }
  return loop.finish();
}

ProbeResult probeRequestsSplitAt(const char* data, size_t len, const ParserLimits& limits,
                                 const std::vector<size_t>& cuts) {
  Loop loop(data, len, limits);
  for (size_t c : cuts) {
    if (c >= len) break;
    if (!loop.deliver(c)) return loop.finish();
  }
  loop.deliver(len);
  return loop.finish();
}

}  // namespace feersum
