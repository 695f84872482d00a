// Unit tests for the request-head parser, the chunked decoder and the
// request probe. Build and run with test/native/run.sh (ASan + UBSan).
//   parser_unit            run the tests
//   parser_unit --bench [iterations [impl]]
//                          micro-benchmark (build with run.sh bench, no sanitizers)
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "../../native/http_parser.h"
#include "../../native/http_parser_internal.h"
#include "../../native/request_probe.h"

using namespace feersum;
using detail::SimdLevel;

namespace {

int g_failures = 0;
long g_checks = 0;

#define CHECK(cond)                                                              \
  do {                                                                           \
    ++g_checks;                                                                  \
    if (!(cond)) {                                                               \
      ++g_failures;                                                              \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                            \
  } while (0)

#define CHECK_CTX(cond, ctx)                                                                    \
  do {                                                                                          \
    ++g_checks;                                                                                 \
    if (!(cond)) {                                                                              \
      ++g_failures;                                                                             \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s  [%s]\n", __FILE__, __LINE__, #cond, (ctx).c_str()); \
    }                                                                                           \
  } while (0)

std::string printable(const std::string& s) {
  std::string o;
  for (unsigned char c : s) {
    if (c == '\r') o += "\\r";
    else if (c == '\n') o += "\\n";
    else if (c == '\t') o += "\\t";
    else if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      o += buf;
    } else {
      o += static_cast<char>(c);
    }
  }
  return o.size() > 300 ? o.substr(0, 300) + "..." : o;
}

std::vector<SimdLevel> levels() {
  std::vector<SimdLevel> v{SimdLevel::Scalar};
  if (detail::detectedSimdLevel() >= SimdLevel::Sse42) v.push_back(SimdLevel::Sse42);
  if (detail::detectedSimdLevel() >= SimdLevel::Avx2) v.push_back(SimdLevel::Avx2);
  return v;
}

struct LevelGuard {
  ~LevelGuard() { detail::setSimdLevel(detail::detectedSimdLevel()); }
};

// ---------------------------------------------------------------------------
// Head parsing helpers

struct Parsed {
  ParseResult r{};
  RequestHead h{};
  std::vector<HeaderField> fields;
  std::string buf;
  uint32_t scanned = 0;

  std::string str(uint32_t off, uint32_t len) const { return buf.substr(off, len); }
  std::string name(size_t i) const { return str(fields[i].name_off, fields[i].name_len); }
  std::string value(size_t i) const { return str(fields[i].value_off, fields[i].value_len); }
  std::string method() const { return str(h.method_off, h.method_len); }
  std::string target() const { return str(h.target_off, h.target_len); }
};

// One parser call on an exactly-sized heap copy of s[0, n).
ParseResult callParser(const std::string& s, size_t n, uint32_t* scanned, const ParserLimits& lim, RequestHead* h) {
  std::unique_ptr<char[]> copy(new char[n ? n : 1]);
  std::memcpy(copy.get(), s.data(), n);
  return parseRequestHead(copy.get(), n, scanned, lim, h);
}

// Feeds the prefixes ending at `cuts` (ascending), then the whole string,
// stopping at the first call that is not Partial.
Parsed parseWithCuts(const std::string& s, const std::vector<size_t>& cuts, const ParserLimits& lim) {
  Parsed p;
  p.buf = s;
  p.fields.assign(lim.max_headers ? lim.max_headers : 1, HeaderField{});
  p.h.fields = p.fields.data();
  for (size_t c : cuts) {
    if (c >= s.size()) break;
    p.r = callParser(s, c, &p.scanned, lim, &p.h);
    if (p.r.status != ParseStatus::Partial) return p;
  }
  p.r = callParser(s, s.size(), &p.scanned, lim, &p.h);
  return p;
}

Parsed parseWhole(const std::string& s, const ParserLimits& lim = ParserLimits()) { return parseWithCuts(s, {}, lim); }

bool sameOutcome(const Parsed& a, const Parsed& b, std::string* why) {
  if (a.r.status != b.r.status) return *why = "status", false;
  if (a.r.status == ParseStatus::Error) {
    if (a.r.error != b.r.error) return *why = std::string("error ") + parseErrorName(a.r.error) + " vs " + parseErrorName(b.r.error), false;
    if (a.r.error_offset != b.r.error_offset) return *why = "error_offset " + std::to_string(a.r.error_offset) + " vs " + std::to_string(b.r.error_offset), false;
    return true;
  }
  if (a.r.status != ParseStatus::Complete) return true;
  const RequestHead &x = a.h, &y = b.h;
  if (x.method_off != y.method_off || x.method_len != y.method_len || x.target_off != y.target_off ||
      x.target_len != y.target_len || x.path_len != y.path_len || x.version_minor != y.version_minor ||
      x.method != y.method || x.num_fields != y.num_fields || x.framing != y.framing ||
      x.content_length != y.content_length || x.keep_alive != y.keep_alive ||
      x.expect_continue != y.expect_continue || x.upgrade != y.upgrade || x.host_field != y.host_field ||
      x.head_len != y.head_len)
    return *why = "head", false;
  for (uint32_t i = 0; i < x.num_fields; ++i) {
    const HeaderField &f = x.fields[i], &g = y.fields[i];
    if (f.name_off != g.name_off || f.name_len != g.name_len || f.value_off != g.value_off || f.value_len != g.value_len)
      return *why = "field " + std::to_string(i), false;
  }
  return true;
}

// Parses s whole with every scanner level, resumed after every single split
// point, and fed one byte at a time; all must agree. Returns the whole,
// scalar result.
Parsed checkHead(const std::string& s, const ParserLimits& lim = ParserLimits()) {
  LevelGuard guard;
  detail::setSimdLevel(SimdLevel::Scalar);
  Parsed base = parseWhole(s, lim);
  for (SimdLevel lv : levels()) {
    detail::setSimdLevel(lv);
    std::string why;
    Parsed whole = parseWhole(s, lim);
    CHECK_CTX(sameOutcome(base, whole, &why), std::string(detail::simdLevelName(lv)) + " whole: " + why + " :: " + printable(s));
    for (size_t k = 1; k < s.size(); ++k) {
      Parsed split = parseWithCuts(s, {k}, lim);
      if (!sameOutcome(base, split, &why)) {
        CHECK_CTX(false, std::string(detail::simdLevelName(lv)) + " split at " + std::to_string(k) + ": " + why + " :: " + printable(s));
        break;
      }
    }
    std::vector<size_t> every;
    for (size_t k = 1; k < s.size(); ++k) every.push_back(k);
    Parsed bytewise = parseWithCuts(s, every, lim);
    CHECK_CTX(sameOutcome(base, bytewise, &why), std::string(detail::simdLevelName(lv)) + " bytewise: " + why + " :: " + printable(s));
  }
  return base;
}

Parsed expectComplete(const std::string& s, const ParserLimits& lim = ParserLimits()) {
  Parsed p = checkHead(s, lim);
  CHECK_CTX(p.r.status == ParseStatus::Complete,
            std::string("expected Complete, got ") +
                (p.r.status == ParseStatus::Error ? parseErrorName(p.r.error) : "Partial") + " :: " + printable(s));
  return p;
}

void expectError(const std::string& s, ParseError e, const ParserLimits& lim = ParserLimits()) {
  Parsed p = checkHead(s, lim);
  CHECK_CTX(p.r.status == ParseStatus::Error && p.r.error == e,
            std::string("expected ") + parseErrorName(e) + ", got " +
                (p.r.status == ParseStatus::Error ? parseErrorName(p.r.error)
                                                   : p.r.status == ParseStatus::Partial ? "Partial" : "Complete") +
                " :: " + printable(s));
}

void expectPartial(const std::string& s, const ParserLimits& lim = ParserLimits()) {
  Parsed p = checkHead(s, lim);
  CHECK_CTX(p.r.status == ParseStatus::Partial,
            std::string("expected Partial, got ") +
                (p.r.status == ParseStatus::Error ? parseErrorName(p.r.error) : "Complete") + " :: " + printable(s));
}

std::string req(const std::string& fields, const std::string& line = "GET / HTTP/1.1") {
  return line + "\r\n" + fields + "\r\n";
}
std::string withHost(const std::string& fields) { return "Host: example.com\r\n" + fields; }

// ---------------------------------------------------------------------------
// Tests: request line

void testRequestLine() {
  {
    Parsed p = expectComplete(req(withHost(""), "GET /index.html?x=1 HTTP/1.1"));
    CHECK(p.method() == "GET");
    CHECK(p.h.method == Method::Get);
    CHECK(p.target() == "/index.html?x=1");
    CHECK(p.h.path_len == 11);
    CHECK(p.h.version_minor == 1);
    CHECK(p.h.num_fields == 1);
    CHECK(p.h.host_field == 0);
    CHECK(p.h.keep_alive);
    CHECK(!p.h.upgrade);
    CHECK(p.h.framing == BodyFraming::None);
    CHECK(p.h.head_len == p.buf.size());
  }
  {
    Parsed p = expectComplete("GET /a#b?c HTTP/1.0\r\n\r\n");
    CHECK(p.h.path_len == 2);
    CHECK(p.h.version_minor == 0);
    CHECK(!p.h.keep_alive);
    CHECK(p.h.host_field == -1);
  }
  // leading empty lines are skipped and counted
  {
    Parsed p = expectComplete("\r\n\r\nGET / HTTP/1.0\r\n\r\n");
    CHECK(p.h.method_off == 4);
    CHECK(p.h.head_len == p.buf.size());
  }
  expectError("\nGET / HTTP/1.0\r\n\r\n", ParseError::BadRequest);
  expectError("\r\rGET / HTTP/1.0\r\n\r\n", ParseError::BadRequest);

  // method: token, registered, case-sensitive
  expectError(req(withHost(""), "get / HTTP/1.1"), ParseError::UnknownMethod);
  expectError(req(withHost(""), "FOO / HTTP/1.1"), ParseError::UnknownMethod);
  expectError(req(withHost(""), "MKCOLA / HTTP/1.1"), ParseError::UnknownMethod);
  expectError(req(withHost(""), "PRI * HTTP/1.1"), ParseError::UnknownMethod);
  for (const char* rtsp : {"ANNOUNCE", "DESCRIBE", "SETUP", "PLAY", "PAUSE", "TEARDOWN", "GET_PARAMETER",
                           "SET_PARAMETER", "REDIRECT", "RECORD", "FLUSH"})
    expectError(req(withHost(""), std::string(rtsp) + " / HTTP/1.1"), ParseError::UnknownMethod);
  expectError(req(withHost(""), "G@T / HTTP/1.1"), ParseError::BadRequest);
  expectError(req(withHost(""), "GE\x01T / HTTP/1.1"), ParseError::BadRequest);
  expectError(req(withHost(""), " GET / HTTP/1.1"), ParseError::BadRequest);
  expectError(req(withHost(""), "GET\t/ HTTP/1.1"), ParseError::BadRequest);
  expectError(req(withHost(""), "GET  / HTTP/1.1"), ParseError::BadRequest);
  expectError(req(withHost(""), "GET /  HTTP/1.1"), ParseError::BadVersion);
  expectError(req(withHost(""), "GET / HTTP/1.1 "), ParseError::BadVersion);
  expectError("GET\r\n\r\n", ParseError::BadRequest);

  struct M {
    const char* name;
    Method m;
  };
  const M all[] = {{"ACL", Method::Other},       {"BIND", Method::Other},      {"CHECKOUT", Method::Other},
                   {"COPY", Method::Other},      {"DELETE", Method::Delete},   {"GET", Method::Get},
                   {"HEAD", Method::Head},       {"LINK", Method::Other},      {"LOCK", Method::Other},
                   {"M-SEARCH", Method::Other},  {"MERGE", Method::Other},     {"MKACTIVITY", Method::Other},
                   {"MKCALENDAR", Method::Other}, {"MKCOL", Method::Other},    {"MOVE", Method::Other},
                   {"NOTIFY", Method::Other},    {"OPTIONS", Method::Options}, {"PATCH", Method::Patch},
                   {"POST", Method::Post},       {"PROPFIND", Method::Other},  {"PROPPATCH", Method::Other},
                   {"PURGE", Method::Other},     {"PUT", Method::Put},         {"QUERY", Method::Other},
                   {"REBIND", Method::Other},    {"REPORT", Method::Other},    {"SEARCH", Method::Other},
                   {"SOURCE", Method::Other},    {"SUBSCRIBE", Method::Other}, {"TRACE", Method::Trace},
                   {"UNBIND", Method::Other},    {"UNLINK", Method::Other},    {"UNLOCK", Method::Other},
                   {"UNSUBSCRIBE", Method::Other}};
  for (const M& m : all) {
    Parsed p = expectComplete(req(withHost(""), std::string(m.name) + " /x HTTP/1.1"));
    CHECK_CTX(p.h.method == m.m, std::string(m.name));
    CHECK(p.method() == m.name);
  }
  {
    Parsed p = expectComplete(req(withHost(""), "CONNECT example.com:443 HTTP/1.1"));
    CHECK(p.h.method == Method::Connect);
    CHECK(p.h.upgrade);
    CHECK(p.h.framing == BodyFraming::None);
  }

  // request-target
  expectComplete(req(withHost(""), "GET http://example.com/a?b HTTP/1.1"));
  expectComplete(req(withHost(""), "GET http://a%12:b!&*$@hypnotoad.org:1234/toto HTTP/1.1"));
  expectComplete(req(withHost(""), "OPTIONS * HTTP/1.1"));
  expectComplete(req(withHost(""), "M-SEARCH * HTTP/1.1"));
  expectError(req(withHost(""), "GET * HTTP/1.1"), ParseError::BadRequest);
  expectError(req(withHost(""), "GET ** HTTP/1.1"), ParseError::BadRequest);
  expectError(req(withHost(""), "GET ?x HTTP/1.1"), ParseError::BadRequest);
  expectError(req(withHost(""), "GET a HTTP/1.1"), ParseError::BadRequest);
  expectError(req(withHost(""), "GET 1http://x HTTP/1.1"), ParseError::BadRequest);
  expectError(req(withHost(""), "GET http: HTTP/1.1"), ParseError::BadRequest);
  expectError(req(withHost(""), "GET /\x80 HTTP/1.1"), ParseError::BadRequest);
  expectError(req(withHost(""), "GET /\xff HTTP/1.1"), ParseError::BadRequest);
  expectError(req(withHost(""), "GET /\x7f HTTP/1.1"), ParseError::BadRequest);
  expectError(req(withHost(""), std::string("GET /\0 HTTP/1.1", 16)), ParseError::BadRequest);
  expectError(req(withHost(""), "GET /a\tb HTTP/1.1"), ParseError::BadRequest);
  expectError(req(withHost(""), "GET /foo bar/ HTTP/1.1"), ParseError::BadVersion);
  // authority-form for CONNECT only, and CONNECT takes nothing else
  expectComplete(req(withHost(""), "CONNECT [::1]:443 HTTP/1.1"));
  expectComplete(req(withHost(""), "CONNECT home_0.example.com:443 HTTP/1.1"));
  expectError(req(withHost(""), "CONNECT example.com HTTP/1.1"), ParseError::BadRequest);
  expectError(req(withHost(""), "CONNECT example.com: HTTP/1.1"), ParseError::BadRequest);
  expectError(req(withHost(""), "CONNECT /x HTTP/1.1"), ParseError::BadRequest);
  expectError(req(withHost(""), "CONNECT user@example.com:443 HTTP/1.1"), ParseError::BadRequest);
  expectError(req(withHost(""), "CONNECT * HTTP/1.1"), ParseError::BadRequest);
  // a long target exercises the vector loops and their tails
  for (size_t n : {15u, 16u, 17u, 31u, 32u, 33u, 63u, 64u, 65u, 200u}) {
    std::string t = "/" + std::string(n, 'a');
    expectComplete(req(withHost(""), "GET " + t + " HTTP/1.1"));
    for (size_t bad : {size_t(1), n / 2, n}) {
      std::string u = t;
      u[bad] = '\x7f';
      expectError(req(withHost(""), "GET " + u + " HTTP/1.1"), ParseError::BadRequest);
      u[bad] = '\x80';
      expectError(req(withHost(""), "GET " + u + " HTTP/1.1"), ParseError::BadRequest);
    }
  }

  // HTTP-version
  expectError(req(withHost(""), "GET / HTTP/2.0"), ParseError::UnsupportedVersion);
  expectError(req(withHost(""), "GET / HTTP/1.2"), ParseError::UnsupportedVersion);
  expectError(req(withHost(""), "GET / HTTP/0.9"), ParseError::UnsupportedVersion);
  expectError(req(withHost(""), "GET / HTTP/3.0"), ParseError::UnsupportedVersion);
  expectError("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", ParseError::UnsupportedVersion);
  expectError("GET / HTTP/5.6", ParseError::UnsupportedVersion);  // certain before the CRLF
  expectError(req(withHost(""), "GET / http/1.1"), ParseError::BadVersion);
  expectError(req(withHost(""), "GET / HTTP/1.x"), ParseError::BadVersion);
  expectError(req(withHost(""), "GET / HTTP/1"), ParseError::BadVersion);
  expectError(req(withHost(""), "GET / HTTP/12.1"), ParseError::BadVersion);
  expectError(req(withHost(""), "GET / HTTP/1.10"), ParseError::BadVersion);
  expectError(req(withHost(""), "GET / HTTP/1.1x"), ParseError::BadVersion);
  expectError(req(withHost(""), "GET / RTSP/1.0"), ParseError::BadVersion);
  expectError(req(withHost(""), "GET / ICE/1.0"), ParseError::BadVersion);
  expectError(req(withHost(""), "GET / IHTTP/1.0"), ParseError::BadVersion);
  expectError(req(withHost(""), "GET /"), ParseError::BadVersion);  // HTTP/0.9 request line
  expectError("GET /\r\n\r\n", ParseError::BadVersion);
  expectError("GET / HTTP/1.1\rLine: 1\r\n", ParseError::BadRequest);  // bare CR
  expectError("GET / HTTP/1.1\nHost: a\n\n", ParseError::BadVersion);  // bare LF ends the version
  expectPartial("GET / HTTP/1.");
  expectPartial("GET /");
  expectPartial("G");
  expectPartial("");
}

// ---------------------------------------------------------------------------
// Tests: field lines

void testFields() {
  {
    Parsed p = expectComplete(req(withHost("X-A: \t a b \t\r\nX-Empty:\r\nX-Obs: \xff\x80z\r\nX-Tab:a\tb\r\n")));
    CHECK(p.h.num_fields == 5);
    CHECK(p.name(1) == "X-A");
    CHECK(p.value(1) == "a b");
    CHECK(p.value(2).empty());
    CHECK(p.value(3) == "\xff\x80z");
    CHECK(p.value(4) == "a\tb");
  }
  expectError(req(withHost("Foo : bar\r\n")), ParseError::BadRequest);
  expectError(req(withHost("Fo o: bar\r\n")), ParseError::BadRequest);
  expectError(req(withHost(": bar\r\n")), ParseError::BadRequest);
  expectError(req(withHost("Fo@: bar\r\n")), ParseError::BadRequest);
  expectError(req(withHost("Foo\r\n")), ParseError::BadRequest);
  expectError(req(withHost(std::string("Fo\0o: bar\r\n", 11))), ParseError::BadRequest);
  expectError(req(withHost("Foo\x80: bar\r\n")), ParseError::BadRequest);
  // obs-fold
  expectError(req(" Host: a\r\n"), ParseError::ObsFold);
  expectError(req(withHost("X: a\r\n b\r\n")), ParseError::ObsFold);
  expectError(req(withHost("X: a\r\n\tb\r\n")), ParseError::ObsFold);
  expectError("GET / HTTP/1.1\r\n Host: foo", ParseError::ObsFold);  // certain before the end
  // value bytes: CTLs other than HTAB, DEL, bare CR, bare LF
  for (int c : {0x00, 0x01, 0x08, 0x0b, 0x0c, 0x1f, 0x7f}) {
    std::string f = "X: a";
    f += static_cast<char>(c);
    f += "b\r\n";
    expectError(req(withHost(f)), ParseError::BadRequest);
  }
  expectError(req(withHost("X: a\rb\r\n")), ParseError::BadRequest);
  expectError(req(withHost("X: a\nY: b\r\n")), ParseError::BadRequest);
  expectError(req(withHost("X:\nY: b\r\n")), ParseError::BadRequest);
  expectError("GET / HTTP/1.1\r\nHost: a\r\n\rZGET /evil HTTP/1.1\r\n", ParseError::BadRequest);
  expectError("GET / HTTP/1.1\r\nHost: a\r\n\n", ParseError::BadRequest);
  expectError("GET / HTTP/1.1\r\nHost: a\n\r\n", ParseError::BadRequest);
  // long values at every vector boundary, with a bad byte at various places
  for (size_t n : {1u, 15u, 16u, 17u, 31u, 32u, 33u, 47u, 64u, 100u, 1000u}) {
    std::string v(n, 'v');
    Parsed p = expectComplete(req(withHost("X: " + v + "\r\n")));
    CHECK(p.value(1) == v);
    for (size_t bad : {size_t(0), n / 2, n - 1}) {
      for (char c : {'\x00', '\x7f', '\n', '\r', '\x1f'}) {
        std::string u = v;
        u[bad] = c;
        expectError(req(withHost("X: " + u + "\r\n")), ParseError::BadRequest);
      }
      std::string u = v;
      u[bad] = '\t';
      expectComplete(req(withHost("X: " + u + "\r\n")));
    }
  }
}

// ---------------------------------------------------------------------------
// Tests: semantics

void testContentLength() {
  auto cl = [](const std::string& v) { return req(withHost("Content-Length: " + v + "\r\n"), "POST / HTTP/1.1"); };
  {
    Parsed p = expectComplete(cl("0"));
    CHECK(p.h.framing == BodyFraming::None);
    CHECK(p.h.content_length == 0);
  }
  {
    Parsed p = expectComplete(cl("000"));
    CHECK(p.h.framing == BodyFraming::None);
  }
  {
    Parsed p = expectComplete(cl("0012"));
    CHECK(p.h.framing == BodyFraming::Length);
    CHECK(p.h.content_length == 12);
  }
  {
    Parsed p = expectComplete(cl("9007199254740991"));  // 2^53-1
    CHECK(p.h.framing == BodyFraming::Length);
    CHECK(p.h.content_length == 9007199254740991ull);
  }
  {
    // OWS around a field value is not part of it (RFC 9110 section 5.5)
    Parsed p = expectComplete(cl(" 1"));
    CHECK(p.h.content_length == 1);
    p = expectComplete(cl("1 "));
    CHECK(p.h.content_length == 1);
    p = expectComplete(cl("\t42\t  "));
    CHECK(p.h.content_length == 42);
  }
  expectError(cl("9007199254740992"), ParseError::BadContentLength);  // 2^53
  expectError(cl("18446744073709551616"), ParseError::BadContentLength);
  expectError(cl("1000000000000000000000"), ParseError::BadContentLength);
  expectError(cl("+1"), ParseError::BadContentLength);
  expectError(cl("-1"), ParseError::BadContentLength);
  expectError(cl("1 1"), ParseError::BadContentLength);
  expectError(cl("1,1"), ParseError::BadContentLength);
  expectError(cl("1, 1"), ParseError::BadContentLength);
  expectError(cl("0x10"), ParseError::BadContentLength);
  expectError(cl("a"), ParseError::BadContentLength);
  expectError(cl("1.0"), ParseError::BadContentLength);
  expectError(cl(""), ParseError::BadContentLength);
  // duplicates: equal accepted, different refused, also before the head ends
  {
    Parsed p = expectComplete(req(withHost("Content-Length: 5\r\ncontent-length: 05\r\n"), "POST / HTTP/1.1"));
    CHECK(p.h.content_length == 5);
  }
  expectError(req(withHost("Content-Length: 5\r\nContent-Length: 6\r\n"), "POST / HTTP/1.1"), ParseError::BadContentLength);
  expectError("PUT /url HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n", ParseError::BadContentLength);
  expectError("PUT /url HTTP/1.1\r\nContent-Length: 1000000000000000000000\r\n", ParseError::BadContentLength);
  // a disagreeing duplicate found in a later read than the first one
  {
    std::string s = "PUT / HTTP/1.1\r\nContent-Length: 1\r\nX: y\r\nContent-Length: 2\r\n\r\n";
    Parsed p = parseWithCuts(s, {20, 38, 40}, ParserLimits());
    CHECK(p.r.status == ParseStatus::Error && p.r.error == ParseError::BadContentLength);
  }
}

void testTransferEncoding() {
  auto te = [](const std::string& fields, const char* line = "POST / HTTP/1.1") { return req(withHost(fields), line); };
  {
    Parsed p = expectComplete(te("Transfer-Encoding: chunked\r\n"));
    CHECK(p.h.framing == BodyFraming::Chunked);
  }
  CHECK(expectComplete(te("Transfer-Encoding: CHUNKED\r\n")).h.framing == BodyFraming::Chunked);
  CHECK(expectComplete(te("Transfer-Encoding:  chunked \r\n")).h.framing == BodyFraming::Chunked);
  CHECK(expectComplete(te("Transfer-Encoding: , chunked\r\n")).h.framing == BodyFraming::Chunked);
  expectError(te("Transfer-Encoding: gzip, chunked\r\n"), ParseError::UnknownCoding);
  expectError(te("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"), ParseError::UnknownCoding);
  expectError(te("Transfer-Encoding: deflate, chunked\r\n"), ParseError::UnknownCoding);
  expectError(te("Transfer-Encoding: identity\r\n"), ParseError::UnknownCoding);
  expectError(te("Transfer-Encoding: gzip\r\n"), ParseError::UnknownCoding);
  expectError(te("Transfer-Encoding: xchunked\r\n"), ParseError::UnknownCoding);
  expectError(te("Transfer-Encoding: chunkedchunked\r\n"), ParseError::UnknownCoding);
  expectError(te("Transfer-Encoding: chunked, gzip\r\n"), ParseError::BadTransferEncoding);
  expectError(te("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"), ParseError::BadTransferEncoding);
  expectError(te("Transfer-Encoding: chunked, chunked\r\n"), ParseError::BadTransferEncoding);
  expectError(te("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), ParseError::BadTransferEncoding);
  expectError(te("Transfer-Encoding:\r\n"), ParseError::BadTransferEncoding);
  expectError(te("Transfer-Encoding: ,\r\n"), ParseError::BadTransferEncoding);
  expectError(te("Transfer-Encoding: chunked;x=1\r\n"), ParseError::BadTransferEncoding);
  expectError(te("Transfer-Encoding: chunked x\r\n"), ParseError::BadTransferEncoding);
  expectError(te("Transfer-Encoding: \"chunked\"\r\n"), ParseError::BadTransferEncoding);
  expectError(te("Transfer-Encoding: chunked\r\n", "POST / HTTP/1.0"), ParseError::BadTransferEncoding);
  expectError(te("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"), ParseError::LengthWithChunked);
  expectError(te("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"), ParseError::LengthWithChunked);
  expectError(te("Content-Length: 1\r\nTransfer-Encoding: identity\r\n"), ParseError::LengthWithChunked);
}

void testHostConnectionExpect() {
  expectError(req(""), ParseError::MissingHost);
  expectError(req("Accept: */*\r\n"), ParseError::MissingHost);
  expectComplete(req("", "GET / HTTP/1.0"));
  expectError(req("Host: a\r\nHost: a\r\n"), ParseError::BadHost);
  expectError(req("Host: a\r\nhost: b\r\n", "GET / HTTP/1.0"), ParseError::BadHost);
  for (const char* ok : {"a", "example.com", "example.com:80", "a:", "0.0.0.0=5000", "[::1]", "[::1]:8080",
                         "[v1.fe80::a+en1]", "%41b.c", "a_b-c~d", "127.0.0.1:65535", ""}) {
    Parsed p = expectComplete(req(std::string("Host: ") + ok + "\r\n"));
    CHECK(p.h.host_field == 0);
  }
  for (const char* bad : {"a b", "user@a", "a:x", ":80", "a:80:80", "[::1", "[]", "[x]", "%4", "%zz", "a/b",
                          "a?b", "\"a\""}) {
    expectError(req(std::string("Host: ") + bad + "\r\n"), ParseError::BadHost);
  }
  {
    Parsed p = expectComplete(req(withHost("Connection: close\r\n")));
    CHECK(!p.h.keep_alive);
    p = expectComplete(req(withHost("Connection: keep-alive, Close\r\n")));
    CHECK(!p.h.keep_alive);
    p = expectComplete(req("Connection: Keep-Alive\r\n", "GET / HTTP/1.0"));
    CHECK(p.h.keep_alive);
    p = expectComplete(req("Connection: keep-alive\r\nConnection: close\r\n", "GET / HTTP/1.0"));
    CHECK(!p.h.keep_alive);
    p = expectComplete(req("", "GET / HTTP/1.0"));
    CHECK(!p.h.keep_alive);
    p = expectComplete(req(withHost("Connection: foo, , keep-alive\r\n")));
    CHECK(p.h.keep_alive);
  }
  {
    Parsed p = expectComplete(req(withHost("Connection: Upgrade\r\nUpgrade: websocket\r\n")));
    CHECK(p.h.upgrade);
    CHECK(p.h.keep_alive);
    p = expectComplete(req(withHost("Upgrade: websocket\r\n")));
    CHECK(!p.h.upgrade);  // without the connection option
    p = expectComplete(req(withHost("Connection: upgrade\r\n")));
    CHECK(!p.h.upgrade);  // without an Upgrade field
    p = expectComplete(req("Connection: upgrade\r\nUpgrade: websocket\r\n", "GET / HTTP/1.0"));
    CHECK(!p.h.upgrade);  // ignored in HTTP/1.0
  }
  {
    Parsed p = expectComplete(req(withHost("Expect: 100-continue\r\n"), "POST / HTTP/1.1"));
    CHECK(p.h.expect_continue);
    p = expectComplete(req(withHost("Expect: 100-Continue\r\n"), "POST / HTTP/1.1"));
    CHECK(p.h.expect_continue);
    p = expectComplete(req("Expect: 100-continue\r\n", "POST / HTTP/1.0"));
    CHECK(!p.h.expect_continue);
    p = expectComplete(req(withHost("Expect:\r\n"), "POST / HTTP/1.1"));
    CHECK(!p.h.expect_continue);
    p = expectComplete(req(withHost(""), "POST / HTTP/1.1"));
    CHECK(!p.h.expect_continue);
  }
  expectError(req(withHost("Expect: 101-continue\r\n")), ParseError::BadExpect);
  expectError(req(withHost("Expect: 100-continue, foo\r\n")), ParseError::BadExpect);
  expectError(req(withHost("Expect: 100-continue;a=b\r\n")), ParseError::BadExpect);
  expectError(req(withHost("Expect: foo\r\n"), "GET / HTTP/1.0"), ParseError::BadExpect);
}

// ---------------------------------------------------------------------------
// Tests: limits

void testLimits() {
  const std::string base = req(withHost(""));
  // max_head_size: exactly at the limit passes, one over fails
  for (uint32_t extra : {0u, 1u, 100u}) {
    std::string s = req(withHost("X: " + std::string(extra, 'x') + "\r\n"));
    ParserLimits lim;
    lim.max_head_size = static_cast<uint32_t>(s.size());
    expectComplete(s, lim);
    lim.max_head_size = static_cast<uint32_t>(s.size() - 1);
    expectError(s, ParseError::HeadTooLarge, lim);
    // with bytes after the head (a body), the limit still applies to the head only
    lim.max_head_size = static_cast<uint32_t>(s.size());
    Parsed p = checkHead(s + "body bytes", lim);
    CHECK(p.r.status == ParseStatus::Complete && p.h.head_len == s.size());
  }
  {
    // request line without CRLF within the limit: 414; the line fits but the head does not: 431
    ParserLimits lim;
    lim.max_head_size = 64;
    expectError("GET /" + std::string(100, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::UriTooLong, lim);
    expectError("GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(100, 'x') + "\r\n\r\n", ParseError::HeadTooLarge, lim);
    expectPartial("GET / HTTP/1.1\r\nHost: a\r\nX: xx", lim);
    // a syntax error inside the limit wins over the size
    expectError("GET / HTTP/1.1\r\nHost: a\r\nX\x01: " + std::string(100, 'x') + "\r\n\r\n", ParseError::BadRequest, lim);
    // Partial means len < max_head_size
    std::string s = "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(100, 'x');
    Parsed p = parseWhole(s.substr(0, 63), lim);
    CHECK(p.r.status == ParseStatus::Partial);
    p = parseWhole(s.substr(0, 64), lim);
    CHECK(p.r.status == ParseStatus::Error && p.r.error == ParseError::HeadTooLarge && p.r.error_offset == 64);
  }
  {
    // max_line_size: one line, CRLF included; exactly at the limit passes.
    ParserLimits lim;
    lim.max_line_size = 64;
    const std::string line = "GET /" + std::string(48, 'a') + " HTTP/1.1\r\n";
    CHECK(line.size() == 64);
    expectComplete(line + "Host: a\r\n\r\n", lim);
    expectError("GET /a" + line.substr(5) + "Host: a\r\n\r\n", ParseError::UriTooLong, lim);
    const std::string field = "X: " + std::string(59, 'x') + "\r\n";
    CHECK(field.size() == 64);
    expectComplete(req(withHost(field)), lim);
    expectError(req(withHost("X: x" + field.substr(3))), ParseError::HeadTooLarge, lim);
    // trailing whitespace counts: it is on the line
    expectError(req(withHost("X: x  " + std::string(59, ' ') + "\r\n")), ParseError::HeadTooLarge, lim);
    // an unfinished line is refused as soon as it is over the limit, long
    // before max_head_size: the server does not buffer it
    Parsed p = parseWhole("GET /" + std::string(59, 'a'), lim);
    CHECK(p.r.status == ParseStatus::Partial);
    p = parseWhole("GET /" + std::string(60, 'a'), lim);
    CHECK(p.r.status == ParseStatus::Error && p.r.error == ParseError::UriTooLong);
    p = parseWhole("GET / HTTP/1.1\r\nX: " + std::string(62, 'x'), lim);
    CHECK(p.r.status == ParseStatus::Error && p.r.error == ParseError::HeadTooLarge && p.r.error_offset == 16);
    // the default is nginx's 8 KiB
    CHECK(ParserLimits().max_line_size == 8 * 1024);
    expectComplete(req(withHost("Cookie: " + std::string(8 * 1024 - 10, 'c') + "\r\n")));
    expectError(req(withHost("Cookie: " + std::string(8 * 1024 - 9, 'c') + "\r\n")), ParseError::HeadTooLarge);
  }
  // max_headers: exactly N passes, N+1 fails
  for (uint32_t n : {1u, 2u, 10u, 100u}) {
    std::string fields = withHost("");
    for (uint32_t i = 1; i < n; ++i) fields += "X-" + std::to_string(i) + ": v\r\n";
    ParserLimits lim;
    lim.max_headers = n;
    Parsed p = expectComplete(req(fields), lim);
    CHECK(p.h.num_fields == n);
    expectError(req(fields + "X-Last: v\r\n"), ParseError::TooManyHeaders, lim);
  }
  {
    ParserLimits lim;
    lim.max_headers = 0;
    expectComplete("GET / HTTP/1.0\r\n\r\n", lim);
    expectError("GET / HTTP/1.0\r\nX: y\r\n\r\n", ParseError::TooManyHeaders, lim);
  }
}

// ---------------------------------------------------------------------------
// Tests: resumption

void testResume() {
  // checkHead already splits every head at every offset; these check the
  // hint itself and a few heads spelled out.
  const std::string s = "GET /a HTTP/1.1\r\nHost: a\r\nX-Long: " + std::string(300, 'y') + "\r\n\r\n";
  {
    // CRLFCRLF split across reads at each of its bytes
    for (size_t cut : {s.size() - 1, s.size() - 2, s.size() - 3}) {
      Parsed p = parseWithCuts(s, {cut}, ParserLimits());
      CHECK(p.r.status == ParseStatus::Complete && p.h.head_len == s.size());
    }
    uint32_t scanned = 0;
    RequestHead h;
    std::vector<HeaderField> f(100);
    h.fields = f.data();
    ParseResult r = callParser(s, s.size() - 1, &scanned, ParserLimits(), &h);  // "...\r\n\r"
    CHECK(r.status == ParseStatus::Partial);
    CHECK(scanned == s.size() - 2);  // resumes at the blank line, not at the start
    r = callParser(s, s.size() - 40, &scanned, ParserLimits(), &h);
    CHECK(r.status == ParseStatus::Partial);
    CHECK(scanned == s.find("X-Long"));  // at the unfinished line
  }
  {
    // the caller may move the bytes between calls: offsets are buffer-relative
    std::string a = s.substr(0, 30);
    uint32_t scanned = 0;
    RequestHead h;
    std::vector<HeaderField> f(100);
    h.fields = f.data();
    ParseResult r = callParser(a, a.size(), &scanned, ParserLimits(), &h);
    CHECK(r.status == ParseStatus::Partial);
    std::string moved = s;  // a different allocation
    r = callParser(moved, moved.size(), &scanned, ParserLimits(), &h);
    CHECK(r.status == ParseStatus::Complete);
    CHECK(h.num_fields == 2 && h.host_field == 0);
  }
  {
    // a stale or bogus hint does not change the result
    for (uint32_t bogus : {1u, 5u, 17u, 9999u}) {
      uint32_t scanned = bogus;
      RequestHead h;
      std::vector<HeaderField> f(100);
      h.fields = f.data();
      ParseResult r = callParser(s, s.size(), &scanned, ParserLimits(), &h);
      CHECK(r.status == ParseStatus::Complete && h.head_len == s.size());
    }
  }
  {
    // leading empty lines arriving one at a time
    std::string t = "\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    std::vector<size_t> cuts;
    for (size_t k = 1; k < t.size(); ++k) cuts.push_back(k);
    Parsed p = parseWithCuts(t, cuts, ParserLimits());
    CHECK(p.r.status == ParseStatus::Complete && p.h.method_off == 6 && p.h.head_len == t.size());
  }
  expectComplete("POST /upload HTTP/1.1\r\nHost: example.com\r\nContent-Type: text/plain\r\n"
                 "Content-Length: 10\r\nCookie: a=b; c=d\r\n\r\n");
  expectComplete("\r\nGET http://example.com:8080/x?y=z#f HTTP/1.0\r\nUser-Agent: t\r\nConnection: keep-alive\r\n\r\n");
}

// ---------------------------------------------------------------------------
// Tests: status and description

void testStatusAndDescribe() {
  struct E {
    ParseError e;
    int status;
  };
  const E all[] = {{ParseError::BadRequest, 400},        {ParseError::BadContentLength, 400},
                   {ParseError::LengthWithChunked, 400}, {ParseError::BadTransferEncoding, 400},
                   {ParseError::UnknownCoding, 501},     {ParseError::MissingHost, 400},
                   {ParseError::BadHost, 400},           {ParseError::ObsFold, 400},
                   {ParseError::UnknownMethod, 501},     {ParseError::HeadTooLarge, 431},
                   {ParseError::UriTooLong, 414},        {ParseError::TooManyHeaders, 400},
                   {ParseError::BadVersion, 400},        {ParseError::UnsupportedVersion, 505},
                   {ParseError::BadExpect, 417}};
  for (const E& e : all) {
    CHECK_CTX(httpStatus(e.e) == e.status, std::string(parseErrorName(e.e)));
    const char* d = describe(e.e);
    CHECK(d && *d && std::strcmp(d, describe(ParseError::None)) != 0);
    for (const E& o : all)
      if (o.e != e.e) CHECK_CTX(std::strcmp(d, describe(o.e)) != 0, std::string(parseErrorName(e.e)));
  }
}

// ---------------------------------------------------------------------------
// Scanners: every level agrees with the scalar reference

bool refToken(unsigned char c) {
  return (c != 0 && std::strchr("!#$%&'*+-.^_`|~", c)) || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
         (c >= 'A' && c <= 'Z');
}
bool refTarget(unsigned char c) { return c > 0x20 && c < 0x7f; }
bool refValue(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

size_t refScan(bool (*ok)(unsigned char), const char* buf, size_t len, size_t pos) {
  while (pos < len && ok(static_cast<unsigned char>(buf[pos]))) ++pos;
  return pos;
}

void testScanners() {
  std::mt19937 rng(1234);
  for (int iter = 0; iter < 20000; ++iter) {
    const size_t n = rng() % (iter % 2 ? 80 : 300);
    std::unique_ptr<char[]> buf(new char[n ? n : 1]);
    const int style = rng() % 3;
    for (size_t i = 0; i < n; ++i) {
      // runs of one class's bytes, with occasional anything
      unsigned char c;
      if (rng() % 16 == 0) c = static_cast<unsigned char>(rng() % 256);
      else if (style == 0) c = static_cast<unsigned char>("abcXYZ019-!#~"[rng() % 13]);
      else if (style == 1) c = static_cast<unsigned char>(0x21 + rng() % 0x5e);
      else c = static_cast<unsigned char>(rng() % 2 ? 0x20 + rng() % 0x5f : 0x80 + rng() % 0x80);
      buf[i] = static_cast<char>(c);
    }
    for (int q = 0; q < 4; ++q) {
      const size_t pos = n ? rng() % (n + 1) : 0;
      const size_t tk = refScan(refToken, buf.get(), n, pos);
      const size_t tg = refScan(refTarget, buf.get(), n, pos);
      const size_t vl = refScan(refValue, buf.get(), n, pos);
      for (SimdLevel lv : levels()) {
        CHECK(detail::findTokenEnd(lv, buf.get(), n, pos) == tk);
        CHECK(detail::findTargetEnd(lv, buf.get(), n, pos) == tg);
        CHECK(detail::findValueEnd(lv, buf.get(), n, pos) == vl);
      }
    }
  }
  // each byte value at each position of runs that end before, at and after
  // 64-byte block boundaries, queried from several starts
  for (size_t n : {63u, 64u, 65u, 130u}) {
    for (int c = 0; c < 256; ++c) {
      for (size_t at = 0; at < n; at += (at < 70 ? 1 : 13)) {
        std::unique_ptr<char[]> buf(new char[n]);
        std::memset(buf.get(), 'a', n);
        buf[at] = static_cast<char>(c);
        for (size_t pos : {size_t(0), size_t(1), at, n - 1}) {
          if (pos > n) continue;
          const size_t tk = refScan(refToken, buf.get(), n, pos);
          const size_t tg = refScan(refTarget, buf.get(), n, pos);
          const size_t vl = refScan(refValue, buf.get(), n, pos);
          for (SimdLevel lv : levels()) {
            CHECK(detail::findTokenEnd(lv, buf.get(), n, pos) == tk);
            CHECK(detail::findTargetEnd(lv, buf.get(), n, pos) == tg);
            CHECK(detail::findValueEnd(lv, buf.get(), n, pos) == vl);
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Chunked decoder

struct Decoded {
  ChunkedDecoder::Status status = ChunkedDecoder::Status::NeedMore;
  std::string body;
  size_t consumed = 0;  // total bytes consumed; on error, offset of the bad byte
  uint64_t body_bytes = 0;
};

void appendTo(void* ctx, const char* d, size_t n) { static_cast<std::string*>(ctx)->append(d, n); }

Decoded decodeWithCuts(const std::string& s, const std::vector<size_t>& cuts) {
  Decoded d;
  ChunkedDecoder dec;
  dec.reset();
  size_t pos = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(s.size());
  for (size_t end : ends) {
    if (end > s.size() || end < pos) continue;
    const size_t n = end - pos;
    std::unique_ptr<char[]> copy(new char[n ? n : 1]);
    std::memcpy(copy.get(), s.data() + pos, n);
    size_t used = 0;
    d.status = dec.feed(copy.get(), n, &used, appendTo, &d.body);
    if (d.status == ChunkedDecoder::Status::Error) {
      d.consumed = pos + used;
      return d;
    }
    pos += used;
    if (d.status == ChunkedDecoder::Status::Done) break;
    CHECK(used == n);
  }
  d.consumed = pos;
  d.body_bytes = dec.bodyBytes();
  return d;
}

// Decodes whole, byte by byte and split at every offset; all must agree.
Decoded checkChunked(const std::string& s) {
  Decoded whole = decodeWithCuts(s, {});
  std::vector<size_t> every;
  for (size_t k = 1; k < s.size(); ++k) every.push_back(k);
  Decoded bytewise = decodeWithCuts(s, every);
  auto same = [](const Decoded& a, const Decoded& b) {
    return a.status == b.status && a.body == b.body && a.consumed == b.consumed;
  };
  CHECK_CTX(same(whole, bytewise), "bytewise :: " + printable(s));
  for (size_t k = 1; k < s.size(); ++k) {
    Decoded split = decodeWithCuts(s, {k});
    if (!same(whole, split)) {
      CHECK_CTX(false, "split at " + std::to_string(k) + " :: " + printable(s));
      break;
    }
  }
  return whole;
}

void chunkOk(const std::string& s, const std::string& body, size_t consumed = std::string::npos) {
  Decoded d = checkChunked(s);
  CHECK_CTX(d.status == ChunkedDecoder::Status::Done, "expected Done :: " + printable(s));
  CHECK_CTX(d.body == body, "body :: " + printable(s));
  CHECK_CTX(d.consumed == (consumed == std::string::npos ? s.size() : consumed), "consumed :: " + printable(s));
  CHECK(d.body_bytes == body.size());
}

void chunkErr(const std::string& s, size_t offset = std::string::npos) {
  Decoded d = checkChunked(s);
  CHECK_CTX(d.status == ChunkedDecoder::Status::Error, "expected Error :: " + printable(s));
  if (offset != std::string::npos) CHECK_CTX(d.consumed == offset, "error offset " + std::to_string(d.consumed) + " :: " + printable(s));
}

void chunkMore(const std::string& s) {
  Decoded d = checkChunked(s);
  CHECK_CTX(d.status == ChunkedDecoder::Status::NeedMore, "expected NeedMore :: " + printable(s));
}

void testChunked() {
  chunkOk("5\r\nhello\r\n0\r\n\r\n", "hello");
  chunkOk("5\r\nhello\r\n6\r\n world\r\n000\r\n\r\n", "hello world");
  chunkOk("A\r\n0123456789\r\n0\r\n\r\n", "0123456789");
  chunkOk("a\r\n0123456789\r\n0\r\n\r\n", "0123456789");
  chunkOk("0\r\n\r\n", "");
  chunkOk("5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n", "hello", 15);  // stops after the final CRLF
  chunkOk("0000000000000000000005\r\nhello\r\n0\r\n\r\n", "hello");    // leading zeros are not significant
  // extensions
  chunkOk("5;a\r\nhello\r\n0\r\n\r\n", "hello");
  chunkOk("5;a=b;c;d=\"x\\\"y; z\"\r\nhello\r\n0;last\r\n\r\n", "hello");
  chunkOk("5 ;a\r\nhello\r\n0\r\n\r\n", "hello");
  chunkOk("5\t; a = b ;c\r\nhello\r\n0\r\n\r\n", "hello");
  chunkOk("5;a=\"\"\r\nhello\r\n0\r\n\r\n", "hello");
  chunkOk("5;a=\"\xff\"\r\nhello\r\n0\r\n\r\n", "hello");
  chunkErr("5 \r\nhello\r\n0\r\n\r\n", 2);     // whitespace after the size, no ';'
  chunkErr("2 erfrferferf\r\naa\r\n", 2);
  chunkErr("5;\r\nhello\r\n", 2);              // ';' without a name
  chunkErr("5;a=\r\nhello\r\n", 4);            // '=' without a value
  chunkErr("5;a b\r\nhello\r\n", 4);
  chunkErr("5;a \r\nhello\r\n", 4);
  chunkErr("5;a=b c\r\nhello\r\n", 6);
  chunkErr("5;a=\"x\r\nhello\r\n", 6);         // unterminated quoted-string
  chunkErr("5;a=\"x\"y\r\nhello\r\n", 7);
  chunkErr("5;a=\"\x01\"\r\nhello\r\n", 5);
  chunkErr("5;a=\"\\\r\"\r\nhello\r\n", 6);
  chunkErr("5;@\r\nhello\r\n", 2);
  // framing
  chunkErr("5\rhello\r\n", 2);
  chunkErr("5\nhello\r\n", 1);
  chunkErr("5\r\nhelloX\r\n0\r\n\r\n", 8);     // data not followed by CRLF
  chunkErr("5\r\nhello\rX0\r\n\r\n", 9);
  chunkErr("5\r\nhello\n0\r\n\r\n", 8);
  chunkErr("3\r\nfoo\r\n\r\n", 8);             // missing last chunk
  chunkErr("\r\n", 0);
  chunkErr("x\r\n", 0);
  chunkErr("-1\r\n", 0);
  chunkErr("+1\r\n", 0);
  chunkErr("0x5\r\n", 1);
  chunkErr("0\r\n\r\r", 4);
  // size overflow: 16 significant hex digits fit, 17 do not
  chunkMore("ffffffffffffffff\r\n");
  chunkMore("0000ffffffffffffffff\r\n");
  chunkErr("10000000000000000\r\n", 16);   // ffffffffffffffff + 1
  chunkErr("fffffffffffffffff\r\n", 16);
  {
    ChunkedDecoder dec;
    dec.reset();
    std::string s = "ffffffffffffffff\r\nabc";
    size_t used = 0;
    std::string body;
    CHECK(dec.feed(s.data(), s.size(), &used, appendTo, &body) == ChunkedDecoder::Status::NeedMore);
    CHECK(used == s.size() && body == "abc" && dec.bodyBytes() == UINT64_MAX);
    // the total body length cannot wrap either
    s = "\r\n";
    // (the chunk is not finished; a second huge chunk is reached only after 2^64 bytes)
  }
  // trailers: validated and discarded
  chunkOk("5\r\nhello\r\n0\r\nVary: *\r\nContent-Type: text/plain\r\n\r\n", "hello");
  chunkOk("0\r\nX:\r\n\r\n", "");
  chunkOk("0\r\nX: \xff\t\r\n\r\n", "");
  chunkErr("0\r\n X: y\r\n\r\n", 3);   // obs-fold
  chunkErr("0\r\nX : y\r\n\r\n", 4);
  chunkErr("0\r\n: y\r\n\r\n", 3);
  chunkErr("0\r\nX: \x01\r\n\r\n", 6);
  chunkErr("0\r\nX: y\n\r\n", 7);
  chunkErr("0\r\nX: y\r\r\n", 8);
  chunkMore("5\r\nhello\r\n0\r\n");
  chunkMore("5\r\nhel");
  chunkMore("5\r\nhello");
  chunkMore("5\r\nhello\r");
  chunkMore("5;a=\"x");
  // bounds
  {
    std::string line = "5;" + std::string(ChunkedDecoder::kMaxLineBytes, 'a') + "\r\nhello\r\n0\r\n\r\n";
    chunkErr(line, ChunkedDecoder::kMaxLineBytes);
    std::string fits = "5;" + std::string(ChunkedDecoder::kMaxLineBytes - 4, 'a') + "\r\nhello\r\n0\r\n\r\n";
    chunkOk(fits, "hello");
    std::string tr = "0\r\nX: " + std::string(ChunkedDecoder::kMaxTrailerBytes, 'v') + "\r\n\r\n";
    Decoded d = decodeWithCuts(tr, {});
    CHECK(d.status == ChunkedDecoder::Status::Error);
    std::string tr_fits = "0\r\nX: " + std::string(ChunkedDecoder::kMaxTrailerBytes - 7, 'v') + "\r\n\r\n";
    d = decodeWithCuts(tr_fits, {});
    CHECK(d.status == ChunkedDecoder::Status::Done);
  }
  {
    // after Done / Error, further input is not consumed
    ChunkedDecoder dec;
    dec.reset();
    std::string body;
    size_t used = 0;
    std::string s = "0\r\n\r\n";
    CHECK(dec.feed(s.data(), s.size(), &used, appendTo, &body) == ChunkedDecoder::Status::Done);
    CHECK(dec.feed(s.data(), s.size(), &used, appendTo, &body) == ChunkedDecoder::Status::Done && used == 0);
    dec.reset();
    s = "x";
    CHECK(dec.feed(s.data(), s.size(), &used, appendTo, &body) == ChunkedDecoder::Status::Error && used == 0);
    CHECK(dec.feed(s.data(), s.size(), &used, appendTo, &body) == ChunkedDecoder::Status::Error && used == 0);
    dec.reset();
    s = "3\r\nabc\r\n0\r\n\r\n";
    body.clear();
    CHECK(dec.feed(s.data(), s.size(), &used, appendTo, &body) == ChunkedDecoder::Status::Done && body == "abc");
  }
  {
    // large chunk fed in pieces: data spans are passed through, not copied
    std::string payload(100000, 'z');
    char hex[32];
    std::snprintf(hex, sizeof hex, "%zx", payload.size());
    std::string s = std::string(hex) + "\r\n" + payload + "\r\n0\r\n\r\n";
    std::vector<size_t> cuts;
    for (size_t k = 7; k < s.size(); k += 4093) cuts.push_back(k);
    Decoded d = decodeWithCuts(s, cuts);
    CHECK(d.status == ChunkedDecoder::Status::Done && d.body == payload && d.consumed == s.size());
  }
}

// ---------------------------------------------------------------------------
// Probe (the connection loop) and the llhttp corpus

bool sameProbe(const ProbeResult& a, const ProbeResult& b, std::string* why) {
  if (a.error != b.error) return *why = "error", false;
  if (a.status != b.status || a.error_name != b.error_name) return *why = "error kind " + a.error_name + " vs " + b.error_name, false;
  if (a.error_offset != b.error_offset) return *why = "error_offset " + std::to_string(a.error_offset) + " vs " + std::to_string(b.error_offset), false;
  if (a.incomplete != b.incomplete) return *why = "incomplete", false;
  if (a.rest != b.rest) return *why = "rest", false;
  if (a.messages.size() != b.messages.size()) return *why = "message count", false;
  for (size_t i = 0; i < a.messages.size(); ++i) {
    const ProbeMessage &x = a.messages[i], &y = b.messages[i];
    if (x.method != y.method || x.target != y.target || x.version_minor != y.version_minor ||
        x.headers != y.headers || x.body != y.body || x.chunked != y.chunked || x.keep_alive != y.keep_alive ||
        x.upgrade != y.upgrade || x.expect_continue != y.expect_continue)
      return *why = "message " + std::to_string(i), false;
  }
  return true;
}

// Runs one input through the probe whole, in pieces of 1, 2, 3, 7, 16 bytes
// and split at every single offset, with every scanner level; all must agree.
ProbeResult checkProbe(const std::string& s, const std::string& name, const ParserLimits& lim = ParserLimits(),
                       bool every_offset = true) {
  LevelGuard guard;
  detail::setSimdLevel(SimdLevel::Scalar);
  ProbeResult base = probeRequests(s.data(), s.size(), lim, 0);
  for (SimdLevel lv : levels()) {
    detail::setSimdLevel(lv);
    std::string why;
    const std::string tag = name + " [" + detail::simdLevelName(lv) + "]";
    ProbeResult whole = probeRequests(s.data(), s.size(), lim, 0);
    CHECK_CTX(sameProbe(base, whole, &why), tag + " whole: " + why);
    for (size_t n : {1u, 2u, 3u, 7u, 16u}) {
      ProbeResult r = probeRequests(s.data(), s.size(), lim, n);
      CHECK_CTX(sameProbe(base, r, &why), tag + " every " + std::to_string(n) + ": " + why);
    }
    if (every_offset) {
      for (size_t k = 1; k < s.size(); ++k) {
        ProbeResult r = probeRequestsSplitAt(s.data(), s.size(), lim, {k});
        if (!sameProbe(base, r, &why)) {
          CHECK_CTX(false, tag + " split at " + std::to_string(k) + ": " + why);
          break;
        }
      }
    }
  }
  return base;
}

void testProbe() {
  {
    std::string s = "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
                    "\r\n"
                    "PUT /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\ndef\r\n0\r\nT: v\r\n\r\n"
                    "GET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
                    "GET /never HTTP/1.1\r\n\r\n";
    ProbeResult r = checkProbe(s, "pipeline");
    CHECK(!r.error && !r.incomplete);
    CHECK(r.messages.size() == 3);
    if (r.messages.size() == 3) {
      CHECK(r.messages[0].body == "abc" && !r.messages[0].chunked);
      CHECK(r.messages[1].body == "def" && r.messages[1].chunked);
      CHECK(r.messages[2].target == "/c" && !r.messages[2].keep_alive);
    }
    CHECK(r.rest == std::string("GET /never HTTP/1.1\r\n\r\n").size());
  }
  {
    std::string s = "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05hello";
    ProbeResult r = checkProbe(s, "upgrade");
    CHECK(!r.error && r.messages.size() == 1 && r.messages[0].upgrade && r.rest == 7);
  }
  {
    std::string s = "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nContent-Length: 4\r\n\r\ntunnel";
    ProbeResult r = checkProbe(s, "connect");
    CHECK(!r.error && r.messages.size() == 1 && r.messages[0].upgrade && r.messages[0].body.empty() && r.rest == 6);
  }
  {
    ProbeResult r = checkProbe("GET / HTTP/1.1\r\nHost: h\r\n\r\n\r\n\r\n", "trailing CRLFs");
    CHECK(!r.error && !r.incomplete && r.messages.size() == 1 && r.rest == 0);
    r = checkProbe("GET / HTTP/1.1\r\nHost: h\r\n\r\nG", "started next");
    CHECK(!r.error && r.incomplete && r.messages.size() == 1);
    r = checkProbe("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab", "short body");
    CHECK(!r.error && r.incomplete && r.messages.empty());
    r = checkProbe("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n2\r\nxyz", "bad chunk");
    CHECK(r.error && r.status == 400 && r.error_name == "BadChunkedBody");
    CHECK(r.error_offset == std::string("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n2\r\nxy").size());
    r = checkProbe("GET / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\nX\x01: y\r\n\r\n", "second bad");
    CHECK(r.error && r.status == 400 && r.messages.size() == 1 && r.error_name == "BadRequest");
    CHECK(r.error_offset == 27 + 16 + 9 + 1);
  }
  {
    ParserLimits lim;
    lim.max_head_size = 40;
    ProbeResult r = checkProbe("GET / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(50, 'x') +
                                   "\r\n\r\n",
                               "limit per head", lim);
    CHECK(r.error && r.status == 431 && r.messages.size() == 1 && r.error_offset == 27 + 40);
  }
}

struct CorpusRecord {
  const char* id;
  const char* bytes;
  size_t len;
  bool strict;
};

const CorpusRecord kCorpus[] = {
#include "corpus.inc"
};

void testCorpusConsistency() {
  size_t n = 0;
  for (const CorpusRecord& rec : kCorpus) {
    checkProbe(std::string(rec.bytes, rec.len), rec.id);
    ++n;
  }
  std::printf("  corpus consistency: %zu llhttp records, whole == split (every offset, 1/2/3/7/16) on %zu scanner level(s)\n",
              n, levels().size());
}

// Random mutations of corpus inputs: the scanner levels and the read
// splitting must never change the outcome, and nothing may read out of
// bounds (ASan).
void testFuzzDifferential() {
  std::mt19937 rng(20240601);
  const char interesting[] = {'\r', '\n', ' ', '\t', ':', ';', '"', '\\', '\0', '\x7f', '\x80', '\xff',
                              '0',  'f',  'G', 'H', '/', ',', '=', '\x01', 'a', '?', '#', '@'};
  const size_t ncorpus = sizeof(kCorpus) / sizeof(kCorpus[0]);
  int iterations = 0;
  for (int iter = 0; iter < 6000; ++iter) {
    const CorpusRecord& rec = kCorpus[rng() % ncorpus];
    std::string s(rec.bytes, rec.len);
    const int edits = 1 + rng() % 3;
    for (int e = 0; e < edits && !s.empty(); ++e) {
      const size_t at = rng() % s.size();
      switch (rng() % 4) {
        case 0: s[at] = interesting[rng() % sizeof interesting]; break;
        case 1: s.insert(s.begin() + at, interesting[rng() % sizeof interesting]); break;
        case 2: s.erase(at, 1); break;
        default: s[at] = static_cast<char>(rng() % 256); break;
      }
    }
    ParserLimits lim;
    if (rng() % 4 == 0) lim.max_head_size = 16 + rng() % 200;
    if (rng() % 4 == 0) lim.max_headers = rng() % 5;
    checkProbe(s, "fuzz #" + std::to_string(iter) + " from " + rec.id + " :: " + printable(s), lim, rng() % 8 == 0);
    ++iterations;
  }
  std::printf("  fuzz differential: %d mutated inputs\n", iterations);
}

// ---------------------------------------------------------------------------
// Benchmark

const std::string kBrowserHead =
    "GET /static/js/app.3f9c2b1a.js?v=20240117 HTTP/1.1\r\n"
    "Host: www.example.com\r\n"
    "Connection: keep-alive\r\n"
    "sec-ch-ua: \"Not_A Brand\";v=\"8\", \"Chromium\";v=\"120\"\r\n"
    "sec-ch-ua-mobile: ?0\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
    "Safari/537.36\r\n"
    "sec-ch-ua-platform: \"Linux\"\r\n"
    "Accept: */*\r\n"
    "Sec-Fetch-Site: same-origin\r\n"
    "Sec-Fetch-Mode: no-cors\r\n"
    "Sec-Fetch-Dest: script\r\n"
    "Referer: https://www.example.com/\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Accept-Language: en-US,en;q=0.9\r\n"
    "Cookie: sid=8f2a7c1e9b; theme=dark\r\n"
    "\r\n";

int bench(long iterations, const char* only) {
  std::printf("head: %zu bytes, %ld parses per implementation\n", kBrowserHead.size(), iterations);
  std::vector<HeaderField> fields(100);
  RequestHead h;
  h.fields = fields.data();
  ParserLimits lim;
  volatile uint32_t sink = 0;
  std::vector<SimdLevel> lvs;
  for (SimdLevel lv : levels())
    if (!only || std::strcmp(only, detail::simdLevelName(lv)) == 0) lvs.push_back(lv);
  for (SimdLevel lv : lvs) {
    detail::setSimdLevel(lv);
    uint32_t scanned = 0;
    ParseResult r = parseRequestHead(kBrowserHead.data(), kBrowserHead.size(), &scanned, lim, &h);
    if (r.status != ParseStatus::Complete || h.num_fields != 14) {
      std::fprintf(stderr, "bench head does not parse\n");
      return 1;
    }
    double best = 1e99;
    for (int round = 0; round < 3; ++round) {
      auto t0 = std::chrono::steady_clock::now();
      for (long i = 0; i < iterations; ++i) {
        scanned = 0;
        r = parseRequestHead(kBrowserHead.data(), kBrowserHead.size(), &scanned, lim, &h);
        sink = sink + h.head_len + static_cast<uint32_t>(r.status);
      }
      auto t1 = std::chrono::steady_clock::now();
      const double ns = std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(iterations);
      if (ns < best) best = ns;
    }
    std::printf("  %-7s %7.1f ns/parse  %6.2f GB/s\n", detail::simdLevelName(lv), best,
                static_cast<double>(kBrowserHead.size()) / best);
  }
  // 64 different heads of about the same size (field values of random
  // lengths), cycled, so branch predictors cannot learn one head's shape
  {
    std::mt19937 rng(7);
    std::vector<std::string> heads;
    size_t total = 0;
    for (int i = 0; i < 64; ++i) {
      std::string s = "GET /" + std::string(5 + rng() % 60, 'p') + "?q=" + std::string(rng() % 30, 'v') + " HTTP/1.1\r\n";
      s += "Host: " + std::string(5 + rng() % 20, 'h') + ".example\r\n";
      static const char* names[] = {"User-Agent", "Accept", "Accept-Language", "Accept-Encoding", "Referer",
                                    "Cookie", "Connection", "Sec-Fetch-Mode", "Cache-Control", "X-Request-Id",
                                    "sec-ch-ua", "If-None-Match"};
      while (s.size() < 480) {
        s += std::string(names[rng() % 12]) + ": " + std::string(1 + rng() % 90, 'x') + "\r\n";
      }
      s += "\r\n";
      total += s.size();
      heads.push_back(std::move(s));
    }
    for (SimdLevel lv : lvs) {
      detail::setSimdLevel(lv);
      double best = 1e99;
      for (int round = 0; round < 3; ++round) {
        auto t0 = std::chrono::steady_clock::now();
        for (long i = 0; i < iterations; ++i) {
          const std::string& s = heads[static_cast<size_t>(i) & 63];
          uint32_t scanned = 0;
          ParseResult r = parseRequestHead(s.data(), s.size(), &scanned, lim, &h);
          sink = sink + h.head_len + static_cast<uint32_t>(r.status);
        }
        auto t1 = std::chrono::steady_clock::now();
        const double ns = std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(iterations);
        if (ns < best) best = ns;
      }
      std::printf("  %-7s %7.1f ns/parse  (64 varied heads, %zu bytes on average)\n", detail::simdLevelName(lv), best,
                  total / 64);
    }
  }
  // the same head arriving in two reads (Partial, then resume)
  for (SimdLevel lv : lvs) {
    detail::setSimdLevel(lv);
    const size_t cut = kBrowserHead.size() / 2;
    auto t0 = std::chrono::steady_clock::now();
    const long n = iterations / 4;
    for (long i = 0; i < n; ++i) {
      uint32_t scanned = 0;
      parseRequestHead(kBrowserHead.data(), cut, &scanned, lim, &h);
      ParseResult r = parseRequestHead(kBrowserHead.data(), kBrowserHead.size(), &scanned, lim, &h);
      sink = sink + h.head_len + static_cast<uint32_t>(r.status);
    }
    auto t1 = std::chrono::steady_clock::now();
    std::printf("  %-7s %7.1f ns per head in two reads\n", detail::simdLevelName(lv),
                std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(n));
  }
  // Worst cases for resumption: a 32 KiB head arriving one byte per read
  // (each call re-checks at most the unfinished line).
  {
    const std::string long_target = "GET /" + std::string(32 * 1024 - 100, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n";
    const std::string long_value = "GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(32 * 1024 - 100, 'v') + "\r\n\r\n";
    std::string many_fields = "GET / HTTP/1.1\r\nHost: h\r\n";
    for (int i = 0; i < 95; ++i) many_fields += "X-Field-" + std::to_string(i) + ": " + std::string(300, 'v') + "\r\n";
    many_fields += "\r\n";
    std::string many_cl = "POST / HTTP/1.1\r\nHost: h\r\n";
    for (int i = 0; i < 49; ++i) many_cl += "Content-Length: 5\r\nX-Pad: " + std::string(600, 'v') + "\r\n";
    many_cl += "\r\n";
    std::string crlfs;
    for (int i = 0; i < 8 * 1024; ++i) crlfs += "\r\n";
    const std::string leading_crlf = crlfs + "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    struct Case {
      const char* name;
      const std::string* head;
    } cases[] = {{"32 KiB request-target", &long_target},
                 {"32 KiB field value", &long_value},
                 {"96 fields of 300 B", &many_fields},
                 {"49 equal Content-Lengths", &many_cl},
                 {"16 KiB of leading CRLFs", &leading_crlf}};
    std::printf("one byte per read (best implementation):\n");
    detail::setSimdLevel(detail::detectedSimdLevel());
    for (const Case& c : cases) {
      const std::string& s = *c.head;
      auto t0 = std::chrono::steady_clock::now();
      uint32_t scanned = 0;
      ParseResult r{};
      for (size_t n = 1; n <= s.size(); ++n) {
        r = parseRequestHead(s.data(), n, &scanned, lim, &h);
        if (r.status != ParseStatus::Partial) break;
      }
      auto t1 = std::chrono::steady_clock::now();
      std::printf("  %-26s %6zu bytes, %s, %8.2f ms for all %zu calls\n", c.name, s.size(),
                  r.status == ParseStatus::Complete ? "complete" : "NOT COMPLETE",
                  std::chrono::duration<double, std::milli>(t1 - t0).count(), s.size());
    }
  }
  detail::setSimdLevel(detail::detectedSimdLevel());
  return sink == 42 ? 2 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--bench") == 0) {
    long iterations = argc > 2 ? std::atol(argv[2]) : 10000000L;
    return bench(iterations, argc > 3 ? argv[3] : nullptr);  // optional: scalar, sse4.2 or avx2 only
  }
  std::printf("scanner levels: detected %s; testing", detail::simdLevelName(detail::detectedSimdLevel()));
  for (SimdLevel lv : levels()) std::printf(" %s", detail::simdLevelName(lv));
  std::printf("\n");

  struct T {
    const char* name;
    void (*fn)();
  };
  const T tests[] = {
      {"request line", testRequestLine},
      {"field lines", testFields},
      {"Content-Length", testContentLength},
      {"Transfer-Encoding", testTransferEncoding},
      {"Host/Connection/Expect", testHostConnectionExpect},
      {"limits", testLimits},
      {"resume", testResume},
      {"status/describe", testStatusAndDescribe},
      {"scanners", testScanners},
      {"chunked decoder", testChunked},
      {"probe loop", testProbe},
      {"corpus consistency", testCorpusConsistency},
      {"fuzz differential", testFuzzDifferential},
  };
  for (const T& t : tests) {
    const int before = g_failures;
    t.fn();
    std::printf("%-24s %s\n", t.name, g_failures == before ? "ok" : "FAILED");
  }
  std::printf("%ld checks, %d failures\n", g_checks, g_failures);
  return g_failures ? 1 : 0;
}
