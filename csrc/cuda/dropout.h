// Inverted dropout on the GPU with the counter-based Philox4x32-10 generator (common/philox.h).
// Same names and arguments as csrc/cpu/dropout.h plus the stream; the mask is a pure function of
// (seed, element index), so it equals the CPU's and the NumPy reference's bit for bit.
// Free of CUDA syntax (included by the bindings).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/types.h"

namespace fastlayers::cuda {

// y[i] = x[i] * (keep(i) ? scale : 0).
void dropout_forward(const float* x, float* y, index_t n, std::uint64_t seed, std::uint32_t threshold,
                     float scale, cudaStream_t stream);
// The same mask applied to grad_out.
void dropout_backward(const float* grad_out, float* grad_in, index_t n, std::uint64_t seed,
                      std::uint32_t threshold, float scale, cudaStream_t stream);
// mask[i] = keep(i) ? 1 : 0.
void dropout_mask(float* mask, index_t n, std::uint64_t seed, std::uint32_t threshold,
                  cudaStream_t stream);

}  // namespace fastlayers::cuda
