#!/usr/bin/env bash
# Regenerates the checked-in prebuilt binaries and their manifest:
#
#   prebuilds/linux-x64/feersum-ts.glibc.node     (built with the host g++)
#   prebuilds/linux-arm64/feersum-ts.glibc.node   (cross-compiled: g++-aarch64-linux-gnu)
#   prebuilds/MANIFEST.json                       (sha256 of native/** + binding.gyp they were built from)
#
# Usage: bash scripts/prebuild.sh            (also: npm run prebuilds)
#        ARM64_NODE=/path/to/arm64-node-wrapper bash scripts/prebuild.sh
# Needs g++, g++-aarch64-linux-gnu, binutils (file, readelf, objdump, strip).
#
# Node-API builds (prebuildify --napi): one binary per platform serves every
# Node.js version from 18 on; node-gyp-build picks it at run time by
# platform, arch and libc (the `glibc` tag keeps it away from musl systems,
# which build from source at install time instead).
#
# The build runs in a temporary copy of the sources, so the repository's own
# build/ (the from-source addon the tests use) is left alone, and the hashes
# in the manifest are those of exactly the files that were compiled.
#
# Headers come from the local Node installation (nodedir, e.g. /usr with
# /usr/include/node); node-gyp never downloads anything. Those headers pick
# the OpenSSL configuration per architecture from compiler macros, which is
# what makes the arm64 cross build possible.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

die() { echo "prebuild.sh: $*" >&2; exit 1; }

# --- tools ------------------------------------------------------------------
node_exe=$(command -v node) || die "node not found"
nodedir=${NODEDIR:-$(node -p "require('path').resolve(process.execPath, '../..')")}
[ -f "$nodedir/include/node/node_api.h" ] || die "no Node headers under $nodedir/include/node (set NODEDIR to the Node installation prefix)"

node_gyp=${PREBUILD_NODE_GYP:-}
if [ -z "$node_gyp" ]; then
  for c in "$repo/node_modules/node-gyp/bin/node-gyp.js" \
           "$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js"; do
    [ -f "$c" ] && { node_gyp=$(readlink -f "$c"); break; }
  done
fi
[ -n "$node_gyp" ] || die "node-gyp not found (npm's bundled copy or node_modules/node-gyp)"
prebuildify="$repo/node_modules/.bin/prebuildify"
[ -x "$prebuildify" ] || die "prebuildify missing: run npm install"
command -v g++ >/dev/null || die "g++ not found: apt-get install -y g++ make python3"
command -v aarch64-linux-gnu-g++ >/dev/null \
  || die "aarch64 cross compiler not found: apt-get install -y g++-aarch64-linux-gnu"
[ -d node_modules/node-addon-api ] || die "node_modules/node-addon-api missing: run npm install"

# --- build in a scratch copy ---------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/feersum-prebuild.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -r native binding.gyp package.json "$work/"
mkdir -p "$work/node_modules"
cp -r node_modules/node-addon-api "$work/node_modules/"

export npm_config_nodedir="$nodedir"   # node-gyp: use these headers, download nothing
export PREBUILD_NODE_GYP="$node_gyp"
target=$(node -p 'process.versions.node')

build() {  # build ARCH [env...]
  local arch=$1; shift
  echo "== building linux-$arch" >&2
  rm -rf "$work/build"
  (cd "$work" && env "$@" "$prebuildify" --napi --strip --tag-libc --target="$target" --arch="$arch" >"$work/build-$arch.log" 2>&1) \
    || { tail -40 "$work/build-$arch.log" >&2; die "build for linux-$arch failed (log above)"; }
}

build x64 CC=gcc CXX=g++ LINK=g++
build arm64 CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ LINK=aarch64-linux-gnu-g++ \
  AR=aarch64-linux-gnu-ar PREBUILD_STRIP_BIN=aarch64-linux-gnu-strip

# --- check what was built ---------------------------------------------------------
x64=$work/prebuilds/linux-x64/feersum-ts.glibc.node
arm64=$work/prebuilds/linux-arm64/feersum-ts.glibc.node
file -b "$x64" | grep -q 'x86-64' || die "linux-x64 binary is not x86-64: $(file -b "$x64")"
file -b "$arm64" | grep -q 'ARM aarch64' || die "linux-arm64 binary is not aarch64: $(file -b "$arm64")"

# Undefined symbols must come from node itself (N-API, libuv, OpenSSL) or from
# libc / libstdc++ / libgcc_s, which every Node installation loads.
for f in "$x64" "$arm64"; do
  needed=$(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' ')
  for lib in $needed; do
    case $lib in libstdc++.so.6|libgcc_s.so.1|libc.so.6|libm.so.6|ld-linux-*) ;; *) die "$f needs unexpected library $lib";; esac
  done
done

# The x64 binary must load in this node and expose the engine.
"$node_exe" -e '
  const b = require(process.argv[1]);
  if (typeof b.Engine !== "function" || typeof b.bindSocket !== "function") throw new Error("binding incomplete");
' "$x64" || die "the linux-x64 binary does not load in $("$node_exe" --version)"

max_version() {  # max_version FILE PREFIX -> highest symbol version with that prefix
  objdump -T "$1" | grep -oE "\\b$2_[0-9.]+" | sed "s/^$2_//" | sort -uV | tail -1
}

args=(
  "node=$(node -p process.versions.node)"
  "napi=$(sed -n 's/.*"NAPI_VERSION=\([0-9]*\)".*/\1/p' binding.gyp)"
  "nodeAddonApi=$(node -p "require('./node_modules/node-addon-api/package.json').version")"
  "nodeHeaders=$nodedir/include/node"
  "nodeGyp=$("$node_exe" "$node_gyp" --version)"
  "prebuildify=$(node -p "require('./node_modules/prebuildify/package.json').version")"
  "compiler.linux-x64=$(g++ --version | head -1)"
  "compiler.linux-arm64=$(aarch64-linux-gnu-g++ --version | head -1)"
  "glibc.linux-x64=$(max_version "$x64" GLIBC)"
  "glibc.linux-arm64=$(max_version "$arm64" GLIBC)"
  "glibcxx.linux-x64=$(max_version "$x64" GLIBCXX)"
  "glibcxx.linux-arm64=$(max_version "$arm64" GLIBCXX)"
)
node scripts/prebuild-manifest.js write "$work" "${args[@]}"

# --- install into the repository --------------------------------------------------
rm -rf prebuilds
mkdir -p prebuilds
cp -r "$work/prebuilds/." prebuilds/
chmod 644 prebuilds/*/*.node
echo "== prebuilds/" >&2
(cd prebuilds && find . -type f | sort | xargs ls -l) >&2
echo "source hash $(node -p "require('./prebuilds/MANIFEST.json').sourceHash")" >&2

# --- smoke tests ------------------------------------------------------------------
# This machine's binary under this node; the arm64 one too when ARM64_NODE
# names a command that runs an arm64 node (e.g. a wrapper around
# qemu-aarch64-static -L SYSROOT SYSROOT/usr/bin/node, with Debian's
# nodejs:arm64 and its libraries unpacked into SYSROOT).
if [ -f dist/index.js ]; then
  node scripts/prebuild-smoke.js
  if [ -n "${ARM64_NODE:-}" ]; then $ARM64_NODE scripts/prebuild-smoke.js; fi
else
  echo "dist/ not built: smoke test skipped (npm run build:ts, then node scripts/prebuild-smoke.js)" >&2
fi
