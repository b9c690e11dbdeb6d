// Inverted dropout on the CPU with the counter-based Philox4x32-10 generator (common/philox.h):
// element i is kept iff (Philox word for i) >> 8 >= threshold, threshold = ceil(p * 2^24), so the
// mask depends only on (seed, i) and matches the CUDA kernels and the NumPy reference bit for bit.
// Same names as the CUDA twin (which adds a trailing cudaStream_t).
#pragma once
#include <cstdint>

#include "common/types.h"

namespace fastlayers::cpu {

// y[i] = x[i] * (keep(i) ? scale : 0), scale = float(1 / (1 - p)). x * 0 keeps NaN/inf as NaN,
// as the product x * mask / (1 - p) would.
void dropout_forward(const float* x, float* y, index_t n, std::uint64_t seed, std::uint32_t threshold,
                     float scale);
// The same mask applied to grad_out.
void dropout_backward(const float* grad_out, float* grad_in, index_t n, std::uint64_t seed,
                      std::uint32_t threshold, float scale);
// mask[i] = keep(i) ? 1 : 0.
void dropout_mask(float* mask, index_t n, std::uint64_t seed, std::uint32_t threshold);

}  // namespace fastlayers::cpu
