// Single-precision GEMM on the CPU, row-major like NumPy:
//   C[M x N] = alpha * op(A) * op(B) + beta * C,  op(X) = X or X^T.
// A is M x K (or K x M when trans_a), leading dimension lda (elements between rows as stored);
// likewise B (K x N or N x K) and C. beta == 0 means C is write-only (its old contents, even NaN,
// are ignored), as in BLAS. Other CPU kernels (conv, linear) call this directly.
#pragma once
#include "common/types.h"

namespace fastlayers::cpu {

void sgemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha,
           const float* A, index_t lda, const float* B, index_t ldb, float beta, float* C,
           index_t ldc);

}  // namespace fastlayers::cpu
