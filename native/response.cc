// Implementation of response-head formatting (see response.h).
#include "response.h"

#include <cstdio>
#include <ctime>

namespace feersum {

const char* reasonPhrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 102: return "Processing";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 207: return "Multi-Status";
    case 208: return "Already Reported";
    case 226: return "IM Used";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "I'm a Teapot";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 423: return "Locked";
    case 424: return "Failed Dependency";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 506: return "Variant Also Negotiates";
    case 507: return "Insufficient Storage";
    case 508: return "Loop Detected";
    case 510: return "Not Extended";
    case 511: return "Network Authentication Required";
    default: return "";
  }
}

const char* describe(HeadError e) {
  switch (e) {
    case HeadError::None: return "ok";
    case HeadError::BadStatus: return "invalid status code";
    case HeadError::BadHeaderName: return "invalid header name";
    case HeadError::BadHeaderValue: return "invalid character in header value";
    case HeadError::BadHeaderCount: return "headers must be a flat [name, value, ...] list without newlines";
    case HeadError::BadContentLength: return "invalid Content-Length header";
  }
  return "unknown";
}

namespace {

// RFC 9110 tchar.
struct TokenTable {
  bool t[256];
  constexpr TokenTable() : t() {
    for (int c = '0'; c <= '9'; ++c) t[c] = true;
    for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
    for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
    const char* extra = "!#$%&'*+-.^_`|~";
    for (const char* p = extra; *p; ++p) t[static_cast<unsigned char>(*p)] = true;
  }
};
constexpr TokenTable kToken;

inline char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

bool equalsLower(const char* p, size_t n, const char* lit, size_t litlen) {
  if (n != litlen) return false;
  for (size_t i = 0; i < n; ++i)
    if (lower(p[i]) != lit[i]) return false;
  return true;
}
#define EQ_LIT(p, n, lit) equalsLower(p, n, lit, sizeof(lit) - 1)

bool validValue(const char* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(p[i]);
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

// Walks the comma-separated tokens of a Connection value. Returns true when
// every token is close or keep-alive (the engine writes those itself).
bool scanConnection(const char* p, size_t n, bool* close) {
  bool only_framing = true;
  size_t i = 0;
  while (i < n) {
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == ',')) ++i;
    size_t start = i;
    while (i < n && p[i] != ',') ++i;
    size_t end = i;
    while (end > start && (p[end - 1] == ' ' || p[end - 1] == '\t')) --end;
    if (end == start) continue;
    if (EQ_LIT(p + start, end - start, "close")) *close = true;
    else if (!EQ_LIT(p + start, end - start, "keep-alive")) only_framing = false;
  }
  return only_framing;
}

}  // namespace

bool isTokenChar(unsigned char c) { return kToken.t[c]; }

HeadError appendAppHeaders(const char* block, size_t len, uint32_t count, ByteBuffer& out,
                           AppHeaderInfo* info) {
  if (count & 1) return HeadError::BadHeaderCount;
  if (count == 0) return len == 0 ? HeadError::None : HeadError::BadHeaderCount;
  const char* p = block;
  const char* end = block + len;
  for (uint32_t item = 0; item < count; item += 2) {
    const char* name = p;
    while (p < end && *p != '\n') ++p;
    size_t name_len = p - name;
    if (p == end) return HeadError::BadHeaderCount;
    ++p;
    const char* value = p;
    while (p < end && *p != '\n') ++p;
    size_t value_len = p - value;
    bool last = item + 2 == count;
    if (last ? p != end : p == end) return HeadError::BadHeaderCount;
    if (!last) ++p;

    if (name_len == 0) return HeadError::BadHeaderName;
    for (size_t i = 0; i < name_len; ++i)
      if (!kToken.t[static_cast<unsigned char>(name[i])]) return HeadError::BadHeaderName;
    if (!validValue(value, value_len)) return HeadError::BadHeaderValue;

    switch (lower(name[0])) {
      case 'c':
        if (EQ_LIT(name, name_len, "content-length")) {
          const char* v = value;
          size_t vn = value_len;
          while (vn && (*v == ' ' || *v == '\t')) ++v, --vn;
          while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t')) --vn;
          if (vn == 0 || vn > 15) return HeadError::BadContentLength;
          uint64_t cl = 0;
          for (size_t i = 0; i < vn; ++i) {
            if (v[i] < '0' || v[i] > '9') return HeadError::BadContentLength;
            cl = cl * 10 + (v[i] - '0');
          }
          if (info->has_content_length && info->content_length != cl) return HeadError::BadContentLength;
          info->has_content_length = true;
          info->content_length = cl;
          continue;
        }
        if (EQ_LIT(name, name_len, "connection")) {
          if (scanConnection(value, value_len, &info->connection_close)) continue;
        }
        break;
      case 't':
        if (EQ_LIT(name, name_len, "transfer-encoding")) continue;
        break;
      case 'd':
        if (EQ_LIT(name, name_len, "date")) info->has_date = true;
        break;
      case 's':
        if (EQ_LIT(name, name_len, "server")) info->has_server = true;
        break;
    }
    char* o = out.grow(name_len + value_len + 4);
    if (!o) return HeadError::BadHeaderValue;
    std::memcpy(o, name, name_len);
    o += name_len;
    *o++ = ':';
    *o++ = ' ';
    std::memcpy(o, value, value_len);
    o += value_len;
    *o++ = '\r';
    *o++ = '\n';
    out.resize(out.size() + name_len + value_len + 4);
  }
  return HeadError::None;
}

void appendStatusLine(ByteBuffer& out, int status, bool http10) {
  if (http10) out.appendLiteral("HTTP/1.0 ");
  else out.appendLiteral("HTTP/1.1 ");
  char digits[3] = {static_cast<char>('0' + status / 100), static_cast<char>('0' + status / 10 % 10),
                    static_cast<char>('0' + status % 10)};
  out.append(digits, 3);
  out.appendLiteral(" ");
  const char* reason = reasonPhrase(status);
  out.append(reason, std::strlen(reason));
  out.appendLiteral("\r\n");
}

const char* dateHeader(size_t* len) {
  // Formatted by hand: strftime's %a/%b follow the process locale.
  static const char kDays[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char kMonths[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  static thread_local char buf[48];
  static thread_local time_t cached = 0;
  constexpr size_t kLen = sizeof("Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n") - 1;
  time_t now = time(nullptr);
  if (now != cached) {
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(buf, sizeof buf, "Date: %s, %02d %s %04d %02d:%02d:%02d GMT\r\n", kDays[tm.tm_wday],
             tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    cached = now;
  }
  *len = kLen;
  return buf;
}

size_t formatChunkSize(char* out, uint64_t n) {
  static const char kDigits[] = "0123456789abcdef";
  char tmp[16];
  size_t k = 0;
  do {
    tmp[k++] = kDigits[n & 15];
    n >>= 4;
  } while (n);
  for (size_t i = 0; i < k; ++i) out[i] = tmp[k - 1 - i];
  out[k] = '\r';
  out[k + 1] = '\n';
  return k + 2;
}

}  // namespace feersum
