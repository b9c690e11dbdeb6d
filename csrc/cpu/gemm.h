// Single-precision GEMM on the CPU, row-major like NumPy:
//   C[M x N] = alpha * op(A) * op(B) + beta * C,  op(X) = X or X^T.
// A is M x K (or K x M when trans_a), leading dimension lda (elements between rows as stored);
// likewise B (K x N or N x K) and C. beta == 0 means C is write-only (its old contents, even NaN,
// are ignored), as in BLAS; so are alpha == 0 and K == 0 (C = beta * C, A and B not read).
// Other CPU kernels (conv, linear) call this directly. It is safe to call from several threads at
// once; called inside an OpenMP parallel region it runs on the calling thread alone. Packing uses
// a grow-only thread_local workspace (about 5 MiB per calling thread at most).
#pragma once
#include "common/types.h"

namespace fastlayers::cpu {

void sgemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha,
           const float* A, index_t lda, const float* B, index_t ldb, float beta, float* C,
           index_t ldc);

}  // namespace fastlayers::cpu
