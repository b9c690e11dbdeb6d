// Dense-layer bias kernels on the GPU (the matrix products go through sgemm, gemm.h). Same names
// and arguments as csrc/cpu/linear.h plus the stream. Free of CUDA syntax.
#pragma once
#include <cuda_runtime_api.h>

#include "common/types.h"

namespace fastlayers::cuda {

// y[r, c] += b[c] for a contiguous rows x cols matrix y (in place).
void bias_add_rows(float* y, const float* b, index_t rows, index_t cols, cudaStream_t stream);

// grad_b[c] = sum over r of g[r, c]; deterministic (one thread per column, rows in order).
void bias_grad_rows(const float* g, float* grad_b, index_t rows, index_t cols, cudaStream_t stream);

}  // namespace fastlayers::cuda
