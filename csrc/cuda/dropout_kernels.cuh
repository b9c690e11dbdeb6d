// Dropout kernel: one Philox call gives the words for 4 consecutive elements (a "block" in
// common/philox.h), so each thread handles one such group, grid-stride. No launches here
// (csrc/cuda/host_emulation/ compiles it with g++).
#pragma once
#include <cstdint>

#include "common/philox.h"
#include "common/types.h"

namespace fastlayers::cuda::detail {

// y[i] = (x ? x[i] : 1) * (keep(i) ? on : 0); x == nullptr writes the mask (on = 1).
__global__ void dropout_kernel(const float* x, float* y, index_t n, std::uint64_t seed,
                               std::uint32_t threshold, float on) {
  const index_t groups = (n + 3) / 4;
  for (index_t b = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; b < groups;
       b += static_cast<index_t>(gridDim.x) * blockDim.x) {
    std::uint32_t w[4];
    philox::dropout_block(seed, static_cast<std::uint64_t>(b), w);
    const index_t i0 = 4 * b;
    const int count = n - i0 < 4 ? static_cast<int>(n - i0) : 4;
    for (int k = 0; k < count; ++k) {
      const float f = philox::keep(w[k], threshold) ? on : 0.0f;
      y[i0 + k] = x ? x[i0 + k] * f : f;  // x * 0 keeps NaN/inf as NaN, as on the CPU
    }
  }
}

}  // namespace fastlayers::cuda::detail
