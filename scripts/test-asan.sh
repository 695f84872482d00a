#!/usr/bin/env bash
# Builds the addon with AddressSanitizer + UndefinedBehaviorSanitizer and runs
# the test suite (or the command given) against it. The build happens in a
# copy of the tree, so the normal build/ stays usable meanwhile.
# Node itself is not instrumented, so libasan is preloaded; leak checking is
# off here (Node's own allocations at exit would drown it) — the native unit
# tests and the fuzzer run with LeakSanitizer instead.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d /tmp/feersum-asan.XXXXXX)"
trap 'rm -rf "$work"' EXIT
cd "$root"
git ls-files -co --exclude-standard | grep -v '^node_modules/' | while read -r f; do
  [ -e "$f" ] && mkdir -p "$work/$(dirname "$f")" && cp -p "$f" "$work/$f"
done
ln -s "$root/node_modules" "$work/node_modules"
cd "$work"
npm run build:native -- -- -Dsanitize=true >/dev/null
npm run build:ts >/dev/null
export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
if [ $# -gt 0 ]; then "$@"; else npx vitest run; fi
