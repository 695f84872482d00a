// Small shared definitions for the native engine: branch hints and napi checks.
#pragma once

#include <cstddef>
#include <cstdint>

#define FEERSUM_LIKELY(x) __builtin_expect(!!(x), 1)
#define FEERSUM_UNLIKELY(x) __builtin_expect(!!(x), 0)

namespace feersum {

// Milliseconds on libuv's monotonic loop clock.
using Millis = uint64_t;

}  // namespace feersum
