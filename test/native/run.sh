#!/usr/bin/env bash
# Builds and runs the parser's standalone C++ unit tests under ASan + UBSan.
#   test/native/run.sh          build with sanitizers and run the tests
#   test/native/run.sh bench    build optimised (no sanitizers) and run the
#                               micro-benchmark: test/native/run.sh bench [iterations]
# Environment: CXX (default g++), LLHTTP_CORPUS (default: test/fixtures/
# llhttp-requests.json if present, else /work/shared/conformance/llhttp-requests.json).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$here/build"
mkdir -p "$out"

CXX="${CXX:-g++}"
# The llhttp corpus: $LLHTTP_CORPUS, else a copy vendored at test/fixtures/, else the shared one.
corpus="${LLHTTP_CORPUS:-}"
if [[ -z "$corpus" ]]; then
  for c in "$root/test/fixtures/llhttp-requests.json" /work/shared/conformance/llhttp-requests.json; do
    if [[ -f "$c" ]]; then corpus="$c"; break; fi
  done
fi
if [[ -z "$corpus" || ! -f "$corpus" ]]; then
  echo "run.sh: llhttp corpus not found (set LLHTTP_CORPUS or vendor it at test/fixtures/llhttp-requests.json)" >&2
  exit 2
fi
node "$here/gen_corpus.js" "$corpus" "$out/corpus.inc"

sources=(
  "$root/native/http_parser.cc"
  "$root/native/http_scan.cc"
  "$root/native/chunked_decoder.cc"
  "$root/native/request_probe.cc"
  "$here/parser_unit.cc"
)
common=(-std=c++17 -Wall -Wextra -Werror -fno-exceptions -fno-rtti -I"$out")

if [[ "${1:-}" == "bench" ]]; then
  "$CXX" "${common[@]}" -O3 -DNDEBUG "${sources[@]}" -o "$out/parser_bench"
  exec "$out/parser_bench" --bench "${2:-10000000}"
fi

"$CXX" "${common[@]}" -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
  -fno-sanitize-recover=undefined "${sources[@]}" -o "$out/parser_unit"
ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}" \
UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
  "$out/parser_unit"
