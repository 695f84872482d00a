// HTTP/1.1 request-head parser (RFC 9112 / RFC 9110), see http_parser.h.
//
// Design
// ------
// The head is checked by one left-to-right pass over its lines. Every check
// decides at a fixed byte position and, when the bytes it needs have not
// arrived yet, reports "need more" instead of guessing; that makes the
// verdict independent of how the head was split into reads, and lets a
// prefix that is already certain to be invalid (a bad request line, a bare
// CR or LF, obs-fold, a bad field name or value, a bad or disagreeing
// Content-Length) be refused as soon as it arrives instead of after a
// timeout.
//
// Resumption: on Partial, `*scanned` is set to the start of the first line
// that is not complete yet (or to the start of the request line while that
// is unfinished), and the next call continues the checks there, so complete
// lines are not re-validated. When the blank line that ends the head is
// reached in a resumed call, one full pass from the start records the
// fields and derives the semantics; a head that arrives in one read is
// parsed by a single pass.
//
// The byte scanners that find the end of a field value (validating it on
// the way) and the end of the request-target run 32 bytes at a time with
// AVX2 or 16 at a time with SSE4.2 (PCMPESTRI ranges) when the CPU has
// them, chosen once at load; the scalar versions are the portable fallback
// and what other architectures compile.
#include "http_parser.h"

#include <cstring>

#include "http_parser_internal.h"
#include "http_scan.h"

