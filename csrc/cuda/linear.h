// Dense-layer bias kernels on the GPU (the matrix products go through sgemm, gemm.h). Same names
// and arguments as csrc/cpu/linear.h plus the stream. Free of CUDA syntax.
#pragma once
#include <cuda_runtime_api.h>

#include "common/types.h"

namespace fastlayers::cuda {

// y[r, c] += b[c] for a contiguous rows x cols matrix y (in place).
void bias_add_rows(float* y, const float* b, index_t rows, index_t cols, cudaStream_t stream);

// grad_b[c] = sum over r of g[r, c]; deterministic (the row chunks and their order are a function
// of the shape). Many rows are summed in chunks whose partial sums need
// bias_grad_rows_workspace_floats(rows, cols) floats of caller-owned workspace; with less (or
// none), one chunk runs.
index_t bias_grad_rows_workspace_floats(index_t rows, index_t cols);
void bias_grad_rows(const float* g, float* grad_b, index_t rows, index_t cols, float* workspace,
                    index_t workspace_floats, cudaStream_t stream);

}  // namespace fastlayers::cuda
