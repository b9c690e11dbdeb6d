// Bias kernels for the dense layer. No launches here (host emulation compiles it with g++).
#pragma once
#include "common/types.h"

namespace fastlayers::cuda::detail {

__global__ void bias_add_rows_kernel(float* y, const float* b, index_t rows, index_t cols) {
  const index_t total = rows * cols;
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<index_t>(gridDim.x) * blockDim.x)
    y[i] += b[i % cols];
}

// One thread per column walks the rows in order: neighbouring threads read neighbouring
// columns (coalesced), no atomics, the same float sum order as the CPU's column loop.
__global__ void bias_grad_rows_kernel(const float* g, float* grad_b, index_t rows, index_t cols) {
  for (index_t c = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; c < cols;
       c += static_cast<index_t>(gridDim.x) * blockDim.x) {
    float s = 0.0f;
    for (index_t r = 0; r < rows; ++r) s += g[r * cols + c];
    grad_b[c] = s;
  }
}

}  // namespace fastlayers::cuda::detail
