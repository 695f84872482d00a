// libFuzzer target: the server's request loop (parseRequestHead + the
// chunked decoder + Content-Length bodies, as native/request_probe.cc runs
// them) over arbitrary bytes.
//
// Input layout: byte 0 is a control byte, the rest is what a client sends.
//   control        cut position for the split run (see below)
//   control & 0x80 also run everything again with small limits
//                  (max_head_size 256 + control, max_headers 1 + control % 8),
//                  so 414/431/too-many-headers are reachable under -max_len
//
// Differential: the same bytes must get the same verdict (the completed
// messages, error / status / error name / error offset, incomplete, bytes
// left over) whether they arrive
//   A  whole, best scanners (AVX2 or SSE4.2, whatever the CPU has)
//   B  in pieces cut at `control % (len + 1)` and at `control * len / 255`
//   C  whole, scalar scanners forced
//   D  whole, SSE4.2 scanners (when the CPU has AVX2 too; else skipped)
//   E  in pieces of 1 + control % 7 bytes, scalar (inputs up to 1 KiB: the
//      probe copies what is unconsumed on every read, so this is quadratic)
// and any disagreement abort()s with a description, so the fuzzer reports
// divergences, not only crashes. ASan/UBSan catch the rest: every parser
// call gets an exactly-sized heap copy (see request_probe.h).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "http_parser.h"
#include "http_parser_internal.h"
#include "request_probe.h"

using namespace feersum;

namespace {

std::string quote(const std::string& s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      o += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      o += buf;
    }
  }
  return o + "\"";
}

std::string summary(const ProbeResult& r) {
  std::string s = "messages=" + std::to_string(r.messages.size());
  for (const ProbeMessage& m : r.messages) {
    s += "\n    " + quote(m.method) + " " + quote(m.target) + " 1." + std::to_string(m.version_minor) +
         " fields=" + std::to_string(m.headers.size()) + " body=" + quote(m.body) + " chunked=" +
         std::to_string(m.chunked) + " keep_alive=" + std::to_string(m.keep_alive) +
         " upgrade=" + std::to_string(m.upgrade) + " expect_continue=" + std::to_string(m.expect_continue);
  }
  s += "\n  error=" + std::to_string(r.error) + " status=" + std::to_string(r.status) + " name=" + r.error_name +
       " offset=" + std::to_string(r.error_offset) + " incomplete=" + std::to_string(r.incomplete) +
       " rest=" + std::to_string(r.rest);
  return s;
}

bool sameMessage(const ProbeMessage& a, const ProbeMessage& b) {
  return a.method == b.method && a.target == b.target && a.version_minor == b.version_minor &&
         a.headers == b.headers && a.body == b.body && a.chunked == b.chunked && a.keep_alive == b.keep_alive &&
         a.upgrade == b.upgrade && a.expect_continue == b.expect_continue;
}

bool sameVerdict(const ProbeResult& a, const ProbeResult& b) {
  if (a.messages.size() != b.messages.size()) return false;
  for (size_t i = 0; i < a.messages.size(); ++i)
    if (!sameMessage(a.messages[i], b.messages[i])) return false;
  return a.error == b.error && a.status == b.status && a.error_name == b.error_name &&
         a.error_offset == b.error_offset && a.incomplete == b.incomplete && a.rest == b.rest;
}

// Properties every single verdict must have, whatever the split.
void checkSane(const ProbeResult& r, size_t len, const char* run) {
  const char* bad = nullptr;
  if (r.error && (r.status < 400 || r.status > 599)) bad = "error without a 4xx/5xx status";
  else if (r.error && r.error_offset > len) bad = "error offset past the input";
  else if (r.error && r.rest != 0) bad = "error with bytes left over";
  else if (r.rest > len) bad = "rest larger than the input";
  else if (r.rest && r.incomplete) bad = "stopped and incomplete at once";
  else if (r.rest && (r.messages.empty() || (r.messages.back().keep_alive && !r.messages.back().upgrade)))
    bad = "stopped reading after a keep-alive, non-upgrade message";
  if (bad) {
    std::fprintf(stderr, "fuzz_request: %s (run %s)\n  %s\n", bad, run, summary(r).c_str());
    std::abort();
  }
}

void mustAgree(const ProbeResult& ref, const ProbeResult& got, const char* run, const ParserLimits& limits,
               size_t len, const char* data) {
  checkSane(got, len, run);
  if (sameVerdict(ref, got)) return;
  std::fprintf(stderr,
               "fuzz_request: verdicts differ (limits %u/%u): whole/best vs %s\n  input %s\n  whole/best: %s\n  %s: %s\n",
               limits.max_head_size, limits.max_headers, run, quote(std::string(data, len)).c_str(),
               summary(ref).c_str(), run, summary(got).c_str());
  std::abort();
}

void runAll(const char* in, size_t len, uint8_t ctl, const ParserLimits& limits) {
  forceScalarParser(false);
  const ProbeResult whole = probeRequests(in, len, limits, 0);
  checkSane(whole, len, "whole/best");

  std::vector<size_t> cuts = {ctl % (len + 1), static_cast<size_t>(ctl) * len / 255};
  if (cuts[0] > cuts[1]) std::swap(cuts[0], cuts[1]);
  mustAgree(whole, probeRequestsSplitAt(in, len, limits, cuts), "split/best", limits, len, in);

  forceScalarParser(true);
  mustAgree(whole, probeRequests(in, len, limits, 0), "whole/scalar", limits, len, in);
  if (len <= 1024) mustAgree(whole, probeRequests(in, len, limits, 1 + ctl % 7), "every-n/scalar", limits, len, in);

  if (detail::detectedSimdLevel() == detail::SimdLevel::Avx2 && detail::setSimdLevel(detail::SimdLevel::Sse42)) {
    mustAgree(whole, probeRequests(in, len, limits, 0), "whole/sse4.2", limits, len, in);
  }
  forceScalarParser(false);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t ctl = data[0];
  const char* in = reinterpret_cast<const char*>(data + 1);
  const size_t len = size - 1;

  runAll(in, len, ctl, ParserLimits{});
  if (ctl & 0x80) {
    ParserLimits small;
    small.max_head_size = 256 + ctl;
    small.max_headers = 1 + ctl % 8;
    runAll(in, len, ctl, small);
  }
  return 0;
}
