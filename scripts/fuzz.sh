#!/usr/bin/env bash
# Builds the libFuzzer targets in test/fuzz/ and runs them for a bounded time.
#
#   scripts/fuzz.sh [seconds] [target]
#
# seconds  total time budget (default 60). With no target (or "all") it is
#          split evenly across the three targets (60 -> 20 s each); with a
#          target, that target gets all of it.
# target   request | chunked | proxy | all
#            request  parseRequestHead + chunked decoder + the request loop
#                     (native/request_probe.cc): whole vs split vs scalar/SSE4.2
#                     scanners must give the same verdict
#            chunked  ChunkedDecoder: whole vs random pieces vs byte by byte
#            proxy    parseProxyHeader (PROXY v1/v2): whole vs growing prefixes
#
# Build: clang++ -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined (UBSan
# findings abort too), inputs up to -max_len=8192 bytes (FUZZ_MAX_LEN).
# Seeds are regenerated on every run from the llhttp corpus and the smuggling
# vectors (test/fuzz/gen_seeds.js) into test/fuzz/build/seeds/<target>; the
# growing corpus is kept in test/fuzz/corpus/<target> and crash inputs go to
# test/fuzz/artifacts/ (all three git-ignored). Inputs saved under
# test/fuzz/crashes/<target>/ are replayed first, as regression tests.
#
# Exits non-zero if any target crashes (a sanitizer report, a divergence
# abort(), a leak, a timeout of 25 s on one input or 2 GiB RSS) or does not
# build; prints the number of executions per target.
# Environment: CXX (default clang++), FUZZ_MAX_LEN, FUZZ_ARGS (extra libFuzzer flags).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fuzz="$root/test/fuzz"
out="$fuzz/build"
total="${1:-60}"
which="${2:-all}"
CXX="${CXX:-clang++}"
max_len="${FUZZ_MAX_LEN:-8192}"

case "$which" in
  all) targets=(request chunked proxy) ;;
  request | chunked | proxy) targets=("$which") ;;
  *) echo "fuzz.sh: unknown target '$which' (request, chunked, proxy or all)" >&2; exit 2 ;;
esac
if ! [[ "$total" =~ ^[0-9]+$ ]] || [ "$total" -lt 1 ]; then
  echo "fuzz.sh: seconds must be a positive integer, got '$total'" >&2
  exit 2
fi
per=$(( total / ${#targets[@]} ))
[ "$per" -ge 1 ] || per=1

if ! command -v "$CXX" >/dev/null; then
  echo "fuzz.sh: $CXX not found (Debian: apt-get install -y clang libclang-rt-14-dev)" >&2
  exit 2
fi

mkdir -p "$out" "$fuzz/artifacts"
node "$fuzz/gen_seeds.js" "$out/seeds"

flags=(-std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -Wall -Wextra -I"$root/native")
declare -A sources=(
  [request]="native/http_parser.cc native/http_scan.cc native/chunked_decoder.cc native/request_probe.cc"
  [chunked]="native/http_parser.cc native/http_scan.cc native/chunked_decoder.cc"
  [proxy]="native/proxy_protocol.cc"
)
declare -A dicts=([request]=http.dict [chunked]=http.dict [proxy]=proxy.dict)

for t in "${targets[@]}"; do
  srcs=()
  for s in ${sources[$t]}; do srcs+=("$root/$s"); done
  echo "fuzz.sh: building fuzz_$t"
  "$CXX" "${flags[@]}" "$fuzz/fuzz_$t.cc" "${srcs[@]}" -o "$out/fuzz_$t"
done

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

status=0
summary=()
for t in "${targets[@]}"; do
  bin="$out/fuzz_$t"
  # Regression inputs: earlier findings must not crash any more.
  crashes="$fuzz/crashes/$t"
  if [ -d "$crashes" ] && [ -n "$(ls -A "$crashes" 2>/dev/null)" ]; then
    echo "fuzz.sh: replaying $crashes"
    if ! "$bin" -runs=1 "$crashes"/* >"$out/$t-replay.log" 2>&1; then
      echo "fuzz.sh: fuzz_$t: a saved crash input still fails (log: $out/$t-replay.log)" >&2
      tail -n 40 "$out/$t-replay.log" >&2
      status=1
      summary+=("$t: FAILED replaying test/fuzz/crashes/$t")
      continue
    fi
  fi
  corpus="$fuzz/corpus/$t"
  mkdir -p "$corpus"
  log="$out/$t.log"
  echo "fuzz.sh: running fuzz_$t for ${per}s (log: $log)"
  rc=0
  # shellcheck disable=SC2086
  "$bin" -max_total_time="$per" -max_len="$max_len" -timeout=25 -rss_limit_mb=2048 \
    -dict="$fuzz/${dicts[$t]}" -artifact_prefix="$fuzz/artifacts/$t-" -print_final_stats=1 \
    ${FUZZ_ARGS:-} "$corpus" "$out/seeds/$t" >"$log" 2>&1 || rc=$?
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  cov="$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 || true)"
  if [ "$rc" -ne 0 ]; then
    status=1
    echo "fuzz.sh: fuzz_$t FAILED (exit $rc); log: $log" >&2
    grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz_[a-z]+:|artifact_prefix|Test unit written)|runtime error' "$log" >&2 || tail -n 40 "$log" >&2
    summary+=("$t: FAILED after ${execs:-?} executions (exit $rc)")
  else
    summary+=("$t: ${execs:-?} executions in ${per}s, ${cov:-cov: ?}, corpus $(ls "$corpus" | wc -l) inputs, no finding")
  fi
done

echo "fuzz.sh: summary"
for line in "${summary[@]}"; do echo "  $line"; done
exit "$status"
