#!/usr/bin/env bash
# Benchmarks: hello-world throughput (bench/measure.js) for node:http,
# feersum-ts native and feersum-ts PSGI; with IDLE=1 also memory per idle
# connection (bench/idle-memory.js). See bench/README.md for the variables.
#
#   bash bench/run.sh            # or: npm run bench
#   DURATION=5 REPEAT=3 bash bench/run.sh
#   IDLE=1 bash bench/run.sh     # throughput, then idle memory
#   IDLE=only bash bench/run.sh  # idle memory alone
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "error: $*" >&2; exit 1; }

command -v node >/dev/null || die "node not found"
command -v taskset >/dev/null || die "taskset not found (util-linux); or run with SERVER_CPU= CLIENT_CPUS= to skip pinning"
command -v getconf >/dev/null || die "getconf not found (libc-bin)"
[ -f dist/index.js ] || die "build missing (dist/index.js); run \`npm run build\` first"

if [ "${IDLE:-}" != "only" ] && ! command -v wrk >/dev/null; then
  echo "wrk not found; installing it with apt-get" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  if command -v apt-get >/dev/null && { [ -z "$SUDO" ] || command -v sudo >/dev/null; }; then
    $SUDO apt-get install -y wrk >&2 || { $SUDO apt-get update >&2 && $SUDO apt-get install -y wrk >&2; } || true
  fi
  command -v wrk >/dev/null || die "could not install wrk; install it yourself (https://github.com/wg/wrk, or your distribution's 'wrk' package) and run again"
fi

# Cores: the server on one, the load generator on the others.
ncores=$(getconf _NPROCESSORS_ONLN)
if [ "$ncores" -lt 2 ] && [ -z "${SERVER_CPU+x}" ]; then
  echo "warning: $ncores core(s): running unpinned, server and wrk will compete" >&2
  export SERVER_CPU="" CLIENT_CPUS=""
fi

child=""
cleanup() {
  # measure.js / idle-memory.js kill their servers themselves (and the
  # servers exit when their parent's IPC channel closes); this covers
  # the script itself being interrupted.
  if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

run() {
  "$@" &
  child=$!
  local rc=0
  wait "$child" || rc=$?
  child=""
  return "$rc"
}

status=0
if [ "${IDLE:-}" != "only" ]; then
  run node bench/measure.js || status=$?
fi
if [ -n "${IDLE:-}" ] && [ "${IDLE}" != "0" ]; then
  echo >&2
  run node bench/idle-memory.js || status=$?
fi
if [ "$status" -eq 2 ]; then
  echo "WARNING: some runs reported errors or failed; see above and the JSON in bench/results/" >&2
fi
exit "$status"