namespace feersum {

int httpStatus(ParseError e) {
  switch (e) {
    case ParseError::None: return 0;
    case ParseError::BadRequest: return 400;
    case ParseError::BadContentLength: return 400;
    case ParseError::LengthWithChunked: return 400;
    case ParseError::BadTransferEncoding: return 400;
    case ParseError::UnknownCoding: return 501;
    case ParseError::MissingHost: return 400;
    case ParseError::BadHost: return 400;
    case ParseError::ObsFold: return 400;
    case ParseError::UnknownMethod: return 501;
    case ParseError::HeadTooLarge: return 431;
    case ParseError::UriTooLong: return 414;
    case ParseError::TooManyHeaders: return 400;  // as the DESIGN says: size 431, count 400
    case ParseError::BadVersion: return 400;
    case ParseError::UnsupportedVersion: return 505;
    case ParseError::BadExpect: return 417;
  }
  return 400;
}

const char* describe(ParseError e) {
  switch (e) {
    case ParseError::None: return "no error";
    case ParseError::BadRequest: return "malformed request";
    case ParseError::BadContentLength: return "invalid Content-Length";
    case ParseError::LengthWithChunked: return "Content-Length together with Transfer-Encoding";
    case ParseError::BadTransferEncoding: return "invalid Transfer-Encoding";
    case ParseError::UnknownCoding: return "unsupported transfer coding";
    case ParseError::MissingHost: return "missing Host header";
    case ParseError::BadHost: return "invalid or repeated Host header";
    case ParseError::ObsFold: return "obsolete line folding in header section";
    case ParseError::UnknownMethod: return "method not implemented";
    case ParseError::HeadTooLarge: return "request header section too large";
    case ParseError::UriTooLong: return "request line too long";
    case ParseError::TooManyHeaders: return "too many header fields";
    case ParseError::BadVersion: return "malformed HTTP version";
    case ParseError::UnsupportedVersion: return "HTTP version not supported";
    case ParseError::BadExpect: return "unsupported Expect";
  }
  return "malformed request";
}

namespace detail {

// ---------------------------------------------------------------------------
// Request-line pieces

namespace {

struct MethodName {
  const char* name;
  uint8_t len;
  Method method;
};

// Node's require('http').METHODS (llhttp's HTTP methods; the RTSP-only
// ones such as ANNOUNCE or DESCRIBE are not in it). Most common first.
const MethodName kMethods[] = {
    {"GET", 3, Method::Get},
    {"POST", 4, Method::Post},
    {"PUT", 3, Method::Put},
    {"HEAD", 4, Method::Head},
    {"DELETE", 6, Method::Delete},
    {"OPTIONS", 7, Method::Options},
    {"PATCH", 5, Method::Patch},
    {"CONNECT", 7, Method::Connect},
    {"TRACE", 5, Method::Trace},
    {"ACL", 3, Method::Other},
    {"BIND", 4, Method::Other},
    {"CHECKOUT", 8, Method::Other},
    {"COPY", 4, Method::Other},
    {"LINK", 4, Method::Other},
    {"LOCK", 4, Method::Other},
    {"M-SEARCH", 8, Method::Other},
    {"MERGE", 5, Method::Other},
    {"MKACTIVITY", 10, Method::Other},
    {"MKCALENDAR", 10, Method::Other},
    {"MKCOL", 5, Method::Other},
    {"MOVE", 4, Method::Other},
    {"NOTIFY", 6, Method::Other},
    {"PROPFIND", 8, Method::Other},
    {"PROPPATCH", 9, Method::Other},
    {"PURGE", 5, Method::Other},
    {"QUERY", 5, Method::Other},
    {"REBIND", 6, Method::Other},
    {"REPORT", 6, Method::Other},
    {"SEARCH", 6, Method::Other},
    {"SOURCE", 6, Method::Other},
    {"SUBSCRIBE", 9, Method::Other},
    {"UNBIND", 6, Method::Other},
    {"UNLINK", 6, Method::Other},
    {"UNLOCK", 6, Method::Other},
    {"UNSUBSCRIBE", 11, Method::Other},
};

// Returns false when the token is not a registered method.
bool lookupMethod(const char* p, size_t n, Method* m, bool* m_search) {
  *m_search = false;
  for (const MethodName& e : kMethods) {
    if (e.len == n && std::memcmp(e.name, p, n) == 0) {
      *m = e.method;
      *m_search = n == 8 && p[0] == 'M' && p[1] == '-';
      return true;
    }
  }
  return false;
}

// Case-insensitive compare of a token against a lowercase literal. Safe for
// the bytes we compare (tchars / value bytes against letters, digits, '-').
inline bool ieq(const char* p, const char* lower, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if ((static_cast<unsigned char>(p[i]) | 0x20) != static_cast<unsigned char>(lower[i])) return false;
  }
  return true;
}

inline bool isAlpha(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }

// uri-host [ ":" port ] (RFC 9110 section 7.2, RFC 3986 section 3.2.2).
// For CONNECT's authority-form the port is required (RFC 9110 section 9.3.6).
bool validAuthority(const char* p, size_t n, bool port_required) {
  if (n == 0) return !port_required;
  size_t i = 0;
  if (p[0] == '[') {
    size_t j = 1;
    if (j < n && (p[j] == 'v' || p[j] == 'V')) {  // IPvFuture
      ++j;
      const size_t h = j;
      while (j < n && isHex(static_cast<unsigned char>(p[j]))) ++j;
      if (j == h || j >= n || p[j] != '.') return false;
      ++j;
      const size_t s = j;
      while (j < n && ((kChars.v[static_cast<unsigned char>(p[j])] & kRegName) || p[j] == ':')) ++j;
      if (j == s) return false;
    } else {  // IPv6address, checked loosely: hex digits, ':' and '.' only
      const size_t s = j;
      while (j < n && (isHex(static_cast<unsigned char>(p[j])) || p[j] == ':' || p[j] == '.')) ++j;
      if (j - s < 2) return false;
    }
    if (j >= n || p[j] != ']') return false;
    i = j + 1;
  } else {  // IPv4address or reg-name
    while (i < n) {
      const unsigned char c = static_cast<unsigned char>(p[i]);
      if (kChars.v[c] & kRegName) {
        ++i;
      } else if (c == '%' && i + 2 < n && isHex(static_cast<unsigned char>(p[i + 1])) &&
                 isHex(static_cast<unsigned char>(p[i + 2]))) {
        i += 3;
      } else {
        break;
      }
    }
    if (i == 0) return false;  // no host before the port
  }
  if (i == n) return !port_required;
  if (p[i] != ':') return false;
  ++i;
  const size_t d = i;
  while (i < n && isDigit(static_cast<unsigned char>(p[i]))) ++i;
  if (i != n) return false;
  return !(port_required && i == d);
}

// absolute-form: scheme ":" hier-part (only the scheme is checked; the
// bytes were already limited to visible ASCII).
bool isAbsoluteForm(const char* p, size_t n) {
  if (n == 0 || !isAlpha(static_cast<unsigned char>(p[0]))) return false;
  size_t i = 1;
  while (i < n) {
    const unsigned char c = static_cast<unsigned char>(p[i]);
    if (isAlpha(c) || isDigit(c) || c == '+' || c == '-' || c == '.') {
      ++i;
    } else {
      break;
    }
  }
  return i + 1 < n && p[i] == ':';
}

// 1*DIGIT, at most 2^53-1 (the largest length JavaScript numbers carry exactly).
bool parseContentLength(const char* p, size_t n, uint64_t* out) {
  constexpr uint64_t kMax = (uint64_t{1} << 53) - 1;
  if (n == 0) return false;
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(p[i]);
    if (!isDigit(c)) return false;
    const uint64_t d = c - '0';
    if (v > (kMax - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

// Calls fn(element_ptr, element_len) for each non-empty element of a
// comma-separated list, OWS around elements removed.
template <class Fn>
void forEachListElement(const char* p, size_t n, Fn&& fn) {
  size_t i = 0;
  while (i <= n) {
    size_t j = i;
    while (j < n && p[j] != ',') ++j;
    size_t s = i, e = j;
    while (s < e && isOws(static_cast<unsigned char>(p[s]))) ++s;
    while (e > s && isOws(static_cast<unsigned char>(p[e - 1]))) --e;
    if (e > s) fn(p + s, e - s);
    i = j + 1;
  }
}

// ---------------------------------------------------------------------------
// The line walker

enum class Step : uint8_t { Ok, NeedMore, Fail };

struct RequestLine {
  size_t method_off, method_len;
  size_t target_off, target_len;
  uint8_t minor;
  Method method;
  size_t next;  // offset just past the request line's CRLF
};

struct FieldState {
  uint32_t nfields = 0;
  size_t too_many_off = 0;  // start of the first field line beyond max_headers
  bool cl_known = false;    // a Content-Length value was seen (or looked up)
  bool cl_lookup_done = false;
  uint64_t cl_value = 0;
  size_t head_end = 0;
  size_t stop = 0;  // on NeedMore: start of the unfinished line
};

template <class S>
struct Walker {
  const char* b;
  size_t lim;       // bytes we may look at: min(len, max_head_size)
  size_t max_line;  // bytes of one line (request or field line), CRLF included
  S scan;
  ParseError err = ParseError::None;
  size_t err_off = 0;

  Walker(const char* buf, size_t l, size_t line) : b(buf), lim(l), max_line(line), scan(buf, l) {}

  Step fail(ParseError e, size_t off) {
    err = e;
    err_off = off;
    return Step::Fail;
  }

  // Skips the empty lines RFC 9112 section 2.2 lets a server ignore before
  // the request line. *pos is left at the request line (or where more bytes
  // are needed).
  Step skipEmptyLines(size_t* pos) {
    size_t p = *pos;
    while (p < lim && b[p] == '\r') {
      if (p + 1 >= lim) {
        *pos = p;
        return Step::NeedMore;
      }
      if (b[p + 1] != '\n') return fail(ParseError::BadRequest, p);
      p += 2;
    }
    *pos = p;
    return p < lim ? Step::Ok : Step::NeedMore;
  }

  // method SP request-target SP HTTP-version CRLF
  FEERSUM_ALWAYS_INLINE Step requestLine(size_t s, RequestLine* rl) {
    const size_t m = scan.tokenEnd(s);
    if (m >= lim) return Step::NeedMore;
    if (b[m] != ' ' || m == s) return fail(ParseError::BadRequest, m);

    const size_t t0 = m + 1;
    const size_t t = scan.targetEnd(t0);
    if (t >= lim) return Step::NeedMore;
    if (b[t] != ' ') {
      // "GET /\r\n": an HTTP/0.9 request line (no version).
      if (b[t] == '\r' && t > t0) return fail(ParseError::BadVersion, t);
      return fail(ParseError::BadRequest, t);
    }
    if (t == t0) return fail(ParseError::BadRequest, t);  // empty target (two spaces)

    // HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive.
    const size_t v = t + 1;
    static const char kShape[] = "HTTP/0.0";
    for (size_t i = 0; i < 8; ++i) {
      if (v + i >= lim) return Step::NeedMore;
      const unsigned char c = static_cast<unsigned char>(b[v + i]);
      const bool ok = (i == 5 || i == 7) ? isDigit(c) : c == static_cast<unsigned char>(kShape[i]);
      if (!ok) return fail(ParseError::BadVersion, v + i);
    }
    const int major = b[v + 5] - '0';
    const int minor = b[v + 7] - '0';
    // Decided here, whatever follows: a well-formed version other than
    // 1.0/1.1 is 505 (so "HTTP/2.0" is refused even before its CRLF).
    if (major != 1 || minor > 1) return fail(ParseError::UnsupportedVersion, v);
    if (v + 8 >= lim) return Step::NeedMore;
    if (b[v + 8] != '\r') return fail(ParseError::BadVersion, v + 8);
    if (v + 9 >= lim) return Step::NeedMore;
    if (b[v + 9] != '\n') return fail(ParseError::BadRequest, v + 8);

    // The line is complete: method registry and request-target form.
    Method method;
    bool m_search;
    if (!lookupMethod(b + s, m - s, &method, &m_search)) return fail(ParseError::UnknownMethod, s);
    const char* tp = b + t0;
    const size_t tn = t - t0;
    bool form_ok;
    if (method == Method::Connect) {
      form_ok = validAuthority(tp, tn, true);  // authority-form only
    } else if (tp[0] == '/') {
      form_ok = true;  // origin-form
    } else if (tn == 1 && tp[0] == '*') {
      // asterisk-form: OPTIONS (RFC 9112 section 3.2.4); also M-SEARCH,
      // whose only use (SSDP) always targets "*".
      form_ok = method == Method::Options || m_search;
    } else {
      form_ok = isAbsoluteForm(tp, tn);
    }
    if (!form_ok) return fail(ParseError::BadRequest, t0);
    if (v + 10 - s > max_line) return fail(ParseError::UriTooLong, s);

    rl->method_off = s;
    rl->method_len = m - s;
    rl->target_off = t0;
    rl->target_len = tn;
    rl->minor = static_cast<uint8_t>(minor);
    rl->method = method;
    rl->next = v + 10;
    return Step::Ok;
  }

  // Content-Length is checked where it appears so a bad or disagreeing
  // value is refused as early as the rest of a line's syntax.
  Step contentLength(size_t v, size_t vlen, size_t resumed_from, FieldState* st) {
    uint64_t val;
    if (!parseContentLength(b + v, vlen, &val)) return fail(ParseError::BadContentLength, v);
    if (!st->cl_known && resumed_from && !st->cl_lookup_done) {
      st->cl_lookup_done = true;
      st->cl_known = findEarlierContentLength(resumed_from, &st->cl_value);
    }
    if (st->cl_known) {
      // Equal duplicates are accepted (RFC 9110 section 8.6), others refused.
      if (val != st->cl_value) return fail(ParseError::BadContentLength, v);
    } else {
      st->cl_known = true;
      st->cl_value = val;
    }
    return Step::Ok;
  }

  // In a resumed pass, the lines before `upto` were checked by an earlier
  // call; find the first Content-Length among them (only needed when
  // another one shows up).
  bool findEarlierContentLength(size_t upto, uint64_t* value) {
    size_t p = 0;
    while (p + 1 < upto && b[p] == '\r') p += 2;  // leading empty lines
    const char* nl = static_cast<const char*>(std::memchr(b + p, '\n', upto - p));
    if (!nl) return false;
    p = static_cast<size_t>(nl - b) + 1;  // past the request line
    while (p < upto) {
      nl = static_cast<const char*>(std::memchr(b + p, '\n', upto - p));
      if (!nl) return false;
      const size_t eol = static_cast<size_t>(nl - b) - 1;  // the CR
      const char* colon = static_cast<const char*>(std::memchr(b + p, ':', eol - p));
      if (colon && colon - (b + p) == 14 && ieq(b + p, "content-length", 14)) {
        size_t v = static_cast<size_t>(colon - b) + 1, e = eol;
        while (v < e && isOws(static_cast<unsigned char>(b[v]))) ++v;
        while (e > v && isOws(static_cast<unsigned char>(b[e - 1]))) --e;
        return parseContentLength(b + v, e - v, value);
      }
      p = eol + 2;
    }
    return false;
  }

  // Field lines from `pos` up to and including the blank line. With
  // Record, fields are stored in out->fields (up to `capacity`).
  // resumed_from != 0 means lines before it were checked by an earlier call.
  template <bool Record>
  FEERSUM_ALWAYS_INLINE Step fieldLines(size_t pos, size_t resumed_from, FieldState* st, HeaderField* fields,
                                        uint32_t capacity) {
    for (;;) {
      const size_t ls = pos;
      if (ls >= lim) {
        st->stop = ls;
        return Step::NeedMore;
      }
      const unsigned char c = static_cast<unsigned char>(b[ls]);
      if (c == '\r') {
        if (ls + 1 >= lim) {
          st->stop = ls;
          return Step::NeedMore;
        }
        if (b[ls + 1] != '\n') return fail(ParseError::BadRequest, ls);
        st->head_end = ls + 2;
        return Step::Ok;
      }
      if (isOws(c)) return fail(ParseError::ObsFold, ls);

      const size_t n = scan.tokenEnd(ls);
      if (n >= lim) {
        st->stop = ls;
        return Step::NeedMore;
      }
      // No whitespace (or anything else) between field-name and ':'.
      if (b[n] != ':' || n == ls) return fail(ParseError::BadRequest, n);

      size_t v = n + 1;
      while (v < lim && isOws(static_cast<unsigned char>(b[v]))) ++v;
      const size_t e = scan.valueEnd(v);
      if (e >= lim) {
        st->stop = ls;
        return Step::NeedMore;
      }
      if (b[e] != '\r') return fail(ParseError::BadRequest, e);  // CTL, DEL or bare LF
      if (e + 1 >= lim) {
        st->stop = ls;
        return Step::NeedMore;
      }
      if (b[e + 1] != '\n') return fail(ParseError::BadRequest, e);  // bare CR
      if (e + 2 - ls > max_line) return fail(ParseError::HeadTooLarge, ls);
      size_t ve = e;
      while (ve > v && isOws(static_cast<unsigned char>(b[ve - 1]))) --ve;

      if (n - ls == 14 && ieq(b + ls, "content-length", 14)) {
        if (contentLength(v, ve - v, resumed_from, st) == Step::Fail) return Step::Fail;
      }
      if (Record) {
        if (st->nfields < capacity) {
          if (fields) {
            HeaderField& f = fields[st->nfields];
            f.name_off = static_cast<uint32_t>(ls);
            f.name_len = static_cast<uint32_t>(n - ls);
            f.value_off = static_cast<uint32_t>(v);
            f.value_len = static_cast<uint32_t>(ve - v);
          }
        } else if (st->nfields == capacity) {
          st->too_many_off = ls;
        }
      }
      ++st->nfields;
      pos = e + 2;
    }
  }
};

// Derives framing and connection semantics from the recorded fields.
ParseResult finishHead(const char* b, const RequestLine& rl, const FieldState& st, const ParserLimits& limits,
                       RequestHead* out) {
  auto fail = [](ParseError e, size_t off) {
    return ParseResult{ParseStatus::Error, e, static_cast<uint32_t>(off)};
  };
  if (st.nfields > limits.max_headers) return fail(ParseError::TooManyHeaders, st.too_many_off);

  out->method_off = static_cast<uint32_t>(rl.method_off);
  out->method_len = static_cast<uint32_t>(rl.method_len);
  out->target_off = static_cast<uint32_t>(rl.target_off);
  out->target_len = static_cast<uint32_t>(rl.target_len);
  {
    size_t pl = 0;
    const char* t = b + rl.target_off;
    while (pl < rl.target_len && t[pl] != '?' && t[pl] != '#') ++pl;
    out->path_len = static_cast<uint32_t>(pl);
  }
  out->version_minor = rl.minor;
  out->method = rl.method;
  out->num_fields = st.nfields;
  out->head_len = static_cast<uint32_t>(st.head_end);

  int32_t host_idx = -1;
  uint32_t host_count = 0;
  size_t host_dup_off = 0;
  bool te = false, te_bad = false, te_unknown = false, te_last_chunked = false;
  uint32_t te_elems = 0, te_chunked = 0;
  size_t te_off = 0;
  bool conn_close = false, conn_keep_alive = false, conn_upgrade = false, has_upgrade = false;
  bool expect_bad = false, expect_100 = false;
  size_t expect_off = 0;

  // Lengths of the names looked at below: host 4, expect 6, upgrade 7,
  // connection 10, transfer-encoding 17 (Content-Length was handled per line).
  constexpr uint32_t kLengths = 1u << 4 | 1u << 6 | 1u << 7 | 1u << 10 | 1u << 17;
  const HeaderField* fields = out->fields;
  for (uint32_t i = 0; fields && i < st.nfields; ++i) {
    const HeaderField& f = fields[i];
    if (f.name_len >= 32 || !(kLengths >> f.name_len & 1)) continue;
    const char* name = b + f.name_off;
    const char* val = b + f.value_off;
    switch (f.name_len) {
      case 4:
        if (ieq(name, "host", 4)) {
          if (++host_count == 2) host_dup_off = f.name_off;
          if (host_idx < 0) host_idx = static_cast<int32_t>(i);
        }
        break;
      case 6:
        if (ieq(name, "expect", 6)) {
          forEachListElement(val, f.value_len, [&](const char* p, size_t n) {
            if (n == 12 && ieq(p, "100-continue", 12)) {
              expect_100 = true;
            } else if (!expect_bad) {
              expect_bad = true;
              expect_off = static_cast<size_t>(p - b);
            }
          });
        }
        break;
      case 7:
        if (ieq(name, "upgrade", 7)) has_upgrade = true;
        break;
      case 10:
        if (ieq(name, "connection", 10)) {
          forEachListElement(val, f.value_len, [&](const char* p, size_t n) {
            if (n == 5 && ieq(p, "close", 5)) conn_close = true;
            else if (n == 10 && ieq(p, "keep-alive", 10)) conn_keep_alive = true;
            else if (n == 7 && ieq(p, "upgrade", 7)) conn_upgrade = true;
          });
        }
        break;
      case 17:
        if (ieq(name, "transfer-encoding", 17)) {
          if (!te) te_off = f.value_off;
          te = true;
          // transfer-coding = token *( OWS ";" OWS transfer-parameter )
          forEachListElement(val, f.value_len, [&](const char* p, size_t n) {
            ++te_elems;
            size_t k = 0;
            while (k < n && isTchar(static_cast<unsigned char>(p[k]))) ++k;
            const bool has_params = k < n;
            if (k == 0) {
              te_bad = true;
            } else if (has_params) {
              size_t q = k;
              while (q < n && isOws(static_cast<unsigned char>(p[q]))) ++q;
              if (q >= n || p[q] != ';') te_bad = true;
            }
            if (k == 7 && ieq(p, "chunked", 7)) {
              if (has_params) te_bad = true;  // chunked takes no parameters
              ++te_chunked;
              te_last_chunked = true;
            } else {
              te_unknown = true;
              te_last_chunked = false;
            }
          });
        }
        break;
      default:
        break;
    }
  }

  if (host_count > 1) return fail(ParseError::BadHost, host_dup_off);
  if (host_idx >= 0) {
    const HeaderField& h = fields[host_idx];
    if (!validAuthority(b + h.value_off, h.value_len, false)) return fail(ParseError::BadHost, h.value_off);
  }

  out->framing = BodyFraming::None;
  out->content_length = 0;
  if (te) {
    // RFC 9112 section 6.1: HTTP/1.0 framing with Transfer-Encoding is faulty.
    if (rl.minor == 0) return fail(ParseError::BadTransferEncoding, te_off);
    // RFC 9112 section 6.3: refused rather than guessed (request smuggling).
    if (st.cl_known) return fail(ParseError::LengthWithChunked, te_off);
    // chunked must be the final coding, exactly once.
    if (te_bad || te_elems == 0 || te_chunked > 1 || (te_chunked == 1 && !te_last_chunked))
      return fail(ParseError::BadTransferEncoding, te_off);
    if (te_unknown) return fail(ParseError::UnknownCoding, te_off);
    out->framing = BodyFraming::Chunked;
  } else if (st.cl_known && st.cl_value > 0) {
    out->framing = BodyFraming::Length;
    out->content_length = st.cl_value;
  }
  // CONNECT has no content: what follows the head belongs to the tunnel.
  if (rl.method == Method::Connect) {
    out->framing = BodyFraming::None;
    out->content_length = 0;
  }

  if (expect_bad) return fail(ParseError::BadExpect, expect_off);
  if (rl.minor == 1 && host_count == 0) return fail(ParseError::MissingHost, st.head_end - 2);

  out->host_field = host_idx;
  out->keep_alive = !conn_close && (rl.minor == 1 || conn_keep_alive);
  // RFC 9110 section 10.1.1: a 100-continue in an HTTP/1.0 request is ignored.
  out->expect_continue = expect_100 && rl.minor == 1;
  // RFC 9110 section 7.8: Upgrade only counts with the "upgrade" connection
  // option, and is ignored in HTTP/1.0.
  out->upgrade = rl.method == Method::Connect || (has_upgrade && conn_upgrade && rl.minor == 1);
  return ParseResult{ParseStatus::Complete, ParseError::None, 0};
}

template <class S>
FEERSUM_ALWAYS_INLINE ParseResult parseImpl(const char* buf, size_t len, uint32_t* scanned, const ParserLimits& limits,
                                            RequestHead* out) {
  const size_t max = limits.max_head_size;
  const size_t lim = len < max ? len : max;
  Walker<S> w(buf, lim, limits.max_line_size);

  auto error = [&](ParseError e, size_t off) {
    return ParseResult{ParseStatus::Error, e, static_cast<uint32_t>(off)};
  };
  auto needMore = [&](size_t line_start, bool in_request_line) {
    const ParseError too_long = in_request_line ? ParseError::UriTooLong : ParseError::HeadTooLarge;
    if (len >= max) return error(too_long, max);
    // An unfinished line already over the line limit: refuse it now rather
    // than buffer up to max_head_size of it.
    if (len - line_start > limits.max_line_size) return error(too_long, line_start);
    *scanned = static_cast<uint32_t>(line_start);
    return ParseResult{ParseStatus::Partial, ParseError::None, 0};
  };

  // Where the previous call stopped. It is always a line start: either the
  // start of the request line (possibly after empty lines, in which case
  // the two bytes before it are a CRLF preceded by another CRLF or by
  // nothing) or the start of an unfinished field line (preceded by a line
  // that has content).
  size_t resume = *scanned;
  bool request_line_done = false;
  if (resume != 0) {
    if (resume > lim || resume < 2 || buf[resume - 1] != '\n' || buf[resume - 2] != '\r') {
      resume = 0;  // not a position we could have left: start over
    } else if (!(resume == 2 || buf[resume - 3] == '\n')) {
      request_line_done = true;
    }
  }

  if (request_line_done) {
    // Check only the lines that were not complete last time.
    FieldState st;
    const Step s = w.template fieldLines<false>(resume, resume, &st, nullptr, 0);
    if (s == Step::Fail) return error(w.err, w.err_off);
    if (s == Step::NeedMore) return needMore(st.stop, false);
    resume = 0;  // complete: record everything in one pass from the start
  }

  size_t pos = resume;
  Step s = w.skipEmptyLines(&pos);
  if (s == Step::Fail) return error(w.err, w.err_off);
  if (s == Step::NeedMore) return needMore(pos, true);

  RequestLine rl;
  s = w.requestLine(pos, &rl);
  if (s == Step::Fail) return error(w.err, w.err_off);
  if (s == Step::NeedMore) return needMore(pos, true);

  FieldState st;
  s = w.template fieldLines<true>(rl.next, 0, &st, out->fields, limits.max_headers);
  if (s == Step::Fail) return error(w.err, w.err_off);
  if (s == Step::NeedMore) return needMore(st.stop, false);

  ParseResult r = finishHead(buf, rl, st, limits, out);
  if (r.status == ParseStatus::Complete) *scanned = 0;
  return r;
}

#if FEERSUM_X86_SIMD
// flatten: inline the whole walk, scanners included, into a function
// compiled for the target, so the vector loops are not out-of-line calls.
__attribute__((target("sse4.2"), flatten)) ParseResult parseSse42(const char* buf, size_t len, uint32_t* scanned,
                                                         const ParserLimits& limits, RequestHead* out) {
  return parseImpl<Sse42Scan>(buf, len, scanned, limits, out);
}
__attribute__((target("avx2"), flatten)) ParseResult parseAvx2(const char* buf, size_t len, uint32_t* scanned,
                                                       const ParserLimits& limits, RequestHead* out) {
  return parseImpl<Avx2Scan>(buf, len, scanned, limits, out);
}
#endif

ParseResult parseScalar(const char* buf, size_t len, uint32_t* scanned, const ParserLimits& limits,
                        RequestHead* out) {
  return parseImpl<ScalarScan>(buf, len, scanned, limits, out);
}

}  // namespace
}  // namespace detail

void forceScalarParser(bool force) {
  detail::setSimdLevel(force ? detail::SimdLevel::Scalar : detail::detectedSimdLevel());
}

ParseResult parseRequestHead(const char* buf, size_t len, uint32_t* scanned, const ParserLimits& limits,
                             RequestHead* out) {
#if FEERSUM_X86_SIMD
  switch (detail::activeSimdLevel()) {
    case detail::SimdLevel::Avx2: return detail::parseAvx2(buf, len, scanned, limits, out);
    case detail::SimdLevel::Sse42: return detail::parseSse42(buf, len, scanned, limits, out);
    case detail::SimdLevel::Scalar: break;
  }
#endif
  return detail::parseScalar(buf, len, scanned, limits, out);
}

}  // namespace feersum
