#!/usr/bin/env bash
# Builds the addon with AddressSanitizer + UndefinedBehaviorSanitizer and runs
# the test suite (or the command given) against it, then restores the normal
# build. Node itself is not instrumented, so libasan is preloaded; leak
# checking is left to LeakSanitizer runs of the native tests (Node's own
# allocations at exit would drown it here).
set -euo pipefail
cd "$(dirname "$0")/.."
ASAN_LIB=$(gcc -print-file-name=libasan.so)
UBSAN_LIB=$(gcc -print-file-name=libubsan.so)
restore() { npx --no-install node-gyp rebuild >/dev/null 2>&1 || npm run build:native >/dev/null; }
npm run build:native -- -- -Dsanitize=true >/dev/null
trap restore EXIT
export LD_PRELOAD="$ASAN_LIB $UBSAN_LIB"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export FEERSUM_SANITIZED=1
if [ $# -gt 0 ]; then "$@"; else npx vitest run; fi
