// Dropout kernel: one Philox call gives the words for 4 consecutive elements (a "block" in
// common/philox.h), so each thread handles one such group, grid-stride, with one float4 load and
// store when `vec` (x and y 16-byte aligned, checked by the launcher) and the group is whole; the
// last n % 4 elements one by one. No launches here (csrc/cuda/host_emulation/ compiles it with g++).
#pragma once
#include <cstdint>

#include "common/philox.h"
#include "common/types.h"

namespace fastlayers::cuda::detail {

// y[i] = (x ? x[i] : 1) * (keep(i) ? on : 0); x == nullptr writes the mask (on = 1).
__global__ void dropout_kernel(const float* __restrict__ x, float* __restrict__ y, index_t n, std::uint64_t seed,
                               std::uint32_t threshold, float on, bool vec) {
  const index_t groups = (n + 3) / 4;
  for (index_t b = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; b < groups;
       b += static_cast<index_t>(gridDim.x) * blockDim.x) {
    std::uint32_t w[4];
    philox::dropout_block(seed, static_cast<std::uint64_t>(b), w);
    const index_t i0 = 4 * b;
    float f[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) f[k] = philox::keep(w[k], threshold) ? on : 0.0f;
    if (vec && i0 + 3 < n) {
      float4 v = x ? *reinterpret_cast<const float4*>(x + i0) : make_float4(1.0f, 1.0f, 1.0f, 1.0f);
      if (x) {  // x * 0 keeps NaN/inf as NaN, as on the CPU
        v.x *= f[0], v.y *= f[1], v.z *= f[2], v.w *= f[3];
      } else {
        v = make_float4(f[0], f[1], f[2], f[3]);
      }
      *reinterpret_cast<float4*>(y + i0) = v;
    } else {
      const int count = n - i0 < 4 ? static_cast<int>(n - i0) : 4;
      for (int k = 0; k < count; ++k) y[i0 + k] = x ? x[i0 + k] * f[k] : f[k];
    }
  }
}

}  // namespace fastlayers::cuda::detail
