// Small shared definitions for both backends. Kernels index with 64-bit integers throughout:
// a (N, C, H, W) activation of a large batch easily passes 2^31 elements.
#pragma once
#include <cstdint>

namespace fastlayers {
using index_t = std::int64_t;
}  // namespace fastlayers
