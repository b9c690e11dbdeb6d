// Dense (linear) layer helpers. The layer itself is expressed in python/fastlayers/ops/linear.py
// through sgemm (gemm.h):  y = x * w^T (+ b),  grad_x = g * w,  grad_w = g^T * x,  grad_b = sum_rows g.
// Only the bias parts need their own kernels; a CUDA twin mirrors these names with a trailing stream.
#pragma once
#include "common/types.h"

namespace fastlayers::cpu {

// y[r, c] += b[c] for a contiguous rows x cols matrix y (in place).
void bias_add_rows(float* y, const float* b, index_t rows, index_t cols);

// grad_b[c] = sum over r of g[r, c] for a contiguous rows x cols matrix g.
void bias_grad_rows(const float* g, float* grad_b, index_t rows, index_t cols);

}  // namespace fastlayers::cpu
